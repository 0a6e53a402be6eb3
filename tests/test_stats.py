"""Paired bootstrap, per-item scores from samples files, seed intervals and `codit compare`."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from codit.cli import main
from codit.report.stats import (
    compare_files,
    compare_replicates,
    format_result,
    item_scores,
    paired_bootstrap,
    seed_interval,
)

T_975_DF2 = 4.302652729911275  # t_{0.975, 2} as commonly tabulated


def logged_sample(doc_id: int, doc: dict, values: dict, filter_name: str = "none") -> dict:
    """One line of an lm-eval logged-samples file (the layout `codit evaluate` writes)."""
    prompt = f"<|user|>{doc['prompt']}"
    return {
        "doc_id": doc_id,
        "doc": doc,
        "target": "",
        "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": {"max_gen_toks": 64}}},
        "resps": [["a response"]],
        "filtered_resps": ["a response"],
        "filter": filter_name,
        "metrics": list(values),
        "doc_hash": hashlib.sha256(json.dumps(doc, indent=2).encode()).hexdigest(),
        "prompt_hash": hashlib.sha256(prompt.encode()).hexdigest(),
        "target_hash": hashlib.sha256(b"").hexdigest(),
        **values,
    }


def write_samples(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def ifeval_samples(path: Path, passes: list[list[bool]]) -> Path:
    """An ifeval-like file: per prompt, one boolean per instruction."""
    records = [
        logged_sample(
            doc_id,
            {"prompt": f"instruction {doc_id}", "instruction_id_list": ["x"] * len(flags)},
            {"prompt_level_strict_acc": all(flags), "inst_level_strict_acc": flags},
        )
        for doc_id, flags in enumerate(passes)
    ]
    return write_samples(path, records)


def scores(values: list[float]) -> dict[int, float]:
    return dict(enumerate(values))


# --------------------------------------------------------------------------- paired bootstrap


def test_constant_shift_gives_exact_difference_and_zero_width_interval():
    a = scores([0.0, 1.0, 0.5, 0.25, 1.0, 0.0])
    b = {key: value + 1 for key, value in a.items()}
    result = paired_bootstrap(a, b, resamples=500)
    assert result["difference"] == 1.0
    assert result["low"] == result["high"] == 1.0
    assert result["p_value"] == 0.0
    assert result["n_items"] == 6 and result["mean_b"] - result["mean_a"] == 1.0
    labels = {"a": "a.jsonl", "b": "b.jsonl", "metric": "acc", "weighted_by_list_length": False}
    assert "p < 0.002" in format_result({**result, **labels})  # no resample crossed 0


def test_identical_arms_give_zero_difference_and_p_one():
    a = scores([0.0, 1.0, 1.0, 0.0, 1.0])
    result = paired_bootstrap(a, dict(a), resamples=500)
    assert result["difference"] == 0.0
    assert result["low"] <= 0.0 <= result["high"]
    assert result["p_value"] == 1.0


def brute_force(a: list[float], b: list[float], draws: np.ndarray, confidence: float) -> dict:
    """The bootstrap of `paired_bootstrap` in plain Python, on the same index draws."""
    n = len(a)
    resampled = sorted(sum(b[i] - a[i] for i in row) / n for row in draws.tolist())

    def quantile(q: float) -> float:  # linear interpolation between order statistics
        position = q * (len(resampled) - 1)
        below = math.floor(position)
        above = min(below + 1, len(resampled) - 1)
        return resampled[below] + (position - below) * (resampled[above] - resampled[below])

    observed = sum(b) / n - sum(a) / n
    if observed > 0:
        other = sum(value <= 0 for value in resampled) / len(resampled)
    else:
        other = sum(value >= 0 for value in resampled) / len(resampled)
    tail = (1 - confidence) / 2
    return {
        "difference": observed,
        "low": quantile(tail),
        "high": quantile(1 - tail),
        "p_value": min(1.0, 2 * other),
    }


@pytest.mark.parametrize("seed", [0, 7])
def test_matches_brute_force_bootstrap_on_the_same_draws(seed):
    rng = np.random.default_rng(123)
    n, resamples = 9, 300
    a = rng.integers(0, 2, n).astype(float).tolist()
    b = rng.integers(0, 2, n).astype(float).tolist()
    b[0], a[0] = 1.0, 0.0  # not identical
    # Keys inserted out of order: index j of a draw stands for the j-th smallest doc_id.
    keys = [5, 3, 8, 1, 0, 7, 2, 6, 4]
    order = sorted(range(n), key=lambda j: keys[j])
    result = paired_bootstrap(
        dict(zip(keys, a, strict=True)),
        dict(zip(keys, b, strict=True)),
        resamples=resamples,
        seed=seed,
        confidence=0.9,
    )
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    expected = brute_force([a[j] for j in order], [b[j] for j in order], draws, 0.9)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert 0 < result["p_value"] < 1


def test_swapping_arms_negates_difference_and_interval():
    rng = np.random.default_rng(1)
    a, b = scores(rng.random(40).tolist()), scores(rng.random(40).tolist())
    forward = paired_bootstrap(a, b, resamples=2000, seed=3)
    backward = paired_bootstrap(b, a, resamples=2000, seed=3)
    assert backward["difference"] == pytest.approx(-forward["difference"], abs=1e-15)
    assert backward["low"] == pytest.approx(-forward["high"], abs=1e-12)
    assert backward["high"] == pytest.approx(-forward["low"], abs=1e-12)
    assert backward["p_value"] == pytest.approx(forward["p_value"])


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    a, b = scores(rng.random(30).tolist()), scores(rng.random(30).tolist())
    first = paired_bootstrap(a, b, resamples=1000, seed=11)
    assert paired_bootstrap(a, b, resamples=1000, seed=11) == first
    other = paired_bootstrap(a, b, resamples=1000, seed=12)
    assert other["difference"] == first["difference"] and other["low"] != first["low"]


def test_large_inputs_are_drawn_in_blocks_with_the_same_stream(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = scores(rng.random(50).tolist()), scores(rng.random(50).tolist())
    whole = paired_bootstrap(a, b, resamples=301, seed=5)
    monkeypatch.setattr("codit.report.stats.BLOCK_ELEMENTS", 50 * 7)  # blocks of 7 resamples
    assert paired_bootstrap(a, b, resamples=301, seed=5) == pytest.approx(whole)


def test_mismatched_items_are_refused_with_counts():
    a = scores([1.0, 0.0, 1.0, 1.0])
    b = {0: 1.0, 1: 1.0, 2: 0.0, 7: 1.0, 9: 0.0}
    with pytest.raises(ValueError, match=r"1 only in a, 2 only in b \(3 shared\)"):
        paired_bootstrap(a, b)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"resamples": 0}, "resamples"), ({"confidence": 1.0}, "confidence")],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(scores([1.0]), scores([0.0]), **options)


# --------------------------------------------------------------------------- samples files


def test_item_scores_booleans_and_list_valued_metric(tmp_path):
    path = ifeval_samples(tmp_path / "ifeval.jsonl", [[True, False], [True], [False, False, True]])
    assert item_scores(path, "prompt_level_strict_acc") == {0: 0.0, 1: 1.0, 2: 0.0}
    assert item_scores(path, "inst_level_strict_acc") == pytest.approx({0: 0.5, 1: 1.0, 2: 1 / 3})


def test_list_valued_metric_resamples_prompts_weighted_like_lm_eval(tmp_path):
    passes_a = [[True, False], [True], [False, False, True], [False]]
    passes_b = [[True, True], [True], [False, True, True], [False]]
    path_a = ifeval_samples(tmp_path / "a.jsonl", passes_a)
    path_b = ifeval_samples(tmp_path / "b.jsonl", passes_b)
    result = compare_files(path_a, path_b, "inst_level_strict_acc", resamples=200)
    # The means are lm-eval's inst_level values: instructions passed over all instructions.
    assert result["mean_a"] == pytest.approx(3 / 7) and result["mean_b"] == pytest.approx(5 / 7)
    assert result["difference"] == pytest.approx(2 / 7)
    assert result["n_items"] == 4  # prompts, not instructions
    assert result["weighted_by_list_length"] is True


def test_multi_filter_file_selects_the_named_filter(tmp_path):
    doc = {"prompt": "2+2?"}
    path = write_samples(
        tmp_path / "gsm.jsonl",
        [
            logged_sample(0, doc, {"exact_match": 1.0}, "strict-match"),
            logged_sample(0, doc, {"exact_match": 0.0}, "flexible-extract"),
        ],
    )
    assert item_scores(path, "exact_match/strict-match") == {0: 1.0}
    assert item_scores(path, "exact_match/flexible-extract") == {0: 0.0}
    with pytest.raises(ValueError, match="exact_match/strict-match") as failure:
        item_scores(path, "exact_match")
    assert "no item has metric 'exact_match'" in str(failure.value)


def test_non_score_lists_are_refused(tmp_path):
    path = write_samples(
        tmp_path / "mcc.jsonl", [logged_sample(0, {"prompt": "q"}, {"mcc": [1, 0]})]
    )
    with pytest.raises(ValueError, match="not a per-item score"):
        item_scores(path, "mcc")


def test_different_documents_under_one_doc_id_name_both_files(tmp_path):
    path_a = write_samples(
        tmp_path / "a.jsonl", [logged_sample(0, {"prompt": "one"}, {"acc": 1.0})]
    )
    path_b = write_samples(
        tmp_path / "b.jsonl", [logged_sample(0, {"prompt": "two"}, {"acc": 1.0})]
    )
    with pytest.raises(ValueError, match="different documents") as failure:
        compare_files(path_a, path_b, "acc", resamples=10)
    assert str(path_a) in str(failure.value) and str(path_b) in str(failure.value)


def test_duplicate_doc_id_is_refused(tmp_path):
    record = logged_sample(3, {"prompt": "q"}, {"acc": 1.0})
    path = write_samples(tmp_path / "dup.jsonl", [record, record])
    with pytest.raises(ValueError, match="doc_id 3 appears twice"):
        item_scores(path, "acc")


# --------------------------------------------------------------------------- replicates


def test_compare_replicates_bootstraps_the_seed_averaged_difference(tmp_path):
    direct = [[[True], [False], [True], [False]], [[False], [False], [True], [True]]]
    codit = [[[True], [True], [True], [False]], [[True], [False], [True], [True]]]
    paths_a = [ifeval_samples(tmp_path / f"a{i}.jsonl", flags) for i, flags in enumerate(direct)]
    paths_b = [ifeval_samples(tmp_path / f"b{i}.jsonl", flags) for i, flags in enumerate(codit)]
    result = compare_replicates(paths_a, paths_b, "prompt_level_strict_acc", resamples=300)
    # per item, seed means: direct (0.5, 0, 1, 0.5), CoDIT (1, 0.5, 1, 0.5)
    assert result["mean_a"] == 0.5 and result["mean_b"] == 0.75
    assert result["difference"] == 0.25 and result["n_items"] == 4
    assert result["n_seeds_a"] == result["n_seeds_b"] == 2
    assert result["a"] == [str(path) for path in paths_a]
    assert result["low"] <= 0.25 <= result["high"]


def test_one_file_per_arm_is_compare_files(tmp_path):
    path_a = ifeval_samples(tmp_path / "a.jsonl", [[True, False], [False], [True, True], [False]])
    path_b = ifeval_samples(tmp_path / "b.jsonl", [[True, True], [True], [False, True], [False]])
    for metric in ("prompt_level_strict_acc", "inst_level_strict_acc"):
        single = compare_files(path_a, path_b, metric, resamples=200, seed=3)
        replicated = compare_replicates([path_a], [path_b], metric, resamples=200, seed=3)
        for key, value in single.items():
            if key not in {"a", "b"}:
                assert replicated[key] == value
        assert (single["a"], single["b"]) == (str(path_a), str(path_b))


def test_replicates_of_different_items_are_refused(tmp_path):
    path_a = ifeval_samples(tmp_path / "a.jsonl", [[True], [False], [True]])
    short = ifeval_samples(tmp_path / "short.jsonl", [[True], [False]])
    path_b = ifeval_samples(tmp_path / "b.jsonl", [[True], [True], [True]])
    with pytest.raises(ValueError, match="hold different items") as failure:
        compare_replicates([path_a, short], [path_b, path_b], "prompt_level_strict_acc")
    assert str(short) in str(failure.value)
    with pytest.raises(ValueError, match="no samples files"):
        compare_replicates([], [path_b], "prompt_level_strict_acc")


def test_shared_only_compares_the_items_every_file_scored(tmp_path):
    def judged(name: str, values: dict[int, float | None]) -> Path:
        """A judged benchmark's samples: an item without verdict lacks its metric."""
        records = [
            {"doc_id": key, "doc_hash": f"h{key}", "filter": "none", "metrics": ["win_rate"],
             **({} if value is None else {"win_rate": value})}
            for key, value in values.items()
        ]  # fmt: skip
        return write_samples(tmp_path / name, records)

    direct = [judged("a0", {0: 10, 1: 20, 2: 30, 3: 40}), judged("a1", {0: 10, 1: 20, 3: 40})]
    codit = [judged("b0", {0: 15, 1: None, 2: 35, 3: 45}), judged("b1", {0: 15, 2: 35, 3: 45})]
    with pytest.raises(ValueError, match="lack 'win_rate'"):  # strict by default
        compare_replicates(direct[:1], codit[:1], "win_rate", resamples=50)
    with pytest.raises(ValueError, match="hold different items"):
        compare_replicates(direct, direct, "win_rate", resamples=50)
    result = compare_replicates(direct, codit, "win_rate", resamples=50, shared_only=True)
    # direct scored 0, 1 and 3 in both seeds, CoDIT 0, 2 and 3: items 0 and 3 are compared
    assert (result["n_items"], result["n_items_a"], result["n_items_b"]) == (2, 3, 3)
    assert (result["mean_a"], result["mean_b"], result["difference"]) == (25, 30, 5)
    elsewhere = [judged("c0", {9: 1})]
    with pytest.raises(ValueError, match="no items to compare"):
        compare_replicates(direct[:1], elsewhere, "win_rate", resamples=50, shared_only=True)


