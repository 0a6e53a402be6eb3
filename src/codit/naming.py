"""Safe, stable names for models, arms and alphas in output paths."""

from __future__ import annotations

import re

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


def codit_arm(alpha: float, beta: float) -> str:
    """The arm name of a CoDIT dataset: `codit_alpha0.01_beta1`."""
    return f"codit_alpha{format_number(alpha)}_beta{format_number(beta)}"


DIRECT_ARM = "direct"
ARM_PATTERN = r"direct|codit_alpha[0-9.e-]+_beta[0-9.e-]+"
_ARM_RE = re.compile(r"codit_alpha(?P<alpha>[0-9.e-]+)_beta(?P<beta>[0-9.e-]+)")


def parse_arm(arm: str) -> tuple[str, float | None, float | None]:
    """Inverse of `codit_arm`: returns (kind, alpha, beta); the direct arm has no alpha or beta."""
    if arm == DIRECT_ARM:
        return DIRECT_ARM, None, None
    match = _ARM_RE.fullmatch(arm)
    if not match:
        raise ValueError(f"arm {arm!r} is neither 'direct' nor 'codit_alpha<A>_beta<B>'")
    return "codit", float(match["alpha"]), float(match["beta"])
