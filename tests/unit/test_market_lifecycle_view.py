"""haggle.market.lifecycle and the runner: when a market may be called quiet."""

from __future__ import annotations

from haggle.contracts.market import MarketPhase
from haggle.market.lifecycle import MarketView
from haggle.market.runner import agents_read_all


def view(listings_read: int, admitted: int) -> MarketView:
    return MarketView(
        phases={"agents": MarketPhase.OPEN},
        threads=0,
        threads_open=0,
        deals=0,
        deals_seen_by_settlement=0,
        deals_open=0,
        waiting_to_open=0,
        closing_at=None,
        listings_read=listings_read,
        agents_admitted=admitted,
    )


def test_nothing_waiting_is_not_quiet_until_the_agents_have_read_everything() -> None:
    # A 500 x 3,000 market closed with no negotiation: the agents service, busy with a backlog,
    # had read none of its listings, so none waited to open and the services looked quiet.
    assert view(0, 500).quiet
    assert not agents_read_all(view(0, 500), principals=500, listings=3_000)
    assert not agents_read_all(view(3_000, 499), principals=500, listings=3_000)
    assert agents_read_all(view(3_000, 500), principals=500, listings=3_000)