# --------------------------------------------------------------------------- across seeds


def test_seed_interval_three_seeds_by_hand():
    result = seed_interval([0.5, 0.6, 0.7])
    half_width = T_975_DF2 * 0.1 / math.sqrt(3)
    assert result["n"] == 3
    assert result["mean"] == pytest.approx(0.6, abs=1e-15)
    assert result["sd"] == pytest.approx(0.1, rel=1e-12)
    assert result["low"] == pytest.approx(0.6 - half_width, rel=1e-9)
    assert result["high"] == pytest.approx(0.6 + half_width, rel=1e-9)


def test_one_seed_gives_no_interval():
    result = seed_interval([0.42])
    assert result["mean"] == 0.42 and result["n"] == 1
    assert result["low"] is None and result["high"] is None and result["sd"] is None


# --------------------------------------------------------------------------- command line


def test_compare_command_end_to_end(tmp_path, capsys):
    direct = [[True, False], [False], [True, True], [False, False], [True], [False]]
    codit = [[True, True], [True], [True, True], [False, True], [True], [False]]
    path_a = ifeval_samples(tmp_path / "direct.jsonl", direct)
    path_b = ifeval_samples(tmp_path / "codit.jsonl", codit)
    args = ["compare", "--a", str(path_a), "--b", str(path_b)]
    main([*args, "--metric", "prompt_level_strict_acc", "--resamples", "400", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["mean_a"] == pytest.approx(2 / 6) and result["mean_b"] == pytest.approx(4 / 6)
    assert result["difference"] == pytest.approx(2 / 6)
    assert result["low"] <= result["difference"] <= result["high"]
    assert result["resamples"] == 400 and result["seed"] == 0 and result["n_items"] == 6

    main([*args, "--metric", "inst_level_strict_acc", "--resamples", "400", "--seed", "2"])
    text = capsys.readouterr().out
    assert "b - a = +0.3333" in text and "95% interval" in text and "seed 2" in text
    assert "6 paired items" in text and "p = " in text
    assert "a: 0.4444" in text  # 4 of 9 instructions passed

    with pytest.raises(SystemExit) as failure:
        main([*args, "--metric", "exact_match"])
    assert "codit compare: error" in str(failure.value) and "exact_match" in str(failure.value)
