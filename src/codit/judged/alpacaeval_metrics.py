"""AlpacaEval 2.0's metrics: the win rate and the length-controlled win rate of one model's
preferences (the alpaca_eval project, tatsu-lab/alpaca_eval, version 0.6.6), from
codit.judged.alpacaeval's judgments or any list of preferences in [1, 2] (2 = the model wins).

The definitions (alpaca_eval/metrics/winrate.py::get_winrate with
helpers.py::AbsoluteScoringRule and ZeroOneScoringRule;
alpaca_eval/metrics/glm_winrate.py::get_length_controlled_winrate):

- every metric reads the preferences one way (`preference_values`): None or NaN is a judgment
  without a verdict (left out, and counted in `verdicts["unparsable"]`), the legacy 0 means a
  draw (1.5), and a value outside [1, 2] is refused with an error naming the judgment
  (alpaca_eval's `validate_alpacaeval_preference`: its annotators assert it, its metrics drop
  such values);
- `win_rate`: the mean of (preference - 1) x 100, so a tie counts half and a weighted
  preference counts its weight; `standard_error`: the standard error of that mean (ddof 1) x 100;
  `n_wins` (preference > 1.5), `n_wins_base` (< 1.5), `n_draws` (exactly 1.5), `n_total`;
  `discrete_win_rate`: the win rate of the preferences rounded to 1 or 2 (1.5 a draw);
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

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from codit.report.stats import standard_error

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BENCHMARK = "AlpacaEval 2.0"
# The preference of a tie: of an output identical to the reference (set without asking the
# judge), and what the legacy preference 0 means.
TIE = 1.5
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


def difficulty_of_gamed(gamed: pd.DataFrame) -> dict[int, float]:
    """The instruction difficulty df_gamed.csv carries: alpaca_eval takes it from there."""
    first = gamed.drop_duplicates("index")
    return dict(zip(first["index"].astype(int), first["instruction_difficulty"], strict=True))


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
