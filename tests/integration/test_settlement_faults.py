"""300 deals through settlement while its process is killed with -9 three times and restarted.

A driver plays every party from the events it sees (sellers ship or hand
over, buyers accept, dispute or stay silent, a scripted human answers
approvals, an operator resolves the disputes the rules leave open). Each
deal's final state is known in advance, lost parcels included (the test asks
the same seeded simulated carrier), so afterwards every deal must be final,
in exactly that state, and `haggle ledger check` must pass.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer

from haggle import procs
from haggle.client import tail
from haggle.contracts import Condition, Dimensions, Envelope, Item, ShippingMethod, ShippingOption, decode
from haggle.contracts.agents import Role
from haggle.contracts.approval import ApprovalDenied, ApprovalGranted
from haggle.contracts.listing import ListingPublished
from haggle.contracts.settlement import (
    AcceptGoods,
    ConfirmHandover,
    DisputeOutcome,
    DisputeReason,
    OpenDispute,
    ResolveDispute,
    ShipItem,
    ShipmentLeg,
)
from haggle.contracts.topics import (
    APPROVAL_EVENTS,
    LISTING_EVENTS_TOPIC,
    SETTLEMENT_COMMANDS,
    SETTLEMENT_EVENTS_TOPIC,
)
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing.actors import ScriptedAgent
from services.settlement.domain.carrier import SimulatedCarrier
from tests.integration.settlement_support import (
    SettlementMarket,
    eventually,
    haggle_cli,
    settlement_market,
    settlement_services,
)

pytestmark = pytest.mark.timeout(600)

DEALS = 300
KILLS = 3
PUBLISH_SECONDS = 20.0
SEED, LOSS_BPS = 42, 1_000
RULES = {
    "carrier_seed": SEED,
    "carrier_loss_bps": LOSS_BPS,
    # A dispute sent in time is honoured however late it is handled (deadlines by broker time,
    # tests/integration/test_deadlines_by_broker_time.py); the window stays long so that the
    # expected outcome of every deal does not hang on how slow the machine is.
    "inspection_window_seconds": 60,
    "ship_deadline_seconds": 300,
    "approval_timeout_seconds": 300,
}
# Each deal's part, by its index modulo 10.
KINDS = (
    "poor",
    "approval",
    "misdescribed",
    "pickup",
    "wrong_item",
    "accept",
    "silent",
    "accept",
    "silent",
    "accept",
)


@dataclass(frozen=True)
class Plan:
    deal_id: str
    listing_id: str
    kind: str
    buyer: ScriptedAgent
    seller: ScriptedAgent
    price: int
    granted: bool

    @property
    def method(self) -> ShippingMethod:
        return ShippingMethod.LOCAL_PICKUP if self.kind == "pickup" else ShippingMethod.PARCEL_STANDARD

    def expected(self) -> str:
        if self.kind == "poor" or (self.kind == "approval" and not self.granted):
            return "failed"
        if self.kind == "misdescribed":
            return "refunded"
        lost = SimulatedCarrier(seed=SEED, loss_bps=LOSS_BPS).loses(
            SimulatedCarrier.tracking_id_for(self.deal_id, ShipmentLeg.FORWARD)
        )
        return "refunded" if lost and self.method is not ShippingMethod.LOCAL_PICKUP else "released"


class Driver:
    """Every party of every deal, reacting once to each event id (the relay may repeat some)."""

    def __init__(self, market: SettlementMarket, plans: dict[str, Plan]) -> None:
        self.market, self.plans = market, plans
        self.seen: set[uuid.UUID] = set()
        self.reactions = 0

    async def run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batches.values():
                for record in records:
                    env = decode(record.value)
                    if env.market_id == self.market.market_id and env.event_id not in self.seen:
                        self.seen.add(env.event_id)
                        await self.react(env)

    async def send(self, agent: ScriptedAgent, message: object) -> None:
        self.reactions += 1
        await agent.send(self.market.pub, message, topic=SETTLEMENT_COMMANDS.name)  # type: ignore[arg-type]

    async def react(self, env: Envelope) -> None:
        plan = self.plans.get(str(env.payload.get("deal_id")))
        if plan is None:
            return
        if env.type == "ApprovalRequested":
            await self.answer(plan, str(env.payload["approval_id"]))
        elif env.type == "EscrowFunded":
            await self.hand_over(plan)
        elif env.type == "ShipmentDelivered" and env.payload["leg"] == ShipmentLeg.FORWARD:
            await self.inspect(plan)
        elif env.type == "DisputeOpened" and env.payload["reason"] == DisputeReason.WRONG_ITEM:
            resolve = ResolveDispute(deal_id=plan.deal_id, outcome=DisputeOutcome.RELEASE, resolved_by="ops")
            envelope = operator_envelope(resolve, self.market.market_id)
            await self.market.pub.send(SETTLEMENT_COMMANDS.name, plan.deal_id, envelope)

    async def answer(self, plan: Plan, approval_id: str) -> None:
        principal = plan.buyer.principal_id
        answer = (
            ApprovalGranted(
                approval_id=approval_id, deal_id=plan.deal_id, principal_id=principal, granted_by="s"
            )
            if plan.granted
            else ApprovalDenied(
                approval_id=approval_id, deal_id=plan.deal_id, principal_id=principal, denied_by="s"
            )
        )
        await self.market.pub.send(
            APPROVAL_EVENTS.name, principal, operator_envelope(answer, self.market.market_id)
        )

    async def hand_over(self, plan: Plan) -> None:
        packed = Condition.ACCEPTABLE if plan.kind == "misdescribed" else Condition.VERY_GOOD
        if plan.method is ShippingMethod.LOCAL_PICKUP:
            await self.send(plan.seller, ConfirmHandover(deal_id=plan.deal_id, condition=packed))
            await self.send(plan.buyer, ConfirmHandover(deal_id=plan.deal_id))
        else:
            await self.send(plan.seller, ShipItem(deal_id=plan.deal_id, packed_condition=packed))

    async def inspect(self, plan: Plan) -> None:
        if plan.kind == "misdescribed":
            await self.send(
                plan.buyer, OpenDispute(deal_id=plan.deal_id, reason=DisputeReason.CONDITION_WORSE)
            )
        elif plan.kind == "wrong_item":
            await self.send(plan.buyer, OpenDispute(deal_id=plan.deal_id, reason=DisputeReason.WRONG_ITEM))
        elif plan.kind != "silent":
            await self.send(plan.buyer, AcceptGoods(deal_id=plan.deal_id))


@pytest.fixture(scope="module")
def services(endpoints: object) -> Iterator[None]:
    with settlement_services():
        yield


def make_plans(market: SettlementMarket) -> tuple[dict[str, Plan], dict[str, ScriptedAgent]]:
    agents = {
        name: market.agent(name, Role.BUYER) for name in ("poor", "approver", *(f"b{i}" for i in range(8)))
    }
    sellers = [market.agent(f"s{i}", Role.SELLER) for i in range(5)]
    plans = {}
    for i in range(DEALS):
        kind = KINDS[i % 10]
        buyer = agents["poor" if kind == "poor" else "approver" if kind == "approval" else f"b{i % 8}"]
        deal_id = f"{market.market_id}-D{i:03d}"
        price = 5_000 + (i * 379) % 20_000
        plans[deal_id] = Plan(
            deal_id, f"{market.market_id}-L{i:03d}", kind, buyer, sellers[i % 5], price, i % 20 == 1
        )
    return plans, {**agents, **{s.agent_id: s for s in sellers}}


def listing(plan: Plan) -> ListingPublished:
    return ListingPublished(
        listing_id=plan.listing_id,
        seller_agent_id=plan.seller.agent_id,
        seller_principal_id=plan.seller.principal_id,
        title="Cordless drill 18 V with two batteries",
        description="Works; two batteries.",
        category="tools",
        condition=Condition.VERY_GOOD,
        price_cents=plan.price,
        item=Item(weight_g=2_100, dimensions=Dimensions(length_mm=350, width_mm=300, height_mm=110)),
        shipping=(ShippingOption(method=ShippingMethod.PARCEL_STANDARD, cost_cents=1_500),),
    )


async def prepare(market: SettlementMarket, plans: dict[str, Plan], agents: dict[str, ScriptedAgent]) -> None:
    await market.open(*agents.values(), **RULES)
    for name, agent in agents.items():
        if agent.role is Role.BUYER:
            amount, limit = {"poor": (100, 10_000_000), "approver": (10_000_000, 0)}.get(
                name, (5_000_000, 10_000_000)
            )
            await market.fund(agent, amount, limit)
    for plan in plans.values():
        await market.pub.send(LISTING_EVENTS_TOPIC.name, plan.listing_id, market.envelope(listing(plan)))

    async def conditions_known() -> bool:
        count = await market.pool.fetchval(
            "SELECT count(*) FROM listing_conditions WHERE market_id = $1", market.market_id
        )
        return bool(count == len(plans))

    await eventually(conditions_known, "settlement to learn every listing's condition")


async def crash_three_times(kill_times: list[float], started: float) -> list[float]:
    downtimes = []
    for at in kill_times:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        killed = time.monotonic()
        await asyncio.to_thread(procs.crash_and_restart, "settlement", 0.5)
        await asyncio.to_thread(procs.wait_ready, "settlement", 60)
        downtimes.append(time.monotonic() - killed)
    return downtimes


async def test_three_kill_9s_during_300_deals_leave_every_deal_final_and_the_ledger_sound(
    services: None, bootstrap: str, database_url: str, market_id: str
) -> None:
    async with settlement_market(bootstrap, database_url, market_id) as market:
        plans, agents = make_plans(market)
        await prepare(market, plans, agents)
        driver = Driver(market, plans)
        async with tail(bootstrap, SETTLEMENT_EVENTS_TOPIC.name, APPROVAL_EVENTS.name) as consumer:
            driving = asyncio.create_task(driver.run(consumer))
            started = time.monotonic()
            kills = asyncio.create_task(
                crash_three_times([PUBLISH_SECONDS * (k + 0.5) / KILLS for k in range(KILLS)], started)
            )
            for i, plan in enumerate(plans.values()):
                env = market.deal(
                    plan.deal_id, plan.listing_id, plan.price, plan.method, plan.buyer, plan.seller
                )
                await market.agree(env)
                await asyncio.sleep(max(0.0, started + PUBLISH_SECONDS * (i + 1) / DEALS - time.monotonic()))
            downtimes = await kills

            async def all_final() -> bool:
                finals = await market.pool.fetchval(
                    "SELECT count(*) FROM deals WHERE market_id = $1"
                    " AND state IN ('released', 'refunded', 'failed')",
                    market.market_id,
                )
                return bool(finals == DEALS)

            await eventually(all_final, f"all {DEALS} deals to reach a final state", timeout=300)
            elapsed = time.monotonic() - started
            driving.cancel()
        rows = await market.pool.fetch(
            "SELECT deal_id, state FROM deals WHERE market_id = $1", market.market_id
        )
        states = {r["deal_id"]: r["state"] for r in rows}
        wrong = {d: (states.get(d), p.expected()) for d, p in plans.items() if states.get(d) != p.expected()}
        assert wrong == {}
        checks = await market.ledger_check()
        assert [c.name for c in checks if not c.ok] == []
        code, out = await haggle_cli("ledger", "check")
        assert code == 0, out
        released = [p for p in plans.values() if p.expected() == "released"]
        sellers = {p.seller.principal_id for p in plans.values()}
        paid = await market.pool.fetchval(
            "SELECT sum(credits_posted - debits_posted) FROM accounts WHERE id = ANY($1)",
            [f"wallet:{market.market_id}:{s}" for s in sellers],
        )
        assert paid == sum(p.price - p.price * 500 // 10_000 for p in released)
        outcomes = {s: list(states.values()).count(s) for s in ("released", "refunded", "failed")}
        print(
            f"\n{DEALS} deals, {KILLS} kill -9s (down {', '.join(f'{d:.1f}s' for d in downtimes)}): "
            f"all final after {elapsed:.1f}s; {outcomes}; {driver.reactions} agent commands"
        )
