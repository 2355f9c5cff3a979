"""The red-team catalogue, one test per attack, over the real services: every invariant must hold."""

from __future__ import annotations

import pytest

from haggle_lab.redteam.catalogue import ATTACKS, RedTeamContext, by_name

pytestmark = pytest.mark.usefixtures("running_services")


def test_the_catalogue_covers_at_least_45_distinct_attacks() -> None:
    names = [a.name for a in ATTACKS]
    assert len(names) >= 45 and len(set(names)) == len(names)
    assert {a.category for a in ATTACKS} >= {
        "persuasion",
        "secrecy",
        "money",
        "protocol",
        "misdescription",
        "flood",
    }


@pytest.mark.parametrize("name", [a.name for a in ATTACKS])
async def test_attack_is_stopped(name: str, bootstrap: str, database_url: str) -> None:
    attack = by_name(name)
    ctx = RedTeamContext(bootstrap, database_url)
    result = await attack.run(ctx)
    assert result.held, f"{name} broke '{attack.invariant}': {result.seen} — {result.detail}"
    assert result.seen in attack.expected, f"{name}: saw {result.seen}, expected {attack.expected}"
