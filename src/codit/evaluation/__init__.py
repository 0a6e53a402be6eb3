"""lm-evaluation-harness: its tasks, their data fetched ahead, and `codit evaluate`."""
