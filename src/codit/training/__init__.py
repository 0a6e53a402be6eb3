"""LoRA SFT of the students (`codit sft`)."""
