"""`codit download`: fetch a Hub model once, on the login node, into <hub_cache>/models/<slug>.

Compute jobs then load the local folder with HF_HUB_OFFLINE=1, so no job touches the network.
Only safetensors weights are fetched: pickled .bin weights can run code when loaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

ALLOWED_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py"]


def download_model(hub_id: str, revision: str, out: str | os.PathLike) -> Path:
    """Snapshot `hub_id` at `revision` into `out`; the folder appears only when complete."""
    from huggingface_hub import snapshot_download

    target = Path(out)
    staging = target.with_name(f".{target.name}.partial")
    snapshot_download(
        repo_id=hub_id, revision=revision, local_dir=staging, allow_patterns=ALLOWED_FILES
    )
    if not any(staging.glob("*.safetensors")):
        raise ValueError(f"model {hub_id!r}@{revision}: the repository has no safetensors weights")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Hub id, e.g. Qwen/Qwen3-8B")
    parser.add_argument("--revision", default="main")
    parser.add_argument("--out", required=True, help="target folder")


def run(args: argparse.Namespace) -> None:
    print(download_model(args.model, args.revision, args.out))
