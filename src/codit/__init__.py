"""codit-workflow: the end-to-end reproduction of CoDIT (contrastive-decoding instruction data)."""

__version__ = "0.1.0"
