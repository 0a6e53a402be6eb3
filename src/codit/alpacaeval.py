"""AlpacaEval 2.0: pairwise judging against the reference outputs, win rate and the
length-controlled win rate (the alpaca_eval project, tatsu-lab/alpaca_eval, version 0.6.6),
asked through codit.judge.

A bench folder holds:

- `reference_outputs.json`: the benchmark's instructions with the reference model's outputs, a
  JSON list of {instruction, output, generator, dataset?} in the benchmark's order (for the
  paper grid the data file of the hub dataset tatsu-lab/alpaca_eval's `alpaca_eval_gpt4_baseline`
  config: 805 instructions, gpt4_1106_preview outputs; cc-by-nc-4.0). An instruction's id is
  its position in this list: alpaca_eval's `index`, on which the instruction difficulty is keyed;
- `alpaca_eval_clf.txt`: the judge prompt, alpaca_eval's own template file
  (alpaca_eval/evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt), fetched as
  data, never copied into this code: ChatML-marked messages (`<|im_start|>system ... <|im_end|>`)
  with the placeholders {instruction}, {output_1}, {output_2}; the judge answers with the
  identifier of the better output, "m" (output_1) or "M" (output_2);
- optionally `df_gamed.csv` (the hub dataset's file of the same name: annotations of the two
  gamed baselines, columns model, index, preference in [0, 1], std_delta_len,
  instruction_difficulty, not_gamed_baseline) and `instruction_difficulty.csv` (index,
  instruction_difficulty). The tiny world writes its own folder.

The model's outputs are records {instruction, output}, matched to the reference by the
instruction's text (as alpaca_eval merges them).

Judging (alpaca_eval/annotators/pairwise_evaluator.py, alpaca_eval/utils.py, the configs
weighted_alpaca_eval_gpt4_turbo/configs.yaml and alpaca_eval_clf_gpt4_turbo/configs.yaml):

- an output identical to the reference output (the same string) gets the preference 1.5 without
  a judge request (pairwise_evaluator.py `_preprocess`: "deals with equality"); its judgment
  records the verdict kind `identical`;
- the two outputs are shown in alpaca_eval's own order (`model_shown_first`: its
  RandomSwitchTwoColumnsProcessor in processors.py, seeded on "is_switched_outputs" + the
  instruction + the seed; the annotator's seed is 0, the seed of the published annotations:
  with it the stored preferences of the 57 leaderboard models follow from their judge's
  log-probabilities, tests/test_leaderboards.py) and the order is recorded in the judgment;
- the template is split into messages as alpaca_eval's `prompt_to_chatml` does, and each
  placeholder is filled in one pass (alpaca_eval replaces each placeholder's first occurrence in
  turn, so an instruction that itself contains "{output_1}" would be filled there; ours is not);
- the judge is asked at temperature 0 for the log-probabilities of the top 5 first tokens
  (alpaca_eval asks gpt-4-1106-preview at temperature 1 with max_tokens 1 and top_logprobs 5:
  the log-probabilities do not depend on the temperature of sampling; the reply's length is
  the endpoint's max_tokens: the config sets 1 for a judge that answers at once);
- a weighted preference (`weighted_preference`, alpaca_eval's `logprob_parser` with
  is_binarize false): 2 - p(m) / (p(m) + p(M)) over the first token's top log-probabilities, a
  token missing from them counted as probability 0; a reply without "m" and "M" among them, or a
  server that returns no log-probabilities, gives the plain verdict of the reply's text instead
  (`parse_verdict`: 1 for "m", 2 for "M"), and each judgment records which (`verdict_kind`);
- the order is undone: a preference shown with the model's output first becomes 3 - x, so the
  stored `preference` always reads 1 = the reference wins, 2 = the model wins, 1.5 = a tie.

Metrics (alpaca_eval/metrics/winrate.py::get_winrate with helpers.py::AbsoluteScoringRule and
ZeroOneScoringRule; alpaca_eval/metrics/glm_winrate.py::get_length_controlled_winrate):

- every metric reads the preferences one way (`preference_values`): None or NaN is a judgment
  without a verdict (left out, and counted in `verdicts["unparsable"]`), the legacy 0 means a
  draw (1.5), and a value outside [1, 2] is refused with an error naming the judgment
  (alpaca_eval's `validate_alpacaeval_preference`: its annotators assert it, its metrics drop
  such values);
- `win_rate`: the mean of (preference - 1) x 100, so a tie counts half and a weighted
  preference counts its weight; `standard_error`: the standard error of that mean (ddof 1) x 100;
  `n_wins` (preference > 1.5), `n_wins_base` (< 1.5), `n_draws` (exactly 1.5), `n_total`;
  `discrete_win_rate`: the win rate of the preferences rounded to 1 or 2 (1.5 a draw);
- `avg_length`: the mean length in characters of the judged outputs (every output of the
  answers file is judged). alpaca_eval's leaderboard writes int(mean length of the model_outputs
  file) (main.py, `avg_length`), which also counts outputs that matched no reference
  instruction and were never judged: 6 of the 57 leaderboard models checked have 802 to 804
  judgments, and their published avg_length is the judged lengths summed over 805;
- `length_controlled_winrate` (`length_controlled_win_rate`), the GLM `length_controlled_v1`:
  preference - 1 ~ logistic(tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline)
  without intercept, where std_delta_len = (len(reference) - len(model output)) divided by its
  standard deviation over the instructions; fitted with scikit-learn's LogisticRegressionCV
  (L1, liblinear, random_state 123) on every annotation duplicated as a label-1 row weighted p
  and a label-0 row weighted 1 - p, C chosen among 10 values (10^-4 .. 10^4) by 5-fold
  GroupKFold cross-validation of the log loss of the continuous preference; with
  `df_gamed.csv` its rows join the fit with weight 0.2 / 2 (regularisation toward the gamed
  baselines); LC = the mean predicted preference at zero length difference x 100,
  `lc_standard_error` its standard error x 100 (`glm_preference`: each instruction's);
- which GLM ran is recorded under alpaca_eval's names (`glm`): `length_controlled_v1` (with
  df_gamed.csv), `length_controlled_noreg` (instruction difficulty but no df_gamed.csv: no
  regularisation toward the gamed baselines) or `length_controlled_minimal` (no instruction
  difficulty either: the difficulty term is dropped), with a sentence saying so (`lc_note`).

alpaca_eval's own function reads df_gamed.csv from the Hub on every call, so it does not run
offline; tests/test_alpacaeval.py checks ours against it with that download pointed at a local
file.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codit import judged
from codit.answering import Answerer, AnsweringRun, write_answers
from codit.judge import Judge, JudgeEndpoint, JudgeRequest, request_key
from codit.provenance import (
    file_sha256,
    provenance,
    read_json,
    read_jsonl,
    staged_dir,
    write_json,
)
from codit.settings import Settings, group, option
from codit.stats import standard_error

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BENCHMARK = "AlpacaEval 2.0"
TASK = "alpaca_eval"  # the benchmark's task name in the report's tables
PROMPT_VERSION = "alpaca_eval_clf"
REFERENCE_FILE = "reference_outputs.json"
TEMPLATE_FILE = "alpaca_eval_clf.txt"
GAMED_FILE = "df_gamed.csv"
DIFFICULTY_FILE = "instruction_difficulty.csv"
# The identifiers of output_1 and output_2 in the template, and how many first-token
# alternatives the judge returns (weighted_alpaca_eval_gpt4_turbo/configs.yaml).
FIRST, SECOND = "m", "M"
TOP_LOGPROBS = 5
# alpaca_eval's order switch (processors.py RandomSwitchTwoColumnsProcessor, its
# `_switch_column` prefix and choices) and its annotators' seed (annotators/base.py).
SWITCH_SEED_PREFIX = "is_switched_outputs"
SWITCH = (False, True)
ORDER_SEED = 0
# The preference of a tie: of an output identical to the reference (set without asking the
# judge), and what the legacy preference 0 means.
TIE = 1.5
PLACEHOLDER = re.compile(r"\{(instruction|output_1|output_2)\}")

# length_controlled_v1 (glm_winrate.py GLM_INFO and fit_LogisticRegressionCV).
REGULARIZE_TO_BASELINE_LAMBDA = 0.2
N_SPLITS = 5
CS = 10  # LogisticRegressionCV's default grid: 10 values log-spaced over 1e-4 .. 1e4
RANDOM_STATE = 123
LOGLOSS_EPSILON = 1e-15
GLM_NOTES = {
    "length_controlled_v1": "length_controlled_v1, regularised toward the gamed baselines "
    "(df_gamed.csv)",
    "length_controlled_noreg": "length_controlled_v1 without the regularisation toward the gamed "
    "baselines: df_gamed.csv was not available",
    "length_controlled_minimal": "length_controlled_v1 without instruction difficulty and without "
    "the regularisation toward the gamed baselines: neither df_gamed.csv nor "
    "instruction_difficulty.csv was available",
}


# --------------------------------------------------------------------------------------------
# The bench folder and the judge's requests


def template_messages(text: str) -> list[dict[str, str]]:
    """ChatML-marked template text -> chat messages (alpaca_eval utils.prompt_to_chatml, without
    its `system name=...` variant, which the AlpacaEval 2 templates do not use)."""
    text = text.strip()
    if not text.startswith("<|im_start|>") or not text.endswith("<|im_end|>"):
        raise ValueError("not a ChatML-marked template (<|im_start|>role ... <|im_end|>)")
    messages = []
    for part in text.split("<|im_start|>")[1:]:
        role, _, rest = part.partition("\n")
        messages.append({"role": role.strip(), "content": rest.split("<|im_end|>", 1)[0].strip()})
    return messages


def fill(content: str, fields: Mapping[str, str]) -> str:
    """The template's placeholders replaced in one pass (texts with braces stay as they are)."""
    return PLACEHOLDER.sub(lambda found: fields[found.group(1)], content)


