"""Atomic file output and the provenance block every result file carries."""

from __future__ import annotations

import codecs
import contextlib
import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codit import __version__
from codit.workflow.faults import fault_point

TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "lm_eval",
    "snakemake",
    "pandas",
    "matplotlib",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change a result."""
    versions = {"codit-workflow": __version__, "python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# CPU features that select different float kernels (oneDNN, MKL, torch's own dispatch), so
# that two machines with the same packages may still differ in the last bits of a result.
KERNEL_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "sve")


def cpu_description() -> dict[str, Any]:
    """The CPU model and the instruction-set features that choose float kernels (Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in {"flags", "Features"}:
                flags |= set(value.split())
    return {
        "model": model,
        "architecture": platform.machine(),
        "cores": os.cpu_count(),
        "kernel_flags": [flag for flag in KERNEL_FLAGS if flag in flags],
    }


def machine_description() -> dict[str, Any]:
    """Where a result was computed: CPU, the torch build and its CPU kernel level, GPUs.
    torch is only asked when the process imported it already (a result computed with it)."""
    machine: dict[str, Any] = {"cpu": cpu_description(), "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None:
        machine["torch"] = {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "gpus": [
                torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())
            ],
        }
    return machine


def provenance(settings: dict[str, Any]) -> dict[str, Any]:
    """The block stored beside every result: exact settings, package versions, command line,
    and the machine (bit-exact results hold on one machine kind; verdicts must hold on all)."""
    return {
        "settings": settings,
        "versions": package_versions(),
        "command": sys.argv,
        "machine": machine_description(),
    }


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds.

    A killed writer leaves a stray temporary file, never a half-written result; the next
    write of the same path removes it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed before its rename (SIGKILL runs no cleanup) left its temporary file;
    # this write replaces that attempt (one job writes an output at a time).
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; results are shared, so give them the usual permissions
        os.chmod(tmp, 0o666 & ~_current_umask())
        fault_point("write.before_rename")  # tests kill here: the file is written, not final
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def replace_dir(staging: Path, target: Path, previous: Path) -> None:
    """Swap the finished folder `staging` in as `target`. An existing `target` is renamed to
    `previous` first and removed only after the swap, so a kill leaves the old folder or the
    new one (then possibly beside `previous`), never a half-written one."""
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A fresh staging folder (`TARGET.partial`) to fill, swapped in as `target` when the block
    ends without an error (replace_dir, the old folder kept as `TARGET.old` until then); after
    an error `target` is as it was and the staging folder is left for the next call to clear."""
    target = Path(target)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yield staging
    replace_dir(staging, target, target.with_name(target.name + ".old"))


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (records which data a result was made from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON atomically, with stable key order for diffable results."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """Write JSON lines atomically, one record per line, keys in insertion order."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of a JSON-lines file.

    A line that is not UTF-8 or not JSON is refused with its file and line number. A UTF-8
    byte-order mark at the start of the file is ignored.
    """
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if line_number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}:{line_number}: not UTF-8 text (byte 0x{raw[error.start]:02x} at "
                    f"byte {error.start + 1} of the line); save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: invalid JSON ({error.msg})") from None
            yield line_number, value


def read_jsonl(
    path: str | os.PathLike, *, objects_only: bool = False, non_empty: bool = False
) -> list[Any]:
    """Read JSON lines (see `iter_jsonl`); blank lines are skipped.

    objects_only: a record that is not a JSON object is refused with its file and line number.
    non_empty: a file with no record at all (empty, or only blank lines) is refused.
    """
    records = []
    for line_number, value in iter_jsonl(path):
        if objects_only and not isinstance(value, dict):
            raise ValueError(
                f"{path}:{line_number}: expected a JSON object, got {json_kind(value)}"
            )
        records.append(value)
    if non_empty and not records:
        raise ValueError(f"{path}: no records (the file is empty or has only blank lines)")
    return records


def read_json(path: str | os.PathLike) -> Any:
    """Parse one JSON file; malformed JSON is reported with the file's name."""
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: invalid JSON ({error.msg}, line {error.lineno})") from None
