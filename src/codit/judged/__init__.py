"""The LLM-judged benchmarks: the judge client and server, answering, judging, and MT-Bench,
AlpacaEval 2.0 and WildBench."""
