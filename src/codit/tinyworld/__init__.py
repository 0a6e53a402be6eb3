"""The built-in tiny world: a seeded miniature of CoDIT's setting that runs on a laptop CPU.

`build_data(out, seed, pool_size)` writes the world, corpora, tokenizer, instruction pool and
lm-eval task folder; `train_model(out, name, seed, threads)` trains one of the tiny models.

Layout of a built world (`codit tinyworld data` / `train` / `all`):
    world.json                   entities and facts (the pre-training knowledge)
    corpus/pretrain.jsonl        {"text"} documents; a few are plain chat Q&A exchanges
    corpus/posttrain.jsonl       {"id","instruction","constraints","request","combo","subject",
                                  "answer","response"} (answer null for "describe" questions)
    instructions/pool.jsonl      {"id": "tw-000001","instruction","constraints","request","combo",
                                  "subject","answer"}
    instructions/public.jsonl    like posttrain: the rule-written "public" dataset (tw-pub-...)
    tokenizer/                   byte-level BPE, AutoTokenizer-loadable, with chat template
    tasks/                       lm-eval include path: tinyworld_ifeval, tinyworld_knowledge
    mt_bench/                    MT-Bench in FastChat's layout, two turns (codit.tinyworld.mtbench)
    data_card.json               counts, combos, sha256 of every file, provenance
    models/<name>/               model + tokenizer + generation_config + train_record.json

Chat format (single user turn; a system message raises):
    <|user|>\\n{instruction}<|end|>\\n<|assistant|>\\n{response}<|end|>\\n
Special tokens: <|pad|>=0 (pad), <|endoftext|>=1 (bos, document separator), <|user|>=2,
<|assistant|>=3, <|end|>=4 (eos = end of turn). Models stop on generation_config.eos_token_id
= [4, 1] and are greedy by default (no sampling settings stored).
"""

from codit.tinyworld.build import build_data
from codit.tinyworld.models import MODEL_NAMES, train_model

__all__ = ["MODEL_NAMES", "build_data", "train_model"]
