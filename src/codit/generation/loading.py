"""Loading models and tokenizers: one way for every stage that runs a model itself.

Generation, Best-of-N's samples, the chat vector, `codit explain` and `codit bench` load with
`load_model` (eval mode, placed on a device or spread over GPUs); SFT loads its student with
`load_causal_lm` (the Trainer places it and switches modes). Either way weights come from
safetensors only (unpickling can run code) and repository code runs only when the model's
config entry allows it. `codit evaluate` hands the same options to lm-eval, which loads the
model itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from codit.generation.settings import PLACEMENTS
from codit.workflow.runtime import require_safetensors


def load_causal_lm(
    name_or_path: str, dtype: torch.dtype, trust_remote_code: bool = False, **options: Any
) -> Any:
    """`AutoModelForCausalLM.from_pretrained` from safetensors only; `options` go to it."""
    from transformers import AutoModelForCausalLM

    require_safetensors(name_or_path)
    return AutoModelForCausalLM.from_pretrained(
        name_or_path,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        **options,
    )


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)


@dataclass(frozen=True)
class ModelPlacement:
    """Where one model's weights go: all on `device`, or spread by accelerate over `spread`."""

    device: torch.device
    spread: bool = False
    gpus: tuple[int, ...] = ()  # the GPUs it may use when spread (empty: any, or the CPU)


def model_placements(
    device: torch.device, placement: str, codit: bool
) -> tuple[ModelPlacement, ModelPlacement]:
    """Placements of the post and the pre model.

    same: both on `device`. split: post on `device`, pre on the next GPU. auto: the visible
    GPUs are halved (post gets the first half, pre the second; direct generation gets all)
    and each model is spread over its half by accelerate, for models larger than one GPU.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"--placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if device.type != "cuda" or placement == "same":
        spread = placement == "auto"
        return ModelPlacement(device, spread), ModelPlacement(device, spread)
    count = torch.cuda.device_count()
    if placement == "split":
        index = device.index or 0
        if index + 1 >= count:
            raise ValueError(
                f"--placement split puts the pre model on cuda:{index + 1}, "
                f"but only {count} GPU(s) are visible"
            )
        return ModelPlacement(device), ModelPlacement(torch.device("cuda", index + 1))
    if codit and count < 2:
        raise ValueError(f"--placement auto needs two or more GPUs for CoDIT, {count} visible")
    half = count // 2 if codit else count
    post_gpus, pre_gpus = tuple(range(half)), tuple(range(half, count))
    return (
        ModelPlacement(torch.device("cuda", post_gpus[0]), True, post_gpus),
        ModelPlacement(torch.device("cuda", pre_gpus[0] if pre_gpus else 0), True, pre_gpus),
    )


def load_model(
    name_or_path: str,
    placement: ModelPlacement | torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool = False,
) -> Any:
    """A causal LM in eval mode, placed as `placement` says (a device: all on it).

    Local directories and Hub ids load the same way; weights load from safetensors only.
    """
    if isinstance(placement, torch.device):
        placement = ModelPlacement(placement)
    options: dict[str, Any] = {}
    if placement.spread:
        options["device_map"] = "auto"
        if placement.gpus:
            # Only this model's GPUs, each up to its free memory: the pair shares the machine.
            free = {gpu: torch.cuda.mem_get_info(gpu)[0] for gpu in placement.gpus}
            options["max_memory"] = {gpu: int(0.9 * size) for gpu, size in free.items()}
    elif placement.device.type == "cuda":
        # Load straight onto the GPU instead of staging the weights in CPU memory.
        options["device_map"] = str(placement.device)
    model = load_causal_lm(name_or_path, dtype, trust_remote_code, **options)
    if "device_map" not in options:
        model = model.to(placement.device)
    return model.eval()


@dataclass(frozen=True)
class ModelMetadata:
    """What the stages read of a model besides its weights (`config`: context limit and vocab
    size; `generation_config`: EOS ids), for an engine that loads the weights itself (vLLM)."""

    config: Any
    generation_config: Any


def load_model_metadata(name_or_path: str, trust_remote_code: bool = False) -> ModelMetadata:
    """A model's config and generation config (None when it ships none), without its weights."""
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    try:
        generation_config = GenerationConfig.from_pretrained(name_or_path)
    except OSError:  # no generation_config.json
        generation_config = None
    return ModelMetadata(config, generation_config)
