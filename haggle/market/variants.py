"""Variants: the named groups of principals a market compares, and the brain each one runs.

A variant is a strategy from the negotiation literature (`boulware`,
`linear`, `conceder`, `tit_for_tat`, `fixed_anchor`), a Claude model
(`claude-haiku`, `claude-sonnet`, or a full model id such as
`claude-opus-4-5`), `openai:<model>` (any OpenAI-compatible endpoint: the
agents service reads `OPENAI_BASE_URL` and `OPENAI_API_KEY`), a narrator
(`narrator-haiku`, `narrator-sonnet`, `narrator:<model>`: the Boulware strategy
moves, the model only writes the words; a model id not starting with `claude`
is reached through the OpenAI-compatible endpoint), or `compromised`: the
red-team brain that always tries the worst move, to show what the guard holds
in a live market. `brain_spec` gives the brain in the shape of
`haggle.contracts.mandate.BrainConfig`, as plain data.
"""

from __future__ import annotations

import re
from typing import Any

STRATEGY_VARIANTS = ("boulware", "linear", "conceder", "tit_for_tat", "fixed_anchor")
COMPROMISED = "compromised"
CLAUDE_ALIASES: dict[str, str] = {
    "claude-haiku": "claude-haiku-4-5",
    "claude-sonnet": "claude-sonnet-4-6",
}
_CLAUDE_MODEL_ID = re.compile(r"^claude-[a-z]+-[0-9][a-z0-9-]*$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")
NARRATOR_ALIASES: dict[str, str] = {
    "narrator-haiku": "claude-haiku-4-5",
    "narrator-sonnet": "claude-sonnet-4-6",
}


class UnknownVariant(ValueError):
    pass


def check_variant(variant: str) -> str:
    """The variant itself when haggle knows how to run it; else `UnknownVariant` naming the choices."""
    if variant in (
        *STRATEGY_VARIANTS,
        COMPROMISED,
        *CLAUDE_ALIASES,
        *NARRATOR_ALIASES,
    ) or _CLAUDE_MODEL_ID.match(variant):
        return variant
    kind, _, model = variant.partition(":")
    if kind in ("openai", "narrator") and _MODEL_NAME.match(model):
        return variant
    known = ", ".join((*STRATEGY_VARIANTS, COMPROMISED, *CLAUDE_ALIASES, *NARRATOR_ALIASES))
    raise UnknownVariant(
        f"unknown variant {variant!r}: use one of {known}, a Claude model id, "
        "openai:<model> or narrator:<model>"
    )


def brain_spec(variant: str, seed: int) -> dict[str, Any]:
    """The mandate's `brain` for a principal of this variant; `seed` makes a strategy reproducible."""
    check_variant(variant)
    if variant in STRATEGY_VARIANTS:
        return {"kind": "strategy", "name": variant, "params": {"seed": seed}}
    if variant == COMPROMISED:
        return {"kind": "compromised", "seed": seed}
    if variant.startswith("openai:"):
        return {"kind": "openai", "model": variant.partition(":")[2]}
    if variant in NARRATOR_ALIASES or variant.startswith("narrator:"):
        model = NARRATOR_ALIASES.get(variant) or variant.partition(":")[2]
        provider = "anthropic" if model.startswith("claude") else "openai"
        return {"kind": "narrator", "model": model, "provider": provider, "params": {"seed": seed}}
    return {"kind": "claude", "model": CLAUDE_ALIASES.get(variant, variant)}
