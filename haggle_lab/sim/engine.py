"""One market in process: the services' cores on an in-memory bus and a simulated clock.

`simulate(population, config)` runs each market of the population (one, or one per variant with
`parallel`) the way `haggle market run` runs it over the live services: the same rules
(`runner.rules_for`), every wallet funded and every mandate assigned, approvals answered by the
same policy, trading until nothing is in flight, then closing. The events an observer of the
live market would have read are turned into `MarketFacts` by the same `haggle.market` code, and
the report is `build_report`'s. The same population and config give the same report, byte for
byte: nothing reads the wall clock, ids are counted, and every step is taken in a fixed order.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat

from haggle.contracts import Message
from haggle.contracts.approval import ApprovalRequested
from haggle.contracts.mandate import Mandate
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.topics import APPROVAL_EVENTS
from haggle.market import checks, collect
from haggle.market.approvals import ApprovalPolicy
from haggle.market.collect import Scope
from haggle.market.facts import MarketFacts
from haggle.market.mandates import assign_mandate
from haggle.market.population import Population
from haggle.market.report import MarketReport, build_report
from haggle.market.runner import RunConfig, consent_limits, rules_for
from haggle_lab.sim.agents import Agents
from haggle_lab.sim.bus import HOP_SECONDS, Bus, Delivery
from haggle_lab.sim.clock import Clock
from haggle_lab.sim.listing import Listings
from haggle_lab.sim.referee import Referee
from haggle_lab.sim.settlement import Settlement

COLLECT_EVERY = 100_000
"""Allocations between two of the garbage collector's youngest passes while a market runs (Python's
default is 700)."""


@contextmanager
def few_collections() -> Iterator[None]:
    """A market allocates many small objects that live until it ends (events, envelopes, views) and
    makes few cycles, so Python's collector would scan them again and again for nothing (up to ~1 s of
    CPU in a 69 × 500 market). While it runs, what existed before is frozen out of the
    collector's way (unless the process froze objects itself) and a pass comes every
    `COLLECT_EVERY` allocations; both are restored after.
    Nothing a market computes depends on when garbage is collected."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    if not frozen:  # someone froze objects already: theirs stay frozen, ours are not
        gc.freeze()
    gc.set_threshold(COLLECT_EVERY, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if not frozen:
            gc.unfreeze()


@dataclass(frozen=True)
class SimConfig(RunConfig):
    """`market run`'s settings (`RunConfig`), plus a message's hop on the simulated clock. Its
    `deadline_seconds` and `quiet_seconds` do not apply: simulated time never runs out, and trading
    ends when nothing is left in flight."""

    hop_seconds: float = HOP_SECONDS


class Approver:
    """The simulated human of `market run`: answers each approval request by the policy."""

    def __init__(self, bus: Bus, policy: ApprovalPolicy) -> None:
        self.bus, self.policy = bus, policy
        bus.subscribe(APPROVAL_EVENTS.name, self._on_event)

    def _on_event(self, env: Delivery, event: Message) -> None:
        if isinstance(event, ApprovalRequested):
            answer = self.policy.answer(event, event.principal_id)
            if answer is not None:
                self.bus.publish(APPROVAL_EVENTS.name, answer, producer="operator")


@dataclass
class Market:
    """One market's services, wired together."""

    population: Population
    config: SimConfig
    label: str = "mixed"
    market_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.market_id = f"sim{self.population.seed}-{self.label}"
        self.rules = rules_for(self.config, self.population.seed)
        self.policy = ApprovalPolicy.parse(self.config.approval_policy, self.population.seed)
        self.clock = Clock()
        self.bus = Bus(self.clock, self.market_id, self.config.hop_seconds)
        self.referee = Referee(self.clock, self.bus, self.rules, self.market_id)
        self.listings = Listings(self.bus)
        self.settlement = Settlement(self.clock, self.bus, self.rules, self.market_id)
        self.agents = Agents(self.clock, self.bus, self.market_id)
        self.approver = Approver(self.bus, self.policy)
        self.closed = False

    async def run(self) -> MarketReport:
        with few_collections():
            for principal in self.population.principals:
                self.settlement.fund(principal.id, principal.budget_cents, principal.auto_approve_limit_cents)
                self.agents.assign(assign_mandate(principal).mandate, principal.variant)
            await self.clock.run()  # trading: until nothing is in flight
            self.referee.close()
            self.agents.close()
            await self.clock.run()
            self.closed = True
            return build_report(self.facts())

    def closed_invariants(self) -> dict[str, bool]:
        """`checks.market_closed`, asked of the services in process."""
        closing_at = self.referee.closing_at
        late = [
            e
            for _, e in self.bus.seen
            if e.type == "ThreadOpened" and (closing_at is None or e.occurred_at > closing_at)
        ]
        nothing_open = (
            self.referee.open_threads == 0
            and self.settlement.deals_open == 0
            and self.agents.opening == 0
            and len(self.referee.deals) == len(self.settlement.deals)
        )
        return {"market_closed": self.closed and nothing_open, "no_negotiation_after_close": not late}

    def facts(self) -> MarketFacts:
        """`runner.facts_of`, with the ledger, the guard and the close asked in process."""
        seen, scope = self.bus.seen, Scope(self.market_id)
        deals = collect.deals(seen, scope)
        sold_once, _ = checks.no_listing_sold_twice(seen)
        mandates_kept, _ = checks.no_mandate_broken(seen, self.population, scope)
        return MarketFacts(
            market_id=self.market_id,
            population=self.population,
            listing_ids=collect.listing_ids(seen, scope),
            negotiations=collect.negotiations(seen, scope),
            deals=deals,
            settlements=collect.settlements(seen, [d.deal_id for d in deals]),
            approvals=collect.approvals(seen, scope),
            disputes=collect.disputes(seen),
            refusals={
                "referee": collect.referee_refusals(seen),
                "guard": dict(sorted(self.agents.guard_refusals.items())),
            },
            consent_limits_cents=consent_limits(self.population, self.policy),
            invariants={
                "ledger_balanced": not self.settlement.ledger_problems(),
                "no_listing_sold_twice": sold_once,
                "no_mandate_broken": mandates_kept,
                **self.closed_invariants(),
            },
        )


async def negotiate(
    mandates: list[Mandate], rules: MarketRulesSet, market_id: str, policy: str = "grant-all"
) -> list[tuple[str, Message]]:
    """Principals' mandates in one market (each funded with its budget) until nothing is in flight:
    the messages an observer saw, in order. For a set of small markets such as the NegMAS peer's."""
    clock = Clock()
    bus = Bus(clock, market_id)
    Referee(clock, bus, rules, market_id)
    Listings(bus)
    settlement = Settlement(clock, bus, rules, market_id)
    agents = Agents(clock, bus, market_id)
    Approver(bus, ApprovalPolicy.parse(policy))
    with few_collections():
        for mandate in mandates:
            settlement.fund(mandate.principal_id, mandate.budget_cents, mandate.auto_approve_limit_cents)
            agents.assign(mandate, "sim")
        await clock.run()
    return bus.observed()


def labels(population: Population) -> list[tuple[Population, str]]:
    runs = population.runs()
    return [(run, run.variants[0] if population.parallel else "mixed") for run in runs]


async def simulate_async(population: Population, config: SimConfig = SimConfig()) -> list[MarketReport]:
    return [await Market(run, config, label).run() for run, label in labels(population)]


def simulate(population: Population, config: SimConfig = SimConfig()) -> list[MarketReport]:
    """Every market of the population, one after the other, in this process."""
    return asyncio.run(simulate_async(population, config))


def simulate_seeds(
    seeds: list[int],
    build: Callable[[int], Population],
    config: SimConfig = SimConfig(),
    progress: Callable[[int, MarketReport], None] | None = None,
    jobs: int = 1,
) -> list[MarketReport]:
    """One market per seed (`build(seed)`: its population), in seed order. `jobs` > 1: the seeds
    are shared among that many worker processes (`build` and `config` must pickle, so no lambda),
    and the reports are the same as in one process, byte for byte: each market depends on its
    seed alone."""
    if jobs > 1 and len(seeds) > 1:
        return _in_workers(seeds, build, config, progress, jobs)

    async def go() -> list[MarketReport]:
        reports = []
        for seed in seeds:
            for run, label in labels(build(seed)):
                report = await Market(run, config, label).run()
                reports.append(report)
                if progress:
                    progress(seed, report)
        return reports

    return asyncio.run(go())


def _seed_reports(seed: int, build: Callable[[int], Population], config: SimConfig) -> list[MarketReport]:
    """A worker's share: one seed's markets."""
    return simulate_seeds([seed], build, config)


def _in_workers(
    seeds: list[int],
    build: Callable[[int], Population],
    config: SimConfig,
    progress: Callable[[int, MarketReport], None] | None,
    jobs: int,
) -> list[MarketReport]:
    """Seeds in `jobs` processes, started fresh (`forkserver`: the caller may run threads, such as a
    progress bar's), results taken in seed order as they come."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # each worker starts with the engine imported
    reports: list[MarketReport] = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        chunk = max(1, len(seeds) // (jobs * 8))
        done = pool.map(_seed_reports, seeds, repeat(build), repeat(config), chunksize=chunk)
        for seed, markets in zip(seeds, done, strict=True):
            for report in markets:
                reports.append(report)
                if progress:
                    progress(seed, report)
    return reports
