"""`haggle market run`: a whole market over the running services, watched from Kafka, then reported.

For each market (one, or one per variant with `parallel`): publish its rules
and wait until the referee and settlement apply them, fund every wallet and
hand every mandate to the agents service (both signed by the operator),
answer approval requests by the chosen policy, and watch the events until
every listing is published, every negotiation has ended and every deal is
settled (or the deadline passes). Then turn what was seen into facts, run
the invariant checks, and build the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from haggle import procs
from haggle.client import Observer, Publisher, read_all
from haggle.contracts import Envelope
from haggle.contracts.approval import ApprovalRequested
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.settlement import FundWallet
from haggle.contracts.topics import APPROVAL_EVENTS, MANDATE_COMMANDS, MARKET_EVENTS, SETTLEMENT_COMMANDS
from haggle.market import checks, collect, lifecycle
from haggle.market.approvals import DEFAULT_POLICY, ApprovalPolicy
from haggle.market.collect import Scope
from haggle.market.facts import MarketFacts
from haggle.market.mandates import assign_mandate
from haggle.market.population import Population
from haggle.market.report import MarketReport, build_report
from haggle.runtime.operators import operator_envelope

TOPICS = (
    "listing.events",
    "negotiation.events",
    "settlement.events",
    "approval.events",
    "agent.events",
    "market.events",
)
CLOSING_ALLOWANCE_SECONDS = 120.0
"""How long settlement may take past the last negotiation's deadline (approvals, carrier, inspection)."""
Progress = Callable[["MarketStatus"], None]
T = TypeVar("T")


@dataclass(frozen=True)
class RunConfig:
    approval_policy: str = DEFAULT_POLICY
    deadline_seconds: float = 600
    negotiation_ttl_seconds: int = 60
    max_rounds: int = 12
    quiet_seconds: float = 3.0
    """Trading ends once nothing has been in flight for this long."""
    fee_bps: int = 500
    carrier_loss_bps: int = 300


@dataclass
class MarketStatus:
    market_id: str
    variant: str
    principals: int
    listings_expected: int
    registered: int = 0
    listings: int = 0
    threads_open: int = 0
    threads_ended: int = 0
    deals: int = 0
    settled: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    phase: str = "open"
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    done: bool = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def rules_for(config: RunConfig, seed: int) -> MarketRulesSet:
    """Simulated time runs fast: carriers in seconds, inspection windows in seconds."""
    return MarketRulesSet(
        max_rounds=config.max_rounds,
        negotiation_ttl_seconds=config.negotiation_ttl_seconds,
        fee_bps=config.fee_bps,
        inspection_window_seconds=3,
        approval_timeout_seconds=15,
        ship_deadline_seconds=30,
        carrier_pickup_seconds=1,
        carrier_transit_seconds=2,
        carrier_loss_bps=config.carrier_loss_bps,
        carrier_seed=seed,
    )


async def _wait_for_rules(market_id: str, timeout: float = 30) -> None:
    checks_: dict[str, Callable[[httpx.Response], object]] = {
        "negotiation": lambda r: r.status_code == 200 and r.json().get("configured"),
        "settlement": lambda r: r.status_code == 200,
    }
    async with httpx.AsyncClient(timeout=5) as client:
        for service, ok in checks_.items():
            url = f"{procs.url_for(service)}/markets/{market_id}/rules"
            for _ in range(int(timeout / 0.2)):
                if ok(await client.get(url)):
                    break
                await asyncio.sleep(0.2)
            else:
                raise TimeoutError(f"{service} never applied the rules of market {market_id}")


async def _start(pub: Publisher, population: Population, scope: Scope, rules: MarketRulesSet) -> None:
    await pub.send(MARKET_EVENTS.name, scope.market_id, operator_envelope(rules, scope.market_id))
    await _wait_for_rules(scope.market_id)
    for principal in population.principals:
        cmd = assign_mandate(principal)
        scoped = cmd.mandate.model_copy(update={"principal_id": scope.principal(principal.id)})
        funding = FundWallet(
            funding_id=f"fund-{scoped.principal_id}",
            principal_id=scoped.principal_id,
            amount_cents=principal.budget_cents,
            auto_approve_limit_cents=principal.auto_approve_limit_cents,
        )
        await pub.send(
            SETTLEMENT_COMMANDS.name, scoped.principal_id, operator_envelope(funding, scope.market_id)
        )
        await pub.send(
            MANDATE_COMMANDS.name,
            scoped.principal_id,
            operator_envelope(cmd.model_copy(update={"mandate": scoped}), scope.market_id),
        )


def check_policy(policy: str) -> str:
    return str(ApprovalPolicy.parse(policy))


