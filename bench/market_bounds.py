"""What a market's budgets allow at best: the ceilings on issue 13's efficiency and listings-sold targets.

Issue 13 asks a 69 × $100, 500-listing market (misdescribed 10%) for welfare efficiency ≥ 0.8
against the optimum and ≥ 40% of listings sold. Both are measured against figures that ignore
what each buyer can pay. This prints, per seed, with the default approval policy:

- the optimum (budget-blind, the report's denominator) and the best matching within budgets
  with every trade at the seller's floor (the least any market can charge): their ratio is the
  highest efficiency any market with these budgets could report;
- the most trades the budgets allow at the floors, whatever their surplus, as a share of the
  listings: a ceiling on "listings sold"; and the same at the asking prices;
- with `--sim`, what `haggle sim` realises on the same population, for comparison.

The solver stops within 1% of optimal (`BUDGET_GAP`); the gap is printed and the ceilings below
are raised by it, so they are never understated.

    .venv/bin/python -m bench.market_bounds [--participants 69 --listings 500] [--seeds 1-3] [--sim]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

from haggle.cli.market import parse_seeds
from haggle.market.approvals import DEFAULT_POLICY, ApprovalPolicy
from haggle.market.optimum import most_trades_within_budgets, optimum, within_budgets
from haggle.market.population import Population, build_population
from haggle.market.runner import consent_limits

EFFICIENCY_TARGET = 0.8
SOLD_TARGET = 0.4
VARIANTS = ["boulware", "conceder"]


def bounds(population: Population, policy: ApprovalPolicy) -> dict[str, float]:
    wants, listings = list(population.wants()), list(population.listings())
    budgets = {p.id: p.budget_cents for p in population.principals}
    limits = consent_limits(population, policy)
    blind = optimum(wants, listings, limits)
    budgeted = within_budgets(wants, listings, budgets, limits)
    at_floor = most_trades_within_budgets(wants, listings, budgets, limits)
    at_asking = most_trades_within_budgets(wants, listings, budgets, limits, at_asking=True)
    return {
        "optimum_cents": blind.surplus_cents,
        "budget_optimum_cents": budgeted.best.surplus_cents,
        "efficiency_ceiling": budgeted.best.surplus_cents * (1 + budgeted.gap) / max(1, blind.surplus_cents),
        "sold_ceiling": at_floor.best.surplus_cents * (1 + at_floor.gap) / len(listings),
        "sold_at_asking": at_asking.best.surplus_cents * (1 + at_asking.gap) / len(listings),
        "gap": max(budgeted.gap, at_floor.gap, at_asking.gap),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.market_bounds", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--participants", type=int, default=69)
    parser.add_argument("--listings", type=int, default=500)
    parser.add_argument("--budget-cents", type=int, default=10_000)
    parser.add_argument("--seeds", default="1-3")
    parser.add_argument("--sim", action="store_true", help="also run `haggle sim` on each population")
    args = parser.parse_args(argv)
    print(
        f"{args.participants} × ${args.budget_cents // 100}, {args.listings} listings, misdescribed 10%,"
        f" policy {DEFAULT_POLICY}; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for seed in parse_seeds(args.seeds):
        started = time.perf_counter()
        population = build_population(
            seed, args.participants, args.listings, args.budget_cents, 0.1, VARIANTS, False
        )
        policy = ApprovalPolicy.parse(DEFAULT_POLICY, seed)
        found = bounds(population, policy)
        line = (
            f"seed {seed}: efficiency ceiling {found['efficiency_ceiling']:.3f}"
            f" (target {EFFICIENCY_TARGET}), listings-sold ceiling {found['sold_ceiling']:.1%}"
            f" at floors, {found['sold_at_asking']:.1%} at asking (target {SOLD_TARGET:.0%});"
            f" solver gap ≤ {found['gap']:.1%}"
        )
        if args.sim:
            line += sim_figures(population)
        print(f"{line} [{time.perf_counter() - started:.1f} s]", flush=True)


def sim_figures(population: Population) -> str:
    from haggle_lab.sim.engine import SimConfig, simulate

    (report,) = simulate(population, SimConfig())
    surplus = report.surplus
    return (
        f"; sim realises efficiency {surplus.efficiency or 0:.3f}"
        f" ({surplus.budget_efficiency or 0:.3f} within budgets),"
        f" listings sold {report.completion.listings_sold_share or 0:.1%}"
    )


if __name__ == "__main__":
    main()
