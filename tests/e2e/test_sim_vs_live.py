"""One population run both ways: `haggle sim` in process, and `market run` over the live services.

The engine is for research: its figures must say what the live market would. Every invariant
must hold both ways, and welfare efficiency and the share of listings sold must stay within a
stated band of each other (the two differ on purpose in a few ways: simulated versus wall-clock
time inside a negotiation, no rate limiter, approvals answered within a hop instead of a poll).
"""

from __future__ import annotations

import pytest

from haggle.market.population import build_population
from haggle.market.runner import RunConfig, run_all
from haggle_lab.sim.engine import SimConfig, simulate_async

pytestmark = pytest.mark.usefixtures("running_services")

EFFICIENCY_BAND = 0.25
"""At most this far apart (absolute, on 0..1): one seed of a 20-principal market is noisy."""
SOLD_BAND = 0.20


async def test_the_engine_and_the_live_market_agree_within_a_band(bootstrap: str) -> None:
    population = build_population(1, 20, 60, 10_000, 0.1, ["boulware", "conceder"], False)
    (sim,) = await simulate_async(population, SimConfig())
    (live,) = await run_all(population, RunConfig(deadline_seconds=300), bootstrap)

    assert sim.population_digest == live.population_digest
    assert sim.invariants == {name: True for name in live.invariants}, sim.invariants
    assert all(live.invariants.values()), live.invariants
    assert sim.deals_agreed > 0 and live.deals_agreed > 0
    assert sim.surplus.efficiency is not None and live.surplus.efficiency is not None
    gap = abs(sim.surplus.efficiency - live.surplus.efficiency)
    assert gap <= EFFICIENCY_BAND, (
        f"efficiency sim {sim.surplus.efficiency:.3f} live {live.surplus.efficiency:.3f}"
    )
    sold_sim, sold_live = sim.completion.listings_sold_share or 0, live.completion.listings_sold_share or 0
    assert abs(sold_sim - sold_live) <= SOLD_BAND, f"listings sold sim {sold_sim:.3f} live {sold_live:.3f}"
