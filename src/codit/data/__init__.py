"""The inputs: the instruction pool, downloaded models, and the generated datasets with their
cards."""
