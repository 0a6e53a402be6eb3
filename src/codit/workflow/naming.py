"""Safe, stable names for models, arms and alphas in output paths.

An arm is one way of getting a fine-tuned (or, for the chat vector, edited) student; its name is
a path component and says everything that distinguishes it:

- `direct`: responses sampled from the teacher's post-trained model;
- `direct_sample<j>` (j >= 1): further direct samples, the candidates of Best-of-N (never trained);
- `codit_alpha<A>_beta<B>`: CoDIT responses;
- `bestof<N>_<scorer>`: the best of N direct samples per instruction by `oracle` or `judge`;
- `public_<name>`: a public instruction dataset from the config;
- `chatvector_r<R>`: the student plus R x (theta_post - theta_pre), no training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def model_slug(model_id: str) -> str:
    """Turn a Hub id or local name into one path component: `Qwen/Qwen3-8B` -> `Qwen--Qwen3-8B`."""
    # No leading dot: a slug is never `.`, `..` or a hidden folder.
    slug = _SLUG_UNSAFE.sub("-", model_id.strip().replace("/", "--")).lstrip(".-").rstrip("-")
    if not slug:
        raise ValueError(f"model id {model_id!r} gives no usable path name")
    return slug


def format_number(value: float) -> str:
    """A float as it appears in paths: shortest exact repr, no trailing zeros (`1.0` -> `1`)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


DIRECT_ARM = "direct"
CODIT = "codit"
DIRECT_SAMPLE = "direct_sample"
BEST_OF_N = "bestofn"
PUBLIC = "public"
CHAT_VECTOR = "chatvector"
REFERENCE = "reference"
SCORERS = ("oracle", "judge")
# Names of public datasets: no underscore, so the arm name splits unambiguously.
PUBLIC_NAME = r"[A-Za-z0-9][A-Za-z0-9.-]*"
_NUMBER = r"[0-9.e-]+"
_PATTERNS = {
    DIRECT_ARM: "direct",
    DIRECT_SAMPLE: r"direct_sample(?P<sample>[1-9][0-9]*)",
    CODIT: rf"codit_alpha(?P<alpha>{_NUMBER})_beta(?P<beta>{_NUMBER})",
    BEST_OF_N: rf"bestof(?P<n>[1-9][0-9]*)_(?P<scorer>{'|'.join(SCORERS)})",
    PUBLIC: rf"public_(?P<dataset>{PUBLIC_NAME})",
    CHAT_VECTOR: rf"chatvector_r(?P<ratio>{_NUMBER})",
}


def arm_pattern(*kinds: str) -> str:
    """A Snakemake wildcard constraint matching the arms of `kinds` (all kinds by default)."""
    chosen = kinds or tuple(_PATTERNS)
    return "|".join(re.sub(r"\?P<[a-z]+>", "?:", _PATTERNS[kind]) for kind in chosen)


ARM_PATTERN = arm_pattern()
# Arms a student is fine-tuned on (a dataset exists for them).
DATASET_KINDS = (DIRECT_ARM, CODIT, BEST_OF_N, PUBLIC)


@dataclass(frozen=True)
class Arm:
    """A parsed arm name; fields that do not apply to the kind are None."""

    name: str
    kind: str
    alpha: float | None = None
    beta: float | None = None
    n: int | None = None
    scorer: str | None = None
    dataset: str | None = None
    ratio: float | None = None
    sample: int | None = None

    @property
    def samples_teacher(self) -> bool:
        """Whether the arm's data are sampled from the teacher (so a seed changes them)."""
        return self.kind in {DIRECT_ARM, DIRECT_SAMPLE, CODIT, BEST_OF_N}


def codit_arm(alpha: float, beta: float) -> str:
    """The arm name of a CoDIT dataset: `codit_alpha0.01_beta1`."""
    return f"codit_alpha{format_number(alpha)}_beta{format_number(beta)}"


def direct_sample_arm(sample: int) -> str:
    """Direct sample j (j >= 1; sample 0 is the `direct` arm itself)."""
    return DIRECT_ARM if sample == 0 else f"{DIRECT_SAMPLE}{sample}"


def best_of_n_arm(n: int, scorer: str) -> str:
    return f"bestof{n}_{scorer}"


def public_arm(dataset: str) -> str:
    return f"public_{dataset}"


def chat_vector_arm(ratio: float) -> str:
    return f"chatvector_r{format_number(ratio)}"


def parse_arm(arm: str) -> Arm:
    """Inverse of the arm-name builders; a clear error for a name of no known kind."""
    for kind, pattern in _PATTERNS.items():
        match = re.fullmatch(pattern, arm)
        if not match:
            continue
        fields = match.groupdict()
        number = {key: float(fields[key]) for key in ("alpha", "beta", "ratio") if key in fields}
        whole = {key: int(fields[key]) for key in ("n", "sample") if key in fields}
        text = {key: fields[key] for key in ("scorer", "dataset") if key in fields}
        return Arm(arm, kind, **number, **whole, **text)
    raise ValueError(
        f"arm {arm!r} is none of: direct, direct_sample<j>, codit_alpha<A>_beta<B>, "
        "bestof<N>_<oracle|judge>, public_<name>, chatvector_r<R>"
    )
