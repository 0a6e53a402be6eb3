"""codit-workflow: reproduce "Synthesizing Instruction-Tuning Datasets with Contrastive Decoding"."""

__version__ = "0.1.0"
