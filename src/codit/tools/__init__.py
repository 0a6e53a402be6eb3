"""Tools beside the pipeline: speed benchmarks, the cost estimate and Figure 1."""
