"""CoDIT on vLLM: the teacher pair as one vLLM model (codit_vllm.pair) and the runner the
workflow's `codit generate --backend vllm` calls (python -m codit_vllm.run).

This package runs inside vLLM's environment (its own torch and transformers pins) and imports
nothing of the `codit` package: requests and results cross over as JSON lines.
"""

PAIR_ARCHITECTURE = "CoditPairForCausalLM"


def register() -> None:
    """vLLM's general plugin (entry point `vllm.general_plugins`): the pair's model class, in
    every vLLM process."""
    from vllm import ModelRegistry

    if PAIR_ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(PAIR_ARCHITECTURE, "codit_vllm.pair:CoditPairForCausalLM")
