"""Variants: the named groups of principals a market compares, and the brain each one runs.

A variant is a strategy from the negotiation literature (`boulware`,
`linear`, `conceder`, `tit_for_tat`, `fixed_anchor`), a Claude model
(`claude-haiku`, `claude-sonnet`, or a full model id such as
`claude-opus-4-5`), or `compromised`: the red-team brain that always tries
the worst move, to show what the guard holds in a live market. `brain_spec` gives the brain in the shape of
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


class UnknownVariant(ValueError):
    pass


def check_variant(variant: str) -> str:
    """The variant itself when haggle knows how to run it; else `UnknownVariant` naming the choices."""
    if variant in (*STRATEGY_VARIANTS, COMPROMISED, *CLAUDE_ALIASES) or _CLAUDE_MODEL_ID.match(variant):
        return variant
    known = ", ".join((*STRATEGY_VARIANTS, COMPROMISED, *CLAUDE_ALIASES))
    raise UnknownVariant(f"unknown variant {variant!r}: use one of {known}, or a Claude model id")


def brain_spec(variant: str, seed: int) -> dict[str, Any]:
    """The mandate's `brain` for a principal of this variant; `seed` makes a strategy reproducible."""
    check_variant(variant)
    if variant in STRATEGY_VARIANTS:
        return {"kind": "strategy", "name": variant, "params": {"seed": seed}}
    if variant == COMPROMISED:
        return {"kind": "compromised", "seed": seed}
    return {"kind": "claude", "model": CLAUDE_ALIASES.get(variant, variant)}
