"""haggle.market.lifecycle and the runner: when a market may be called quiet."""

from __future__ import annotations

from haggle.contracts.market import MarketPhase
from haggle.market.lifecycle import MarketView
from haggle.market.runner import agents_read_all


def view(listings_read: int, admitted: int, agents_open: int = 0, agents_deals_open: int = 0) -> MarketView:
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
        agents_open=agents_open,
        agents_deals_open=agents_deals_open,
    )


def test_nothing_waiting_is_not_quiet_until_the_agents_have_read_everything() -> None:
    # A 500 x 3,000 market closed with no negotiation: the agents service, busy with a backlog,
    # had read none of its listings, so none waited to open and the services looked quiet.
    assert view(0, 500).quiet
    assert not agents_read_all(view(0, 500), principals=500, listings=3_000)
    assert not agents_read_all(view(3_000, 499), principals=500, listings=3_000)
    assert agents_read_all(view(3_000, 500), principals=500, listings=3_000)


def test_what_the_agents_have_not_read_yet_is_in_flight() -> None:
    # A 500 x 3,000 market was called quiet with no thread open at the referee and every deal final
    # at settlement, while the agents had yet to read some of those ends: the failed purchases
    # reopened candidates, and 864 openings were refused as the market closed.
    assert view(3_000, 500).quiet
    assert not view(3_000, 500, agents_open=1).quiet
    assert not view(3_000, 500, agents_deals_open=1).quiet
    assert view(3_000, 500, agents_open=2, agents_deals_open=3).in_flight == 5