def model_shown_first(seed: int, instruction: str) -> bool:
    """Whether the judge sees the model's output as output_1: alpaca_eval's switch of output_1
    (the reference) and output_2 (the model), drawn with the instruction's text as the seed."""
    return random.Random(f"{SWITCH_SEED_PREFIX}{instruction}{seed}").choices(SWITCH, k=1)[0]


def read_difficulty(path: Path) -> dict[int, float]:
    """instruction_difficulty.csv: {index: difficulty} (the first two columns, header skipped)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    return {int(row[0]): float(row[1]) for row in rows if row}


def difficulty_of_gamed(gamed: pd.DataFrame) -> dict[int, float]:
    """The instruction difficulty df_gamed.csv carries: alpaca_eval takes it from there."""
    first = gamed.drop_duplicates("index")
    return dict(zip(first["index"].astype(int), first["instruction_difficulty"], strict=True))


class Bench:
    """One bench folder (see the module docstring): reference outputs, judge prompt and the
    length-control data that are there."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        paths = {
            "references": self.folder / REFERENCE_FILE,
            "template": self.folder / TEMPLATE_FILE,
        }
        for path in paths.values():
            if not path.is_file():
                raise FileNotFoundError(f"{BENCHMARK} folder {self.folder}: no {path.name}")
        references = read_json(paths["references"])
        if not isinstance(references, list) or not all(
            isinstance(r, dict) and isinstance(r.get("instruction"), str) for r in references
        ):
            raise ValueError(f"{paths['references']}: not a JSON list of {{instruction, output}}")
        self.references: list[dict[str, Any]] = references
        self.ids = {r["instruction"]: i for i, r in enumerate(references)}
        if len(self.ids) != len(references):
            raise ValueError(f"{paths['references']}: an instruction appears twice")
        text = paths["template"].read_text(encoding="utf-8")
        try:
            self.messages = template_messages(text)
        except ValueError as error:
            raise ValueError(f"{paths['template']}: {error}") from None
        found = {name for m in self.messages for name in PLACEHOLDER.findall(m["content"])}
        if found != {"instruction", "output_1", "output_2"}:
            raise ValueError(
                f"{paths['template']}: needs {{instruction}}, {{output_1}}, {{output_2}}"
            )
        self.gamed = None
        self.difficulty: dict[int, float] | None = None
        if (self.folder / GAMED_FILE).is_file():
            import pandas as pd

            paths["gamed"] = self.folder / GAMED_FILE
            self.gamed = pd.read_csv(paths["gamed"]).drop(columns=["model"], errors="ignore")
            self.difficulty = difficulty_of_gamed(self.gamed)
        elif (self.folder / DIFFICULTY_FILE).is_file():
            paths["difficulty"] = self.folder / DIFFICULTY_FILE
            self.difficulty = read_difficulty(paths["difficulty"])
        self.sha256 = {name: file_sha256(path) for name, path in paths.items()}

    def instruction_id(self, output: Mapping[str, Any]) -> int:
        found = self.ids.get(output.get("instruction"))  # type: ignore[arg-type]
        if found is None:
            shown = str(output.get("instruction"))[:80]
            raise ValueError(f"{BENCHMARK}: instruction {shown!r} is not in {self.folder}")
        return found

    def request(
        self, instruction_id: int, output: str, judge_model: str, *, seed: int, top_logprobs: int
    ) -> tuple[JudgeRequest, bool]:
        """(the judge request comparing `output` with the reference, whether the model's output
        is shown first)."""
        reference = self.references[instruction_id]
        first = model_shown_first(seed, reference["instruction"])
        shown = (output, reference["output"]) if first else (reference["output"], output)
        fields = {
            "instruction": reference["instruction"],
            "output_1": shown[0],
            "output_2": shown[1],
        }
        messages = [{**m, "content": fill(m["content"], fields)} for m in self.messages]
        key = request_key(
            judge_model, PROMPT_VERSION, top_logprobs, *(m["content"] for m in messages)
        )
        return JudgeRequest(key, messages, f"instruction {instruction_id}"), first


