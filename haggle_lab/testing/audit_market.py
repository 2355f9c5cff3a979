"""A market's audited topics made in memory, signed with real keys: for audit tests and bench/.

`signed_market(n)` returns the (topic, envelope) records a market of `n` deals would leave:
agent registrations, operator-signed mandates, each deal's signed moves and decision records,
the referee's answers, an operator-signed approval and signed settlement commands, shaped as
the services write them (the same causation links, the same signing).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from haggle.contracts import AgentKey, Envelope, Message, signed, wrap
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.approval import ApprovalGranted, ApprovalRequested
from haggle.contracts.decisions import decision_for, mandate_digest
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.mandate import AssignMandate, Mandate
from haggle.contracts.negotiation import (
    AcceptOffer,
    CounterOffer,
    DealAgreed,
    OfferMade,
    OpenNegotiation,
    Party,
    ThreadOpened,
)
from haggle.contracts.settlement import EscrowFunded, FundsReleased, ShipItem
from haggle.runtime.operators import OPERATOR_ID
from haggle_lab.testing.mandates import buyer, seller

Records = list[tuple[str, Envelope]]
METHOD = ShippingMethod.PARCEL_SMALL


@dataclass
class Party_:
    agent_id: str
    principal_id: str
    key: AgentKey
    mandate: Mandate
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def _item(n: int) -> dict[str, object]:
    return {
        "id": f"i{n}",
        "title": f"Item number {n}",
        "category": "books",
        "condition": "good",
        "weight_g": 500,
        "dimensions": {"length_mm": 200, "width_mm": 150, "height_mm": 50},
        "shipping": [{"method": METHOD.value, "cost_cents": 500}],
        "asking_price_cents": 5_000,
        "floor_cents": 3_000,
    }


class SignedMarket:
    def __init__(self, market_id: str, operator: AgentKey) -> None:
        self.market_id, self.operator = market_id, operator
        self.records: Records = []

    def emit(self, topic: str, env: Envelope) -> Envelope:
        self.records.append((topic, env))
        return env

    def by(self, party: Party_, message: Message) -> Envelope:
        return signed(
            message,
            key=party.key,
            agent_id=party.agent_id,
            seq=party.next_seq(),
            market_id=self.market_id,
            producer="agents",
        )

    def operator_says(self, message: Message) -> Envelope:
        return signed(
            message,
            key=self.operator,
            agent_id=OPERATOR_ID,
            seq=1,
            market_id=self.market_id,
            producer="operator",
        )

    def referee(self, message: Message, cause: Envelope) -> Envelope:
        env = wrap(
            message, market_id=self.market_id, producer="negotiation", causation_id=str(cause.event_id)
        )
        return self.emit("negotiation.events", env)

    def party(self, name: str, mandate: Mandate, role: Role) -> Party_:
        who = Party_(f"{name}.agent", mandate.principal_id, AgentKey.generate(), mandate)
        registration = AgentRegistered(
            agent_id=who.agent_id, principal_id=who.principal_id, role=role, public_key=who.key.public
        )
        self.emit("agent.events", self.by(who, registration))
        self.emit("mandate.commands", self.operator_says(AssignMandate(mandate=mandate)))
        return who

    def move(self, who: Party_, message: Message, brain: str = "strategy:boulware") -> Envelope:
        command = self.emit("negotiation.commands", self.by(who, message))
        decision = decision_for(
            command,
            key=who.key,
            principal_id=who.principal_id,
            brain=brain,
            mandate_sha256=mandate_digest(who.mandate),
            refusals=("above_max",),
            producer="agents",
        )
        self.emit("agent.decisions", decision)
        return command

    def offer(self, who: Party_, role: Party, cause: Envelope, thread: str, n: int, price: int) -> str:
        offer_id = f"{thread}.{n}"
        made = OfferMade(
            thread_id=thread,
            listing_id=str(cause.payload["listing_id"]),
            offer_id=offer_id,
            by=role,
            agent_id=who.agent_id,
            round=n,
            price_cents=price,
            shipping_method=METHOD,
            shipping_cost_cents=500,
            shipping_paid_by=Party.BUYER,
        )
        self.referee(made, cause)
        return offer_id

    def deal(self, n: int, buyer_: Party_, seller_: Party_) -> str:
        listing_id, thread, deal_id = f"{seller_.principal_id}.i{n}", f"t{n}", f"d{n}"
        opening = self.move(
            buyer_, OpenNegotiation(listing_id=listing_id, price_cents=3_500, shipping_method=METHOD)
        )
        self.referee(
            ThreadOpened(
                thread_id=thread,
                listing_id=listing_id,
                buyer_agent_id=buyer_.agent_id,
                seller_agent_id=seller_.agent_id,
                deadline="2030-01-01T00:00:00Z",  # type: ignore[arg-type]
                max_rounds=20,
            ),
            opening,
        )
        self.offer(buyer_, Party.BUYER, opening, thread, 1, 3_500)
        counter = self.move(
            seller_,
            CounterOffer(listing_id=listing_id, thread_id=thread, price_cents=4_200, shipping_method=METHOD),
        )
        offer_id = self.offer(seller_, Party.SELLER, counter, thread, 2, 4_200)
        accept = self.move(buyer_, AcceptOffer(listing_id=listing_id, thread_id=thread, offer_id=offer_id))
        agreed = DealAgreed(
            deal_id=deal_id,
            listing_id=listing_id,
            thread_id=thread,
            buyer_agent_id=buyer_.agent_id,
            buyer_principal_id=buyer_.principal_id,
            seller_agent_id=seller_.agent_id,
            seller_principal_id=seller_.principal_id,
            price_cents=4_200,
            shipping_method=METHOD,
            shipping_cost_cents=500,
            shipping_paid_by=Party.BUYER,
            accepted_offer_id=offer_id,
            rounds=2,
        )
        self.referee(agreed, accept)
        self.settle(deal_id, listing_id, buyer_, seller_)
        return deal_id

    def settle(self, deal_id: str, listing_id: str, buyer_: Party_, seller_: Party_) -> None:
        ids = {"approval_id": f"a-{deal_id}", "deal_id": deal_id, "principal_id": buyer_.principal_id}
        platform = {"market_id": self.market_id, "producer": "settlement"}
        requested = ApprovalRequested(
            **ids,
            listing_id=listing_id,
            buyer_agent_id=buyer_.agent_id,
            amount_cents=4_700,
            auto_approve_limit_cents=1_000,
            expires_at="2030-01-01T00:00:00Z",  # type: ignore[arg-type]
        )
        self.emit("approval.events", wrap(requested, **platform))
        self.emit("approval.events", self.operator_says(ApprovalGranted(**ids, granted_by="alice")))
        funded = EscrowFunded(
            deal_id=deal_id,
            listing_id=listing_id,
            buyer_principal_id=buyer_.principal_id,
            seller_principal_id=seller_.principal_id,
            amount_cents=4_700,
            price_cents=4_200,
            fee_cents=210,
            shipping_method=METHOD,
            ship_by="2030-01-01T00:00:00Z",  # type: ignore[arg-type]
            transfer_id=f"tr-{deal_id}",
        )
        self.emit("settlement.events", wrap(funded, **platform))
        self.emit("settlement.commands", self.by(seller_, ShipItem(deal_id=deal_id, packed_condition="good")))  # type: ignore[arg-type]
        released = FundsReleased(
            deal_id=deal_id,
            listing_id=listing_id,
            seller_principal_id=seller_.principal_id,
            amount_cents=3_990,
            fee_cents=210,
        )
        self.emit("settlement.events", wrap(released, **platform))


def signed_market(deals: int, market_id: str | None = None) -> tuple[SignedMarket, list[str]]:
    """A market of `deals` deals between `deals` sellers and a buyer per ten deals."""
    market = SignedMarket(market_id or f"audit-{uuid.uuid4().hex[:8]}", AgentKey.generate())
    buyers = [
        market.party(
            f"b{n}",
            buyer(f"b{n}", [{"id": "w", "category": "books", "max_price_cents": 9_000}], 10**7),
            Role.BUYER,
        )
        for n in range(max(1, deals // 10))
    ]
    ids = []
    for n in range(deals):
        seller_ = market.party(f"s{n}", seller(f"s{n}", [_item(n)]), Role.SELLER)
        ids.append(market.deal(n, buyers[n % len(buyers)], seller_))
    return market, ids
