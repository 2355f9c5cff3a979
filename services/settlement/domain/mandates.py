"""A principal's mandate as settlement sees it: only its auto-approve limit matters here.

The first mandate of a principal is remembered as is (its limit came with the wallet's
`FundWallet`). A later one is an amendment: when the mandate contract allows it
(`amendment_problems`, the rule the agents service applies too) it replaces the remembered
mandate and its limit becomes the wallet's; otherwise nothing changes, as for the agent.
"""

from __future__ import annotations

from dataclasses import dataclass

from haggle.contracts.mandate import Mandate, amendment_problems


@dataclass(frozen=True)
class Assigned:
    keep: Mandate | None
    """The mandate to remember from now on; None: keep the one remembered."""
    limit_cents: int | None
    """The wallet's new auto-approve limit; None: leave it."""
    problems: tuple[str, ...] = ()
    """Why an amendment was ignored."""


def on_assigned(known: Mandate | None, assigned: Mandate) -> Assigned:
    if known is None:
        return Assigned(keep=assigned, limit_cents=None)
    if assigned == known:
        return Assigned(keep=None, limit_cents=None)
    if problems := amendment_problems(known, assigned):
        return Assigned(keep=None, limit_cents=None, problems=tuple(problems))
    limit = assigned.auto_approve_limit_cents
    return Assigned(keep=assigned, limit_cents=None if limit == known.auto_approve_limit_cents else limit)
