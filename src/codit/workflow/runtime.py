"""Where a stage computes: device, dtype and CPU threads, resolved the same way by every stage."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

DTYPE_NAMES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
DTYPE_HELP = "auto: bfloat16 on a CUDA device that supports it, else float32"
THREADS_HELP = "torch CPU threads (default: torch's choice)"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def add_runtime_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    dtypes: tuple[str, ...] = DTYPE_NAMES,
) -> None:
    """The --device, --dtype and --threads options every model-running stage takes."""
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--dtype", choices=("auto", *dtypes), default="auto", help=DTYPE_HELP)
    parser.add_argument("--threads", type=int, help=THREADS_HELP)


def resolve_device(device: str) -> str:
    """`auto` is cuda when torch sees a GPU, else cpu; an unavailable cuda is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """`auto` is bfloat16 on a bf16-capable GPU and float32 otherwise (bf16 is slow on CPU)."""
    import torch

    if dtype != "auto":
        if dtype not in DTYPE_NAMES:
            raise ValueError(
                f"--dtype must be auto or one of {', '.join(DTYPE_NAMES)}, got {dtype!r}"
            )
        return dtype
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


def torch_dtype(name: str):
    """The torch dtype object of a dtype name."""
    import torch

    return getattr(torch, name)


def set_threads(threads: int | None) -> None:
    """Cap torch's intra-op threads (a job should use the cores Snakemake gave it, no more)."""
    import torch

    if threads is None:
        return
    if threads < 1:
        raise ValueError("--threads must be >= 1")
    torch.set_num_threads(threads)


def require_safetensors(model: str) -> None:
    """Refuse a local model folder whose weights exist only as pickles (`*.bin`, `*.pt`):
    unpickling can run arbitrary code, so every stage loads safetensors only."""
    folder = Path(model)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return  # a Hub id, or safetensors present (from_pretrained also gets use_safetensors)
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in {".bin", ".pt", ".pth"})
    if pickled:
        raise ValueError(
            f"model {model}: weights only as pickle files ({', '.join(pickled)}); codit loads "
            "safetensors only, since unpickling can run code: convert them with "
            "`model.save_pretrained(folder)` from a trusted environment"
        )


@contextlib.contextmanager
def sigterm_exits(note: str = "") -> Iterator[None]:
    """SIGTERM (a scheduler's cancel) ends the command through SystemExit, so `finally` blocks
    and context managers clean up (checkpoints stay, a served judge is stopped)."""

    def terminate(signum, frame):
        print(
            f"codit: terminated by signal {signum}" + (f"; {note}" if note else ""), file=sys.stderr
        )
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def die_with_parent() -> None:
    """In a child process (a `preexec_fn`): SIGKILL it when the process that started it dies,
    so a job that is itself SIGKILLed leaves no server or engine behind (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