class Watch:
    """Follows one market's events and answers its approvals; `status` says how far it got."""

    def __init__(self, obs: Observer, pub: Publisher, status: MarketStatus, policy: ApprovalPolicy) -> None:
        self.obs, self.pub, self.status, self.policy = obs, pub, status, policy
        self.scope = Scope(status.market_id)
        self._cursor = 0
        # Counted by id: an event delivered twice (a relay resending after a kill) counts once, and
        # a listing refused at creation is in (it may never be published), once, even if retried.
        self._registered: set[str] = set()
        self._listed: set[str] = set()
        self._threads: set[str] = set()
        self._ended: set[str] = set()
        self._deals: set[str] = set()
        self._settled: set[str] = set()

    async def step(self) -> None:
        fresh = self.obs.seen[self._cursor :]
        self._cursor += len(fresh)
        for _, env in fresh:
            await self._take(env)
        s = self.status
        if fresh:
            s.last_activity = time.monotonic()
        s.registered, s.listings = len(self._registered), len(self._listed)
        s.threads_open, s.threads_ended = len(self._threads - self._ended), len(self._ended)
        s.deals, s.settled = len(self._deals), len(self._settled & self._deals)

    async def _take(self, env: Envelope) -> None:
        kind, p = env.type, env.payload
        if kind == "AgentRegistered":
            self._registered.add(p["agent_id"])
        elif kind == "ListingPublished" or (
            kind == "ListingCommandRefused" and p["command_type"] == "CreateListing"
        ):
            self._listed.add(p["listing_id"])
        elif kind == "ThreadOpened":
            self._threads.add(p["thread_id"])
        elif kind == "NegotiationEnded":
            self._ended.add(p["thread_id"])
        elif kind == "DealAgreed":
            self._deals.add(p["deal_id"])
        elif kind in ("FundsReleased", "Refunded", "EscrowFailed"):
            self._settled.add(p["deal_id"])
        elif kind == "ApprovalRequested":
            request = ApprovalRequested.model_validate(p)
            answer = self.policy.answer(request, self.scope.unscope(request.principal_id))
            if answer is not None:
                envelope = operator_envelope(answer, self.status.market_id)
                await self.pub.send(APPROVAL_EVENTS.name, answer.principal_id, envelope)

    def accounts_for(self, view: lifecycle.MarketView) -> bool:
        """Every negotiation and deal the services hold has been seen to its end."""
        deals = self._deals
        return (
            len(self._threads) >= view.threads
            and len(self._ended) >= view.threads
            and len(deals) >= view.deals
            and len(self._settled & deals) >= view.deals
        )


async def keep_watching(watch: Watch, progress: Progress | None) -> None:
    """Follow the market (and answer its approvals) for as long as the run lasts."""
    while True:
        await watch.step()
        if progress:
            progress(watch.status)
        await asyncio.sleep(0.25)


LOOK_OFTEN_BELOW = 50
"""With fewer than this in flight, trading is looked at twice a second to catch its end; a busier
market every two seconds. Each look counts in three services' databases, and in a 500 x 3,000
market, counting twice a second took a large share of a core its trading needed."""


async def trade_until_quiet(watch: Watch, config: RunConfig) -> None:
    """Trading lasts until every principal and listing is in, the agents have read them all, and
    nothing has been in flight for `quiet_seconds` (as the services themselves say), or until the
    deadline. A busy agents service may be minutes behind the topics: before it has read a
    listing, no negotiation waits for it, and the market only looks quiet."""
    s = watch.status
    deadline = time.monotonic() + config.deadline_seconds
    quiet_since: float | None = None
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            view = await lifecycle.look_patiently(client, s.market_id)
            everyone_in = s.registered >= s.principals and s.listings >= s.listings_expected
            everyone_in = everyone_in and agents_read_all(view, s.principals, s.listings_expected)
            if everyone_in and view.quiet:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= config.quiet_seconds:
                    return
            else:
                quiet_since = None
            await asyncio.sleep(0.5 if view.in_flight <= LOOK_OFTEN_BELOW else 2.0)
    s.problems.append(f"still trading after the {config.deadline_seconds:.0f} s deadline: closed then")


def agents_read_all(view: lifecycle.MarketView, principals: int, listings: int) -> bool:
    """The agents service has read every listing and admission of the market."""
    return view.listings_read >= listings and view.agents_admitted >= principals


async def close_and_catch_up(watch: Watch, pub: Publisher, config: RunConfig) -> lifecycle.MarketView:
    """Close the market, then wait until the events seen account for everything the services hold."""
    s = watch.status
    s.phase = "closing"
    timeout = config.negotiation_ttl_seconds + CLOSING_ALLOWANCE_SECONDS
    view = await lifecycle.close_market(pub, s.market_id, timeout, s.notes.append)
    s.phase = "closed"
    for _ in range(120):  # 30 s
        if watch.accounts_for(view):
            break
        await asyncio.sleep(0.25)
    else:
        s.problems.append("the events seen do not account for every negotiation and deal after close")
    return view


async def drive(
    watch: Watch,
    pub: Publisher,
    config: RunConfig,
    progress: Progress | None,
    alongside: Awaitable[T] | None = None,
) -> tuple[lifecycle.MarketView, T | None]:
    """A market's whole life once started: trade until quiet (with `alongside`, e.g. a chaos
    monkey, running meanwhile), close, and catch up with its events."""
    following = asyncio.create_task(keep_watching(watch, progress))
    extra: T | None = None
    try:
        if alongside is not None:
            extra, _ = await asyncio.gather(alongside, trade_until_quiet(watch, config))
        await trade_until_quiet(watch, config)
        view = await close_and_catch_up(watch, pub, config)
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    watch.status.done = True
    if progress:
        progress(watch.status)
    return view, extra


