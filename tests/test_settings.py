"""codit.workflow.settings: one field declaration is the flag, the typed value, the config key, the
command line the rules run and the provenance entry; the two must never drift apart."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from workflow_runs import REPO

from codit.baselines.bestofn import BestOfNRun, JudgeEndpoint
from codit.baselines.public import PublicSource
from codit.data.datasets import GatherSettings
from codit.data.instructions import InstructionSource
from codit.evaluation.lmeval import EvaluationRun, EvaluationSettings, ModelLabels
from codit.evaluation.tasks import TaskSelection
from codit.generation.settings import EngineSettings, GenerationRun, SamplingSettings
from codit.judged import alpacaeval
from codit.judged.answering import AnsweringRun, AnsweringSettings
from codit.judged.common import JudgedOutputs
from codit.tools.cost import load_config
from codit.training.sft import SftRun, TrainingSettings
from codit.workflow.settings import Settings, group, option


def parse(cls: type[Settings], command_line: str) -> Settings:
    """What the command's parser makes of `command_line`."""
    parser = argparse.ArgumentParser()
    cls.add_arguments(parser)
    return cls.from_args(parser.parse_args(shlex.split(command_line)))


EXAMPLES = [
    TrainingSettings(lora_r=8, learning_rate=1e-4, epochs=3.0, dtype="bfloat16"),
    SamplingSettings(temperature=0.7, top_p=0.95, max_new_tokens=512),
    EngineSettings(batch_size=4, cache="static", compile=True, device="cpu"),
    GatherSettings(drop_truncated=True),
    TaskSelection(tasks="ifeval,gsm8k", include_path=("a dir", "b"), default_tasks=False),
    EvaluationSettings(
        selection=TaskSelection(tasks="ifeval"), batch_size="auto", limit=0.5,
        apply_chat_template=False, gen_kwargs="max_gen_toks=64",
    ),  # fmt: skip
    InstructionSource(
        source="hub:org/data", id_field="uid", keep_if={"language": "English", "n": 2}, limit=9
    ),
    PublicSource(name="alpaca", source="hub:tatsu-lab/alpaca", instruction_field="instruction",
                 response_field="output", context_field="input", match_cards=("a.json", "b.json")),
    JudgeEndpoint(url="http://judge:8000/v1", model="org/judge", workers=2),
    SftRun(student="s", data="d.jsonl", out="o", trust_remote_code=True, checkpoint_steps=25,
           training=TrainingSettings(grad_accum=4)),
    EvaluationRun(model="m", out="r.json", labels=ModelLabels(label=("arm=direct", "seed=0")),
                  settings=EvaluationSettings(selection=TaskSelection(tasks="t"))),
    GenerationRun(pair="p", post="post", pre="pre", instructions="i.jsonl", out="o.jsonl",
                  card="c.json", chat_template_kwargs={"enable_thinking": False}, skip_pre=False,
                  sampling=SamplingSettings(top_p=0.9), engine=EngineSettings(batch_size=2)),
    AnsweringRun(model="m", bench=Path("b"), out=Path("o.jsonl"), card=Path("c.json"), seed=3,
                 labels=ModelLabels(label=("arm=direct",), teacher="t"),
                 answering=AnsweringSettings(max_new_tokens=64,
                                             engine=EngineSettings(batch_size=2))),
    alpacaeval.GradingRun(bench=Path("b"), answers=Path("a.jsonl"), seed=2, top_logprobs=0,
                          judge=JudgeEndpoint(url="http://j/v1", model="m"),
                          outputs=JudgedOutputs(out=Path("j.jsonl"), scores=Path("s.json"),
                                                answers_card=Path("c.json"))),
    BestOfNRun(candidates=(Path("a.jsonl"), Path("b.jsonl")), scorer="judge", pair="p",
               out=Path("o.jsonl"), card=Path("c.json"), judge=JudgeEndpoint(url="http://j/v1")),
]  # fmt: skip


@pytest.mark.parametrize("settings", EXAMPLES, ids=lambda s: type(s).__name__)
def test_the_command_line_parses_back_to_the_same_settings(settings):
    assert parse(type(settings), settings.command_line()) == settings


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/paper.yaml"])
def test_both_configs_sections_become_the_settings_their_commands_parse(configfile):
    config = load_config(REPO / configfile)
    sections = [
        TrainingSettings.from_config(config["sft"]),
        SamplingSettings.from_config(config["generation"]),
        EngineSettings.from_config(config["generation"]),
        GatherSettings.from_config(config["generation"]),
    ]
    if config["judge"]["url"]:
        sections.append(JudgeEndpoint.from_config(config["judge"]))
    for settings in sections:
        assert parse(type(settings), settings.command_line()) == settings
    # Every key of the `sft:` section that is a flag reaches the command with its value.
    command = sections[0].command_line()
    assert f"--lora-r {config['sft']['lora_r']} " in command
    assert f"--max-length {config['sft']['max_length']} " in command


@dataclass(frozen=True, kw_only=True)
class Endpoint(Settings):
    flag_prefix: ClassVar[str] = "judge_"

    url: str | None = option(None, "base URL")
    workers: int = option(8)


@dataclass(frozen=True, kw_only=True)
class Example(Settings):
    name: str = option(help="required: no default")
    verbose: bool = option(False)
    cache: bool = option(True)
    tag: tuple[str, ...] = option(())
    files: tuple[str, ...] = option((), nargs="+")
    limit: int | None = option(None)
    endpoint: Endpoint = group(Endpoint, "endpoint")


def test_flags_switches_lists_and_prefixed_groups():
    settings = Example(name="x y", verbose=True, cache=False, tag=("a", "b"), files=("f", "g"))
    assert settings.command_line() == (
        "--name 'x y' --verbose --no-cache --tag a --tag b --files f g --judge-workers 8"
    )
    # None and a switch at its default are left out, like a store_true flag.
    assert Example(name="n").command_line() == "--name n --judge-workers 8"
    assert parse(Example, "--name n --judge-url http://u").endpoint.url == "http://u"
    # A group's record is merged into its parent's, lists become JSON lists.
    assert Example(name="n", tag=("a",)).record() == {
        "name": "n", "verbose": False, "cache": True, "tag": ["a"], "files": [], "limit": None,
        "url": None, "workers": 8,
    }  # fmt: skip


def test_required_flag_and_unknown_config_override_are_refused(capsys):
    with pytest.raises(SystemExit):
        parse(Example, "--verbose")
    assert "required: --name" in capsys.readouterr().err
    with pytest.raises(TypeError, match="no field 'nmae'"):
        Example.from_config({}, nmae="x")
    with pytest.raises(TypeError, match="mutable default"):
        option([])


def test_a_bad_value_is_a_value_error_naming_the_flag():
    # Raised in from_args, where `codit <stage>` turns it into one line naming the flag.
    with pytest.raises(ValueError, match="--keep-if must be a JSON object"):
        parse(InstructionSource, "--source s --keep-if '[1]'")
    with pytest.raises(ValueError, match="--compile needs --cache static"):
        parse(EngineSettings, "--compile")
    with pytest.raises(ValueError, match="give one of --size and --match-cards"):
        parse(PublicSource, "--name n --source s --instruction-field i --response-field r")
