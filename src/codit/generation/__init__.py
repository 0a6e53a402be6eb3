"""Generating responses: the CoDIT decoding rule, the engine, model loading, shard checkpoints
and `codit generate`."""