async def facts_of(
    seen: list[tuple[str, Envelope]],
    population: Population,
    scope: Scope,
    problems: list[str] | None = None,
    closed: dict[str, bool] | None = None,
    policy: ApprovalPolicy | None = None,
) -> MarketFacts:
    deals = collect.deals(seen, scope)
    ledger_ok, ledger_problems = await checks.ledger_balanced(scope.market_id)
    usage = await checks.agents_usage(scope)
    sold_once, sold_twice = checks.no_listing_sold_twice(seen)
    mandates_kept, broken = checks.no_mandate_broken(seen, population, scope)
    if problems is not None:
        problems += [*ledger_problems, *(f"sold twice: {x}" for x in sold_twice), *broken]
    return MarketFacts(
        market_id=scope.market_id,
        population=population,
        listing_ids=collect.listing_ids(seen, scope),
        negotiations=collect.negotiations(seen, scope),
        deals=deals,
        settlements=collect.settlements(seen, [d.deal_id for d in deals]),
        approvals=collect.approvals(seen, scope),
        disputes=collect.disputes(seen),
        refusals={
            "referee": collect.referee_refusals(seen),
            "guard": usage.guard_refusals,
        },
        model_usage=usage.model_usage,
        consent_limits_cents=consent_limits(population, policy),
        invariants={
            "ledger_balanced": ledger_ok,
            "no_listing_sold_twice": sold_once,
            "no_mandate_broken": mandates_kept,
            **(closed or {}),
        },
    )


def consent_limits(population: Population, policy: ApprovalPolicy | None) -> dict[str, int]:
    """Each principal's consent limit under the policy, for the optimum (absent: none)."""
    if policy is None:
        return {}
    found = {p.id: policy.consent_limit(p.id, p.auto_approve_limit_cents) for p in population.principals}
    return {pid: limit for pid, limit in sorted(found.items()) if limit is not None}


async def run_market(
    population: Population,
    config: RunConfig,
    bootstrap: str,
    progress: Progress | None = None,
    label: str = "mixed",
) -> MarketReport:
    scope = Scope(f"m{population.seed}-{label}-{uuid.uuid4().hex[:6]}")
    status = MarketStatus(scope.market_id, label, len(population.principals), len(population.listings()))
    async with (
        Publisher(bootstrap, "haggle-market") as pub,
        Observer(bootstrap, *TOPICS, market_id=scope.market_id) as obs,
    ):
        await _start(pub, population, scope, rules_for(config, population.seed))
        policy = ApprovalPolicy.parse(config.approval_policy, population.seed)
        watch = Watch(obs, pub, status, policy)
        view, _ = await drive(watch, pub, config, progress)
        seen = list(obs.seen)
    closed = checks.market_closed(seen, view)
    facts = await facts_of(seen, population, scope, status.problems, closed, policy)
    report = build_report(facts)
    save_record(scope.market_id, population, config.approval_policy, report)
    if progress:
        progress(status)
    return report


def record_path(market_id: str) -> Path:
    from haggle.infra.state import Settings

    return Settings.from_env().state_dir / "markets" / f"{market_id}.json"


def save_record(market_id: str, population: Population, policy: str, report: MarketReport) -> None:
    """What `haggle market report` needs to take the report again: the population and the policy."""
    path = record_path(market_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "population": population.model_dump(mode="json"),
        "approval_policy": policy,
        "report": json.loads(report.to_json()),
    }
    path.write_text(json.dumps(record) + "\n")


async def report_again(market_id: str, bootstrap: str) -> tuple[MarketReport, dict[str, Any]]:
    """The report of a closed market taken afresh from its events, and the one saved at its close."""
    path = record_path(market_id)
    if not path.exists():
        raise FileNotFoundError(f"no record of market {market_id} at {path}")
    record = json.loads(path.read_text())
    population = Population.model_validate(record["population"])
    policy = ApprovalPolicy.parse(record["approval_policy"], population.seed)
    seen = await read_all(bootstrap, *TOPICS, market_id=market_id)
    async with httpx.AsyncClient(timeout=5) as client:
        view = await lifecycle.look(client, market_id)
    closed = checks.market_closed(seen, view)
    facts = await facts_of(seen, population, Scope(market_id), None, closed, policy)
    return build_report(facts), record["report"]


async def run_all(
    population: Population,
    config: RunConfig,
    bootstrap: str,
    progress: Progress | None = None,
) -> list[MarketReport]:
    """One market, or with `parallel` one per variant side by side over the same population."""
    runs = population.runs()
    labels = [run.variants[0] if population.parallel else "mixed" for run in runs]
    return list(
        await asyncio.gather(
            *(
                run_market(run, config, bootstrap, progress, label)
                for run, label in zip(runs, labels, strict=True)
            )
        )
    )