# --------------------------------------------------------------------------------------------
# Verdicts


def parse_verdict(reply: str) -> int | None:
    """The plain verdict in the order shown: 1 for "m" (output_1), 2 for "M"; None otherwise."""
    answer = reply.strip().strip("\"'`*.").strip()
    return {FIRST: 1, SECOND: 2}.get(answer)


def weighted_preference(top_logprobs: Sequence[Mapping[str, Any]] | None) -> float | None:
    """alpaca_eval's logprob_parser (not binarised), in the order shown: 2 - p(m) / (p(m) + p(M));
    None when neither token is among the first token's top log-probabilities."""
    found = {t["token"]: t["logprob"] for t in top_logprobs or () if t["token"] in (FIRST, SECOND)}
    if not found:
        return None
    first, second = found.get(FIRST, -math.inf), found.get(SECOND, -math.inf)
    top = max(first, second)
    denominator = top + math.log(math.exp(first - top) + math.exp(second - top))
    return 2 - math.exp(first - denominator)


def shown_preference(entry: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """(the preference in the order shown, "weighted" or "plain"); (None, None) without one."""
    weighted = weighted_preference(entry.get("top_logprobs"))
    if weighted is not None:
        return weighted, "weighted"
    if entry.get("verdict") is not None:
        return float(entry["verdict"]), "plain"
    return None, None


def model_preference(preference: float | None, model_first: bool) -> float | None:
    """Undo the order: 2 = the model wins, whichever side it was shown on."""
    if preference is None:
        return None
    return 3 - preference if model_first else preference


def judge_for(
    endpoint: JudgeEndpoint, cache: Path | None = None, top_logprobs: int = TOP_LOGPROBS
) -> Judge:
    """The judge as AlpacaEval 2 asks it (first-token log-probabilities; 0: plain verdicts)."""
    return Judge(
        endpoint, benchmark=BENCHMARK, prompt_version=PROMPT_VERSION, parse=parse_verdict,
        cache=cache, top_logprobs=top_logprobs,
    )  # fmt: skip


def judge_outputs(
    bench: Bench, outputs: Sequence[Mapping[str, Any]], judge: Judge, *, seed: int = ORDER_SEED
) -> list[dict[str, Any]]:
    """One judgment per output, in the bench's instruction order; see the module docstring."""
    by_id: dict[int, Mapping[str, Any]] = {}
    for output in outputs:
        instruction_id = bench.instruction_id(output)
        if instruction_id in by_id:
            raise ValueError(f"{BENCHMARK}: two outputs for instruction {instruction_id}")
        by_id[instruction_id] = output
    asked = []
    for instruction_id in sorted(by_id):
        text = str(by_id[instruction_id]["output"])
        request, first = bench.request(
            instruction_id, text, judge.endpoint.model or "", seed=seed,
            top_logprobs=judge.top_logprobs,
        )  # fmt: skip
        if text == bench.references[instruction_id]["output"]:
            request = None  # a tie, without asking the judge
        asked.append((instruction_id, text, request, first))
    verdicts = judge.ask([request for _, _, request, _ in asked if request is not None])
    judgments = []
    for instruction_id, text, request, first in asked:
        entry = {"reply": None} if request is None else verdicts[request.key]
        shown, kind = (TIE, "identical") if request is None else shown_preference(entry)
        judgments.append(
            {
                "instruction_id": instruction_id,
                "model_shown_first": first,
                "shown_preference": shown,
                "preference": model_preference(shown, first),
                "verdict_kind": kind,
                "output_length": len(text),
                "reference_length": len(bench.references[instruction_id]["output"]),
                "reply": entry["reply"],
                "top_logprobs": entry.get("top_logprobs"),
            }
        )
    return judgments


# --------------------------------------------------------------------------------------------
# Metrics


def preference_values(preferences: Sequence[float | None]) -> list[float | None]:
    """The one reading of preferences every metric shares (module docstring): None for no
    verdict (None or NaN), the legacy 0 as 1.5, values in [1, 2] as they are; an error names
    any other value and its position."""
    values: list[float | None] = []
    for position, preference in enumerate(preferences):
        if preference is None or math.isnan(preference):
            values.append(None)
        elif preference == 0:
            values.append(TIE)
        elif 1 <= preference <= 2:
            values.append(float(preference))
        else:
            raise ValueError(
                f"{BENCHMARK}: judgment {position} has the preference {preference!r}, outside "
                "[1, 2] (2: the model wins, 1.5: a tie, 0: a legacy tie)"
            )
    return values


def win_rate(preferences: Sequence[float | None]) -> dict[str, Any]:
    """alpaca_eval's get_winrate: preferences in [1, 2] (2 = the model wins; None: no verdict;
    read by `preference_values`)."""
    valid = [p for p in preference_values(preferences) if p is not None]
    shifted = [p - 1 for p in valid]
    discrete = [0.5 if p == 1.5 else float(round(p) - 1) for p in valid]
    return {
        "win_rate": mean(shifted) * 100,
        "standard_error": standard_error(shifted) * 100,
        "n_wins": sum(p > 0.5 for p in shifted),
        "n_wins_base": sum(p < 0.5 for p in shifted),
        "n_draws": sum(p == 0.5 for p in shifted),
        "n_total": len(valid),
        "discrete_win_rate": mean(discrete) * 100,
    }


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def length_controlled_win_rate(
    preferences: Sequence[float | None],
    output_lengths: Sequence[int],
    reference_lengths: Sequence[int],
    instruction_ids: Sequence[int],
    *,
    instruction_difficulty: Mapping[int, float] | None = None,
    gamed: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The length-controlled win rate (alpaca_eval's length_controlled_v1; module docstring):
    one row per judged instruction; preferences in [1, 2] (2 = the model wins, None: no verdict,
    left out of the fit but predicted, as in alpaca_eval); `gamed` the rows of df_gamed.csv."""
    import numpy as np
    import pandas as pd

    if gamed is not None and instruction_difficulty is None:
        instruction_difficulty = difficulty_of_gamed(gamed)
    glm = (
        "length_controlled_v1" if gamed is not None
        else "length_controlled_noreg" if instruction_difficulty is not None
        else "length_controlled_minimal"
    )  # fmt: skip
    delta = pd.Series(reference_lengths, dtype=float) - pd.Series(output_lengths, dtype=float)
    spread = delta.std()
    # Equal length differences everywhere (e.g. the reference model judged against itself) leave
    # alpaca_eval's standardisation 0/0; no spread means no length signal: the term is 0.
    standardised = delta / spread if spread > 0 else delta * 0.0
    ours = pd.DataFrame(
        {
            "preference": [
                math.nan if p is None else p - 1 for p in preference_values(preferences)
            ],
            "std_delta_len": standardised,
            "not_gamed_baseline": True,
        }
    )
    if instruction_difficulty is not None:
        missing = sorted(set(instruction_ids) - set(instruction_difficulty))
        if missing:
            raise ValueError(
                f"{BENCHMARK}: no instruction difficulty for instructions {missing[:5]}"
            )
        ours["instruction_difficulty"] = [instruction_difficulty[i] for i in instruction_ids]
    train, weights = ours, None
    if gamed is not None:
        train = pd.concat([gamed, ours], axis=0, ignore_index=True)
        not_gamed = train["not_gamed_baseline"].astype(bool)
        weights = np.where(not_gamed, 1.0, REGULARIZE_TO_BASELINE_LAMBDA / 2)
    keep = train["preference"].notna().to_numpy()
    columns = design_columns(instruction_difficulty is not None)
    coefficients = fit_glm(
        design(train, columns)[keep],
        train["preference"].to_numpy(dtype=float)[keep],
        None if weights is None else weights[keep],
    )
    at_zero_length = design(ours.assign(std_delta_len=0.0), columns)
    predicted = 1 / (1 + np.exp(-(at_zero_length @ coefficients)))
    return {
        "length_controlled_winrate": float(predicted.mean() * 100),
        "lc_standard_error": float(pd.Series(predicted).sem() * 100),
        "glm": glm,
        "lc_note": GLM_NOTES[glm],
        "glm_weights": dict(zip(columns, map(float, coefficients), strict=True)),
        "glm_preference": [float(p) for p in predicted],
    }


def design_columns(with_difficulty: bool) -> list[str]:
    """The GLM's terms in patsy's order for alpaca_eval's formula (no intercept)."""
    middle = ["instruction_difficulty"] if with_difficulty else []
    return ["np.tanh(std_delta_len)", *middle, "not_gamed_baseline.astype(float)"]


def design(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The design matrix of `columns` for the rows of `frame`."""
    import numpy as np

    features = {
        "np.tanh(std_delta_len)": lambda: np.tanh(frame["std_delta_len"].to_numpy(dtype=float)),
        "instruction_difficulty": lambda: frame["instruction_difficulty"].to_numpy(dtype=float),
        "not_gamed_baseline.astype(float)": lambda: (
            frame["not_gamed_baseline"].astype(bool).to_numpy(dtype=float)
        ),
    }
    return np.column_stack([features[column]() for column in columns])


def l1_settings() -> dict[str, Any]:
    """alpaca_eval's classifier settings: L1, liblinear, no intercept, random_state 123
    (scikit-learn 1.8 renamed penalty="l1" to l1_ratios=(1,) and changed the CV attributes)."""
    import sklearn

    settings: dict[str, Any] = {
        "solver": "liblinear", "fit_intercept": False, "random_state": RANDOM_STATE,
    }  # fmt: skip
    major_minor = tuple(int(part) for part in sklearn.__version__.split(".")[:2])
    if major_minor >= (1, 8):
        return {**settings, "l1_ratios": (1.0,), "use_legacy_attributes": False}
    return {**settings, "penalty": "l1"}


def continuous_log_loss(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    true_prob: np.ndarray,
    true_sample_weight: np.ndarray | None = None,
) -> float:
    """alpaca_eval's logloss_continuous: the log loss of the continuous preference p (either
    copy of a row carries p), -mean(w (p log q + (1 - p) log(1 - q))), q clipped."""
    import numpy as np

    probability = np.where(y_true == 1, true_prob, 1 - true_prob)
    q = np.clip(y_pred, LOGLOSS_EPSILON, 1 - LOGLOSS_EPSILON)
    losses = probability * np.log(q) + (1 - probability) * np.log(1 - q)
    if true_sample_weight is not None:
        losses = losses * true_sample_weight
    return float(-np.mean(losses))


def fit_glm(features: np.ndarray, preference: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """alpaca_eval's fit_LogisticRegressionCV(is_ytrue_proba=True, n_splits=5): each row twice
    (label 1 weighted p w, label 0 weighted (1 - p) w), C chosen by LogisticRegressionCV over
    GroupKFold(5) folds of the rows' pairs on the continuous log loss, refitted on all rows;
    returns the coefficients. The CV curve is often flat, so only the same estimator picks
    the same C: we run scikit-learn's, as alpaca_eval does."""
    import numpy as np
    import sklearn
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GroupKFold

    rows = len(preference)
    x = np.vstack([features, features])
    y = np.concatenate([np.ones(rows, dtype=int), np.zeros(rows, dtype=int)])
    true_prob = np.concatenate([preference, 1 - preference])
    true_weights = None if weights is None else np.concatenate([weights, weights])
    fit_weights = true_prob if true_weights is None else true_prob * true_weights
    groups = np.concatenate([np.arange(rows), np.arange(rows)])
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(
            continuous_log_loss, response_method="predict_proba", greater_is_better=False
        ).set_score_request(true_sample_weight=True, true_prob=True)
        model = LogisticRegressionCV(
            Cs=CS, cv=GroupKFold(n_splits=N_SPLITS), scoring=scorer, **l1_settings()
        )
        model.set_fit_request(sample_weight=True)
        model.fit(
            x, y, sample_weight=fit_weights, groups=groups, true_sample_weight=true_weights,
            true_prob=true_prob,
        )  # fmt: skip
    return model.coef_[0]


def scores(bench: Bench, judgments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Win rate, length-controlled win rate and mean answer length of one model's judgments."""
    preferences = [j["preference"] for j in judgments]
    kinds = [j["verdict_kind"] for j in judgments]
    lc = length_controlled_win_rate(
        preferences,
        [j["output_length"] for j in judgments],
        [j["reference_length"] for j in judgments],
        [j["instruction_id"] for j in judgments],
        instruction_difficulty=bench.difficulty,
        gamed=bench.gamed,
    )
    return {
        **win_rate(preferences),
        **{key: value for key, value in lc.items() if key != "glm_preference"},
        "avg_length": mean([j["output_length"] for j in judgments]),
        "judgments": len(judgments),
        "verdicts": {
            "weighted": kinds.count("weighted"),
            "plain": kinds.count("plain"),
            "identical": kinds.count("identical"),
            "unparsable": kinds.count(None),
        },
        "glm_preference": lc["glm_preference"],
    }


# The report's metrics, each with the key of its standard error in `scores` (None: none).
METRIC_STDERR = {
    "length_controlled_winrate": "lc_standard_error",
    "win_rate": "standard_error",
    "avg_length": None,
}


def results_block(result: Mapping[str, Any]) -> dict[str, Any]:
    """lm-eval's `results[task]` layout of `scores`, with the metrics' own standard errors."""
    return judged.results_block(result, [], list(METRIC_STDERR), METRIC_STDERR)


def instruction_samples(
    bench: Bench, judgments: Sequence[dict[str, Any]], result: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One record per judged instruction in lm-eval's logged-sample layout, for the paired
    bootstrap: win_rate = (preference - 1) x 100 (left out without a verdict),
    length_controlled_winrate = the GLM's preference at zero length difference x 100, only
    when the GLM has the instructions' difficulty: without it that value is the same for
    every instruction, and a bootstrap over items would show no spread where there is some."""
    per_item_lc = bench.difficulty is not None
    samples = []
    for judgment, lc in zip(judgments, result["glm_preference"], strict=True):
        reference = bench.references[judgment["instruction_id"]]
        record: dict[str, Any] = {
            "doc_id": judgment["instruction_id"],
            "doc_hash": hashlib.sha256(json.dumps(reference["instruction"]).encode()).hexdigest(),
            "filter": "none",
            "metrics": ["win_rate", *(["length_controlled_winrate"] if per_item_lc else [])],
        }
        if per_item_lc:
            record["length_controlled_winrate"] = lc * 100
        if judgment["preference"] is not None:
            record["win_rate"] = (judgment["preference"] - 1) * 100
        samples.append(record)
    return samples


# --------------------------------------------------------------------------------------------
# Fetching AlpacaEval 2.0's data

# The data files of the tatsu-lab/alpaca_eval dataset repository (datasets 4 no longer runs its
# loading script, so the files are fetched as they are) and the judge's template from the
# alpaca_eval code at the release whose GLM codit.alpacaeval follows (0.6.6).
DATASET_SOURCE = "https://huggingface.co/datasets/tatsu-lab/alpaca_eval/resolve/{revision}"
DATASET_REVISION = "main"  # the dataset has no release tags; the manifest keeps each digest
REFERENCE_SOURCE_FILE = "alpaca_eval_gpt4_baseline.json"  # AlpacaEval 2.0's reference: GPT-4 Turbo
ALPACA_EVAL_SOURCE = "https://raw.githubusercontent.com/tatsu-lab/alpaca_eval/{tag}"
ALPACA_EVAL_TAG = "v0.6.6"
TEMPLATE_PATH = "src/alpaca_eval/evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"
INSTRUCTIONS = 805


@dataclass(frozen=True, kw_only=True)
class FetchRun(Settings):
    """One `codit alpacaeval fetch` run: AlpacaEval 2.0's reference outputs, the GLM's data and
    the judge's template into a bench folder."""

    out: Path = option(help="the bench folder to write")
    data_source: str = option(
        DATASET_SOURCE.format(revision=DATASET_REVISION),
        "base URL (or file:// folder) of the tatsu-lab/alpaca_eval dataset repository",
    )
    template_source: str = option(
        ALPACA_EVAL_SOURCE.format(tag=ALPACA_EVAL_TAG),
        "base URL (or file:// folder) of the tatsu-lab/alpaca_eval code repository",
    )
    length_control_data: bool = option(
        True, "also fetch df_gamed.csv and instruction_difficulty.csv (the full LC GLM)"
    )
    instructions: int = option(INSTRUCTIONS, "how many instructions the reference must hold")


def fetch(run: FetchRun) -> dict[str, Any]:
    """Download the files into a staging folder, check them, then swap it in."""
    data = run.data_source.rstrip("/")
    with staged_dir(run.out) as staging:
        files = {
            "references": judged.fetch_file(
                f"{data}/{REFERENCE_SOURCE_FILE}", staging / REFERENCE_FILE, BENCHMARK
            ),
            "template": judged.fetch_file(
                f"{run.template_source.rstrip('/')}/{TEMPLATE_PATH}",
                staging / TEMPLATE_FILE,
                BENCHMARK,
            ),
        }
        if run.length_control_data:
            for name in (GAMED_FILE, DIFFICULTY_FILE):
                files[name] = judged.fetch_file(f"{data}/{name}", staging / name, BENCHMARK)
        bench = Bench(staging)  # refuses files that are not AlpacaEval's
        if len(bench.references) != run.instructions:
            raise ValueError(
                f"{BENCHMARK}: {files['references']['url']} holds {len(bench.references)} "
                f"instructions, not {run.instructions}"
            )
        manifest = {
            "instructions": len(bench.references),
            "gamed_baselines": bench.gamed is not None,  # the full length_controlled_v1
            "files": files,
            **provenance(run.record()),
        }
        write_json(staging / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------------------------
# Command line

# Answers are greedy (our choice: a model's answers then depend on the model alone; recorded).
ANSWER_TEMPERATURE = 0.0


def answer_instructions(run: AnsweringRun) -> list[dict[str, Any]]:
    """The model's output for every instruction of the bench, in the bench's order."""
    bench = Bench(run.bench)
    instructions = [reference["instruction"] for reference in bench.references]
    answers = Answerer(run, BENCHMARK).answer(
        [[{"role": "user", "content": text}] for text in instructions],
        [f"instruction{i}" for i in range(len(instructions))],
        ANSWER_TEMPERATURE,
    )
    return [
        {"instruction": text, "output": answer.text, "generator": str(run.model),
         "finish_reason": answer.finish_reason, "num_tokens": answer.num_tokens,
         "temperature": ANSWER_TEMPERATURE}
        for text, answer in zip(instructions, answers, strict=True)
    ]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class GradingRun(Settings):
    """One `codit alpacaeval judge` run: one model's outputs against the reference outputs."""

    bench: Path = option(help="AlpacaEval folder (reference_outputs.json, alpaca_eval_clf.txt)")
    answers: Path = option(help="the model's outputs: JSONL of {instruction, output}")
    judge: JudgeEndpoint = group(JudgeEndpoint, "judge (OpenAI-compatible endpoint)")
    outputs: judged.JudgedOutputs = group(judged.JudgedOutputs, "outputs")
    seed: int = option(
        ORDER_SEED, "seed of alpaca_eval's switch of the two outputs' order (0: alpaca_eval's own)"
    )
    top_logprobs: int = option(
        TOP_LOGPROBS, "first-token log-probabilities asked for weighted verdicts (0: plain)"
    )


JUDGED = judged.JudgedBenchmark(
    name=BENCHMARK, task=TASK, metrics=tuple(METRIC_STDERR), prompt_version=PROMPT_VERSION,
    parse=parse_verdict, stderr_keys=METRIC_STDERR,
)  # fmt: skip


def grade_answers(grading: GradingRun, running: JudgeEndpoint | None = None) -> dict[str, Any]:
    """Judge the outputs; write the judgments, the per-instruction samples and the scores."""
    bench = Bench(grading.bench)
    outputs = read_jsonl(grading.answers, objects_only=True)
    kept: dict[str, Any] = {}

    def grade(judge: Judge) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        judgments = judge_outputs(bench, outputs, judge, seed=grading.seed)
        result = scores(bench, judgments)
        kept["glm_preference"] = result.pop("glm_preference")
        return judgments, result

    payload = judged.judge_and_write(
        JUDGED, grading.judge, grading.outputs, grade=grade,
        item_samples=lambda judgments: instruction_samples(bench, judgments, kept),
        record=grading.record(),
        extra={"bench_sha256": bench.sha256, "answers_sha256": file_sha256(grading.answers)},
        running=running,
        top_logprobs=grading.top_logprobs,
    )  # fmt: skip
    print(
        f"codit alpacaeval: LC win rate {payload['length_controlled_winrate']:.2f}, win rate "
        f"{payload['win_rate']:.2f} ({payload['glm']}) -> {grading.outputs.scores}"
    )
    return payload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    FetchRun.add_arguments(
        commands.add_parser("fetch", help="AlpacaEval 2.0's reference outputs and template")
    )
    AnsweringRun.add_arguments(
        commands.add_parser("answer", help="answer every instruction of the bench with a model")
    )
    GradingRun.add_arguments(
        commands.add_parser("judge", help="judge a model's outputs against the reference")
    )


def run(args: argparse.Namespace) -> None:
    if args.command == "fetch":
        fetch_run = FetchRun.from_args(args)
        manifest = fetch(fetch_run)
        print(f"codit alpacaeval: {manifest['instructions']} instructions -> {fetch_run.out}")
        return
    if args.command == "answer":
        answering = AnsweringRun.from_args(args)
        records = answer_instructions(answering)
        reasons = [record["finish_reason"] for record in records]
        write_answers(answering, records, reasons, REFERENCE_FILE)
        return
    grade_answers(GradingRun.from_args(args))
