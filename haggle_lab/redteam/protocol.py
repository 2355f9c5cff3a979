"""Protocol attacks: hostile `ScriptedAgent`s (they sign, but have no guard) against the real referee."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from haggle.contracts import Envelope, ShippingMethod, ShippingOption
from haggle.contracts.agents import Role
from haggle.contracts.negotiation import AcceptOffer, CounterOffer, OpenNegotiation
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC
from haggle.contracts.types import MAX_PRICE_CENTS
from haggle.runtime.operators import operator_envelope
from haggle_lab.redteam.attack import Attack, AttackResult, RedTeamContext, expect_refusal
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.goods import sample_commands
from haggle_lab.testing.market import Market, a_listing
from haggle_lab.testing.observe import of_type

STD = ShippingMethod.PARCEL_STANDARD


@dataclass
class Scene:
    """A seller, a buyer and one listing; `thread_id` once the buyer opened."""

    market: Market
    seller: ScriptedAgent
    buyer: ScriptedAgent
    listing_id: str
    thread_id: str = ""


def opening(listing_id: str, price: int, method: ShippingMethod = STD) -> OpenNegotiation:
    return OpenNegotiation(listing_id=listing_id, price_cents=price, shipping_method=method)


def counter(scene: Scene, price: int) -> CounterOffer:
    return CounterOffer(
        listing_id=scene.listing_id, thread_id=scene.thread_id, price_cents=price, shipping_method=STD
    )


async def scene(market: Market, open_at: int | None = 12_000, seller_principal: str | None = None) -> Scene:
    seller = market.agent("s", Role.SELLER, principal=seller_principal)
    buyer = market.agent("b", Role.BUYER)
    await market.admit(seller, buyer)
    found = Scene(market, seller, buyer, f"{market.market_id}-item")
    await market.list_item(a_listing(found.listing_id, seller, price=20_000))
    if open_at is not None:
        opened = await market.open(buyer, opening(found.listing_id, open_at))
        assert opened.type == "ThreadOpened", opened.payload
        found.thread_id = opened.payload["thread_id"]
    return found


async def move(scene: Scene, agent: ScriptedAgent, payload: object, other: ScriptedAgent) -> Envelope:
    """Send a move and wait until the other party sees it applied; the offer event it caused."""
    sent = await agent.send(scene.market.pub, payload)  # type: ignore[arg-type]
    outcome = await scene.market.outcome(other, sent)
    assert outcome.type == "OfferMade", outcome.payload
    return outcome


async def _open_refused(
    ctx: RedTeamContext, name: str, price: int, method: ShippingMethod = STD
) -> AttackResult:
    async with ctx.market(name) as mk:
        s = await scene(mk, open_at=None)
        # Make sure the referee knows the listing first, so the refusal is about the terms.
        probe = await mk.open(s.buyer, opening(s.listing_id, 1, ShippingMethod.FREIGHT))
        assert probe.payload["reason"] == "shipping_not_offered", probe.payload
        sent = await s.buyer.send(mk.pub, opening(s.listing_id, price, method))
        return await expect_refusal(mk, s.buyer, sent, _expected(name))


def _expected(name: str) -> tuple[str, ...]:
    return next(a.expected for a in PROTOCOL if a.name == name)


# identity ---------------------------------------------------------------------


async def forged_signature(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("forged_signature") as mk:
        s = await scene(mk, open_at=None)
        honest = s.buyer.sign(opening(s.listing_id, 12_000))
        tampered = honest.model_copy(
            update={"event_id": uuid.uuid4(), "payload": {**honest.payload, "price_cents": 1}}
        )
        await mk.pub.send("negotiation.commands", s.listing_id, tampered)
        return await expect_refusal(mk, s.buyer, tampered, ("bad_signature",))


async def impersonation(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("impersonation") as mk:
        s = await scene(mk, open_at=None)
        attacker = mk.agent("mallory", Role.BUYER)
        await mk.admit(attacker)
        posing = ScriptedAgent(
            s.buyer.agent_id, s.buyer.principal_id, Role.BUYER, mk.market_id, key=attacker.key
        )
        sent = await posing.send(mk.pub, opening(s.listing_id, 12_000))
        return await expect_refusal(mk, s.buyer, sent, ("bad_signature",))


async def replayed_command(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("replayed_command") as mk:
        s = await scene(mk)
        cmd = s.seller.sign(counter(s, 19_000))
        await mk.pub.send("negotiation.commands", s.listing_id, cmd)
        assert (await mk.outcome(s.buyer, cmd)).type == "OfferMade"
        replay = cmd.model_copy(update={"event_id": uuid.uuid4()})
        await mk.pub.send("negotiation.commands", s.listing_id, replay)
        return await expect_refusal(mk, s.seller, replay, ("replayed_seq",))


async def out_of_turn(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("out_of_turn") as mk:
        s = await scene(mk)
        sent = await s.buyer.send(mk.pub, counter(s, 12_500))
        return await expect_refusal(mk, s.buyer, sent, ("out_of_turn",))


async def not_a_party(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("not_a_party") as mk:
        s = await scene(mk)
        offer = await move(s, s.seller, counter(s, 19_000), s.buyer)
        intruder = mk.agent("intruder", Role.BUYER)
        await mk.admit(intruder)
        grab = AcceptOffer(listing_id=s.listing_id, thread_id=s.thread_id, offer_id=offer.payload["offer_id"])
        sent = await intruder.send(mk.pub, grab)
        return await expect_refusal(mk, intruder, sent, ("not_a_party",))


async def other_market(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("other_market") as victim, ctx.market("other_market_x") as mk:
        s = await scene(victim)
        attacker = mk.agent("b", Role.BUYER)
        await mk.admit(attacker)
        sent = await attacker.send(mk.pub, opening(s.listing_id, 12_000))
        return await expect_refusal(mk, attacker, sent, ("listing_unknown",))


# turns and offers -------------------------------------------------------------


async def stale_offer(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("stale_offer") as mk:
        s = await scene(mk, open_at=15_000)
        await move(s, s.seller, counter(s, 19_000), s.buyer)
        await move(s, s.buyer, counter(s, 9_000), s.seller)
        # The seller accepts the buyer's first, higher offer rather than the 9 000 now on the table.
        first = f"{s.thread_id}.1"
        sent = await s.seller.send(
            mk.pub, AcceptOffer(listing_id=s.listing_id, thread_id=s.thread_id, offer_id=first)
        )
        return await expect_refusal(mk, s.seller, sent, ("stale_offer",))


async def double_accept(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("double_accept") as mk:
        s = await scene(mk, open_at=None)
        rival = mk.agent("b2", Role.BUYER)
        await mk.admit(rival)
        accepts = []
        for buyer in (s.buyer, rival):
            opened = await mk.open(buyer, opening(s.listing_id, 15_000))
            s.thread_id = opened.payload["thread_id"]
            offer = await move(s, s.seller, counter(s, 17_000), buyer)
            accepts.append(
                buyer.sign(
                    AcceptOffer(
                        listing_id=s.listing_id, thread_id=s.thread_id, offer_id=offer.payload["offer_id"]
                    )
                )
            )
        await mk.pub.send_many("negotiation.commands", [(s.listing_id, env) for env in accepts])
        deal = (await mk.obs.wait_for(of_type("DealAgreed", listing_id=s.listing_id), "negotiation.events"))[
            0
        ]
        winner = deal.payload["buyer_agent_id"]
        loser, losing = (rival, accepts[1]) if winner == s.buyer.agent_id else (s.buyer, accepts[0])
        seen = await mk.refusal(loser, losing)
        await asyncio.sleep(0.5)
        deals = mk.obs.matching(of_type("DealAgreed"), "negotiation.events")
        return AttackResult(seen == "listing_sold" and len(deals) == 1, seen, f"{len(deals)} deal(s)")


async def self_dealing(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("self_dealing") as mk:
        same = f"{mk.market_id}-same"
        seller = mk.agent("s", Role.SELLER, principal=same)
        buyer = mk.agent("b", Role.BUYER, principal=same)
        await mk.admit(seller, buyer)
        listing_id = f"{mk.market_id}-item"
        await mk.list_item(a_listing(listing_id, seller))
        outcome = await mk.open(buyer, opening(listing_id, 10_000))
        seen = str(outcome.payload.get("reason", outcome.type))
        return AttackResult(seen == "self_dealing" and outcome.type == "ActionRefused", seen)


async def wash_trade(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("wash_trade", forbid_same_owner_trades=True) as mk:
        owner = f"{mk.market_id}-owner"
        seller = mk.agent("s", Role.SELLER, owner=owner)
        buyer = mk.agent("b", Role.BUYER, owner=owner)
        await mk.admit(seller, buyer)
        listing_id = f"{mk.market_id}-item"
        await mk.list_item(a_listing(listing_id, seller))
        outcome = await mk.open(buyer, opening(listing_id, 10_000))
        seen = str(outcome.payload.get("reason", outcome.type))
        return AttackResult(seen == "same_owner" and outcome.type == "ActionRefused", seen)


async def price_zero(ctx: RedTeamContext) -> AttackResult:
    return await _open_refused(ctx, "price_zero", 0)


async def price_negative(ctx: RedTeamContext) -> AttackResult:
    return await _open_refused(ctx, "price_negative", -5_000)


async def price_absurd(ctx: RedTeamContext) -> AttackResult:
    return await _open_refused(ctx, "price_absurd", MAX_PRICE_CENTS + 1)


async def unoffered_shipping(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("unoffered_shipping") as mk:
        s = await scene(mk, open_at=None)
        outcome = await mk.open(s.buyer, opening(s.listing_id, 12_000, ShippingMethod.FREIGHT))
        seen = str(outcome.payload.get("reason", outcome.type))
        return AttackResult(seen == "shipping_not_offered" and outcome.type == "ActionRefused", seen)


async def after_deadline(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("after_deadline", negotiation_ttl_seconds=1) as mk:
        s = await scene(mk)
        await asyncio.sleep(1.2)
        sent = await s.seller.send(mk.pub, counter(s, 19_000))
        return await expect_refusal(mk, s.seller, sent, ("deadline_passed", "thread_ended"))


async def infeasible_shipping(ctx: RedTeamContext) -> AttackResult:
    """A 42 kg sofa offered by standard parcel (30 kg at most): refused at listing, so never tradable."""
    async with ctx.market("infeasible_shipping") as mk:
        s = await scene(mk, open_at=None)
        sofa = sample_commands(3, mk.market_id)[2].model_copy(
            update={
                "listing_id": f"{mk.market_id}-sofa",
                "seller_agent_id": s.seller.agent_id,
                "seller_principal_id": s.seller.principal_id,
                "shipping": (ShippingOption(method=STD, cost_cents=999),),
            }
        )
        env = operator_envelope(sofa, mk.market_id, "redteam")
        await mk.pub.send(LISTING_COMMANDS_TOPIC.name, sofa.listing_id, env)
        found = await mk.obs.wait_for(lambda e: e.causation_id == str(env.event_id), "listing.events")
        seen = str(found[0].payload.get("reason", found[0].type))
        outcome = await mk.outcome(s.buyer, await s.buyer.send(mk.pub, opening(sofa.listing_id, 20_000)))
        never_tradable = outcome.payload.get("reason") == "listing_unknown"
        detail = f"then an open on it: {outcome.payload.get('reason', outcome.type)}"
        return AttackResult(seen == "shipping_infeasible" and never_tradable, seen, detail)


def _attack(name: str, tries: str, invariant: str, expected: tuple[str, ...], runner) -> Attack:
    return Attack(name, "protocol", tries, invariant, expected, runner)


PROTOCOL: tuple[Attack, ...] = (
    _attack(
        "forged_signature",
        "a signed open whose price was changed after signing",
        "only the key holder's exact words count",
        ("bad_signature",),
        forged_signature,
    ),
    _attack(
        "impersonation",
        "sign with my own key but claim the victim's agent id",
        "no agent acts as another",
        ("bad_signature",),
        impersonation,
    ),
    _attack(
        "replayed_command",
        "re-send a spent signed counter under a new event id",
        "a signed move applies once",
        ("replayed_seq",),
        replayed_command,
    ),
    _attack(
        "out_of_turn",
        "the buyer counters its own open offer",
        "parties alternate",
        ("out_of_turn",),
        out_of_turn,
    ),
    _attack(
        "stale_offer",
        "the seller accepts the buyer's earlier, higher offer",
        "only the offer on the table can be accepted",
        ("stale_offer",),
        stale_offer,
    ),
    _attack(
        "double_accept",
        "two buyers accept counters on one listing in the same batch",
        "one listing, one deal",
        ("listing_sold",),
        double_accept,
    ),
    _attack(
        "self_dealing",
        "a principal buys its own listing through a second agent",
        "no trades with yourself",
        ("self_dealing",),
        self_dealing,
    ),
    _attack(
        "wash_trade",
        "two principals of one owner trade while the market forbids it",
        "no wash trades",
        ("same_owner",),
        wash_trade,
    ),
    _attack("price_zero", "open at 0 cents", "prices are 1..MAX_PRICE_CENTS", ("invalid_price",), price_zero),
    _attack(
        "price_negative",
        "open at -5 000 cents",
        "prices are 1..MAX_PRICE_CENTS",
        ("invalid_price",),
        price_negative,
    ),
    _attack(
        "price_absurd",
        "open at MAX_PRICE_CENTS + 1",
        "prices are 1..MAX_PRICE_CENTS",
        ("invalid_price",),
        price_absurd,
    ),
    _attack(
        "unoffered_shipping",
        "open with freight, which the listing does not offer",
        "only offered shipping terms",
        ("shipping_not_offered",),
        unoffered_shipping,
    ),
    _attack(
        "infeasible_shipping",
        "list a 42 kg sofa for a 30 kg parcel service, then trade on it",
        "no terms the carrier cannot carry",
        ("shipping_infeasible",),
        infeasible_shipping,
    ),
    _attack(
        "after_deadline",
        "the seller counters after the thread's deadline",
        "no moves after the deadline",
        ("deadline_passed", "thread_ended"),
        after_deadline,
    ),
    _attack(
        "not_a_party",
        "a third agent accepts the seller's counter on someone else's thread",
        "only the thread's parties move",
        ("not_a_party",),
        not_a_party,
    ),
    _attack(
        "other_market",
        "open on a listing of another market",
        "markets are sealed from each other",
        ("listing_unknown",),
        other_market,
    ),
)
