"""The baselines beside CoDIT: Best-of-N, public datasets and the chat vector."""
