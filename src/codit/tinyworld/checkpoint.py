"""Checkpoints of the tiny world's training loop: a killed build resumes where it stopped.

A checkpoint is a folder beside the model it builds, `models/.<name>.checkpoint/`, with
`state.safetensors` (the parameters, AdamW's moments and step counts, torch's RNG state) and
`state.json` (the settings it was taken with, the step reached, the shuffled order still to
come, Python's RNG state and the losses so far). It is written to a new folder and swapped in
by renames, so a kill leaves the previous checkpoint or the new one, never a torn one.
Resuming restores every piece of state the loop reads, so the finished model is
byte-identical to an unbroken run's; a checkpoint taken with other settings is discarded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.workflow.provenance import replace_dir

CHECKPOINT_VERSION = 1


@dataclass
class LoopState:
    """What the loop carries from one step to the next, apart from model and optimiser."""

    step: int  # steps done
    order: list[int]  # example indices still to come in this epoch
    python_rng: Any  # random.Random.getstate() of the shuffling generator
    losses: list[float]


def checkpoint_dir(target: Path) -> Path:
    """`models/llama-base` -> `models/.llama-base.checkpoint`."""
    return target.with_name(f".{target.name}.checkpoint")


def previous_of(folder: Path) -> Path:
    """Where the checkpoint being replaced waits while `save` swaps in the new one."""
    return folder.with_name(folder.name + ".old")


def save(folder: Path, identity: dict[str, Any], model, optimizer, state: LoopState) -> None:
    """Write a checkpoint of the loop after `state.step` steps, replacing the previous one."""
    import torch
    from safetensors.torch import save_file

    tensors = {f"param.{name}": p.detach() for name, p in model.named_parameters()}
    optimizer_state = optimizer.state_dict()
    for index, slots in optimizer_state["state"].items():
        for slot, value in slots.items():
            tensors[f"optim.{index}.{slot}"] = torch.as_tensor(value)
    tensors["torch_rng"] = torch.get_rng_state()
    version, internal, gauss = state.python_rng
    record = {
        "codit_checkpoint": CHECKPOINT_VERSION,
        "identity": identity,
        "step": state.step,
        "order": state.order,
        "python_rng": [version, list(internal), gauss],
        "losses": state.losses,
        "param_groups": optimizer_state["param_groups"],
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, staging / "state.safetensors")
        (staging / "state.json").write_text(json.dumps(record))
        for path in staging.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        replace_dir(staging, folder, previous_of(folder))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load(folder: Path, identity: dict[str, Any], model, optimizer) -> LoopState | None:
    """Restore model, optimiser and RNGs from the checkpoint in `folder` and return the loop
    state; None (and the checkpoint removed) when there is none or it has other settings."""
    import torch
    from safetensors.torch import load_file

    previous = previous_of(folder)
    if not folder.exists() and previous.exists():
        os.replace(previous, folder)  # killed between the two renames of `save`
    if not (folder / "state.json").is_file():
        discard(folder)
        return None
    record = json.loads((folder / "state.json").read_text())
    if record.get("codit_checkpoint") != CHECKPOINT_VERSION or record.get("identity") != (
        json.loads(json.dumps(identity))
    ):
        discard(folder)
        return None
    tensors = load_file(folder / "state.safetensors")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(tensors[f"param.{name}"])
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, slot = key.split(".", 2)
            slots.setdefault(int(index), {})[slot] = value
    optimizer.load_state_dict({"state": slots, "param_groups": record["param_groups"]})
    torch.set_rng_state(tensors["torch_rng"])
    version, internal, gauss = record["python_rng"]
    return LoopState(
        step=record["step"],
        order=record["order"],
        python_rng=(version, tuple(internal), gauss),
        losses=record["losses"],
    )


def remove_staging_leftovers(target: Path) -> None:
    """Remove the half-written folders a killed run of `target` left: its own staging folder
    (`.<name>.<random>`) and a checkpoint's (`.<name>.checkpoint.<random>`). The checkpoint
    and its predecessor, mid-swap, are kept for `load`."""
    keep = {checkpoint_dir(target).name, previous_of(checkpoint_dir(target)).name}
    for path in target.parent.glob(f".{target.name}.*"):
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def discard(folder: Path) -> None:
    """Remove a checkpoint (and a half-swapped predecessor)."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(previous_of(folder), ignore_errors=True)
