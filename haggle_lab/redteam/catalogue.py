"""The red-team catalogue: every attack, in order, and a runner that tries them all.

An attack "held" only when the observed outcome shows its invariant held: the
referee's or the guard's typed refusal with the expected reason, no deal, no
money moved. `haggle redteam run` prints the table; tests/adversarial runs each.
"""

from __future__ import annotations

import logging

from haggle_lab.redteam.attack import Attack, AttackResult, RedTeamContext
from haggle_lab.redteam.floods import FLOODS
from haggle_lab.redteam.persuasion import PERSUASION
from haggle_lab.redteam.protocol import PROTOCOL
from haggle_lab.redteam.secrecy import ATTACKS as SECRECY
from haggle_lab.redteam.settlement import SETTLEMENT

__all__ = ["ATTACKS", "Attack", "AttackResult", "RedTeamContext", "by_name", "run_catalogue"]

ATTACKS: tuple[Attack, ...] = (*PERSUASION, *SECRECY, *PROTOCOL, *SETTLEMENT, *FLOODS)


def by_name(name: str) -> Attack:
    found = next((a for a in ATTACKS if a.name == name), None)
    if found is None:
        raise KeyError(f"no attack {name!r}; known: {', '.join(a.name for a in ATTACKS)}")
    return found


async def run_catalogue(
    ctx: RedTeamContext, attacks: tuple[Attack, ...] = ATTACKS
) -> list[tuple[Attack, AttackResult]]:
    # The guard logs every refusal it makes; here they are the expected outcome, not news.
    logging.getLogger("services.agents.decide").setLevel(logging.ERROR)
    results = []
    for attack in attacks:
        result = await attack.run(ctx)
        results.append((attack, result))
    return results


def broken(results: list[tuple[Attack, AttackResult]]) -> list[str]:
    """Attacks that broke their invariant: not held, or held for a reason other than the expected one."""
    return [a.name for a, r in results if not (r.held and r.seen in a.expected)]
