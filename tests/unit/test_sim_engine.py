"""The in-process engine (`haggle_lab.sim`): deterministic per seed, and its invariants hold."""

from __future__ import annotations

import gc
from functools import partial

import pytest

from haggle.market.population import build_population
from haggle_lab.sim.agents import RemoteBrain
from haggle_lab.sim.engine import COLLECT_EVERY, SimConfig, few_collections, simulate, simulate_seeds


def population(seed: int, variants: tuple[str, ...] = ("boulware", "conceder"), parallel: bool = False):  # type: ignore[no-untyped-def]
    return build_population(seed, 12, 30, 10_000, 0.1, list(variants), parallel)


def test_the_same_seed_gives_the_same_report_byte_for_byte() -> None:
    first = [r.to_json() for r in simulate(population(7))]
    again = [r.to_json() for r in simulate(population(7))]
    other = [r.to_json() for r in simulate(population(8))]
    assert first == again
    assert first != other


def test_a_market_trades_settles_and_keeps_every_invariant() -> None:
    (report,) = simulate(population(3))
    assert report.ok, report.invariants
    assert set(report.invariants) >= {
        "ledger_balanced",
        "no_listing_sold_twice",
        "no_mandate_broken",
        "market_closed",
        "no_negotiation_after_close",
    }
    assert report.negotiations > 0 and report.deals_agreed > 0
    assert report.settlements.open == 0
    assert report.deals_settled == report.settlements.released


def test_denied_approvals_fail_their_escrow_and_nothing_is_released_unapproved() -> None:
    (report,) = simulate(population(3), SimConfig(approval_policy="deny-all"))
    assert report.ok
    assert report.approvals.granted == 0
    assert report.approvals.denied == report.approvals.requested
    assert report.settlements.escrow_failed >= report.approvals.denied > 0


def test_parallel_runs_one_market_per_variant() -> None:
    reports = simulate(population(2, parallel=True))
    assert [r.variants[0].variant for r in reports] == ["boulware", "conceder"]
    assert all(r.ok for r in reports)


def test_seeds_report_one_market_each_in_order() -> None:
    seen: list[int] = []
    reports = simulate_seeds([4, 5], population, progress=lambda seed, _: seen.append(seed))
    assert seen == [4, 5]
    assert [r.market_id for r in reports] == ["sim4-mixed", "sim5-mixed"]


def test_seeds_shared_among_worker_processes_give_the_same_reports_in_order() -> None:
    build = partial(
        build_population,
        participants=12,
        listings=30,
        budget_cents=10_000,
        misdescribed_rate=0.1,
        variants=["boulware", "conceder"],
        parallel=True,  # two markets a seed: a worker's reports stay together, in order
    )
    seen: list[int] = []
    alone = simulate_seeds([4, 5, 6], build)
    shared = simulate_seeds([4, 5, 6], build, progress=lambda seed, _: seen.append(seed), jobs=2)
    assert [r.to_json() for r in shared] == [r.to_json() for r in alone]
    assert seen == [4, 4, 5, 5, 6, 6]
    assert [r.market_id for r in shared][::2] == ["sim4-boulware", "sim5-boulware", "sim6-boulware"]


def test_a_model_brain_is_refused_not_called() -> None:
    with pytest.raises(RemoteBrain):
        simulate(population(1, ("claude-haiku",)))


def test_a_market_leaves_the_garbage_collector_as_it_found_it() -> None:
    """A market runs with fewer collector passes (`few_collections`); the process gets its settings
    back afterwards, even when the market fails."""
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    simulate(population(3))
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)
    with pytest.raises(RuntimeError), few_collections():
        assert gc.get_threshold()[0] == COLLECT_EVERY != before[0]
        raise RuntimeError("a market that fails")
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)
