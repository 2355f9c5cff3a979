"""The referee's model: listings as it sees them, threads, offers, decisions. No I/O here.

`decide(command, ctx)` returns a `Decision`: either a refusal with a typed
reason and no state change, or the new state of the threads it touched, the
listing view's deal, and the events to publish. Every move on one listing is
decided in order (commands are keyed by listing id), so "the first valid
accept wins" is a plain check of the listing's deal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from haggle.contracts.envelope import Message
from haggle.contracts.goods import Item, ShippingMethod, ShippingOption
from haggle.contracts.market import MarketPhase, MarketRulesSet
from haggle.contracts.negotiation import (
    DealAgreed,
    EndReason,
    NegotiationRefusal,
    Party,
)

R = NegotiationRefusal
MAX_MESSAGES_PER_THREAD = 60


class ListingState(StrEnum):
    ACTIVE = "active"
    RESERVED = "reserved"
    SOLD = "sold"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class ListingView:
    """What the referee knows of a listing, from listing.events and its own deals."""

    listing_id: str
    market_id: str
    seller_agent_id: str
    seller_principal_id: str
    state: ListingState
    item: Item
    shipping: tuple[ShippingOption, ...]
    deal_id: str | None = None
    epoch: int = 0


@dataclass(frozen=True)
class Actor:
    agent_id: str
    principal_id: str
    owner_id: str | None
    can_buy: bool
    can_sell: bool


@dataclass(frozen=True)
class Offer:
    offer_id: str
    by: Party
    agent_id: str
    round: int
    price_cents: int
    shipping_method: ShippingMethod
    shipping_cost_cents: int
    shipping_paid_by: Party


class ThreadStatus(StrEnum):
    OPEN = "open"
    ENDED = "ended"


@dataclass(frozen=True)
class Thread:
    thread_id: str
    listing_id: str
    buyer: Actor
    seller: Actor
    opened_at: datetime
    deadline: datetime
    max_rounds: int
    epoch: int
    offers: tuple[Offer, ...] = ()
    messages: int = 0
    status: ThreadStatus = ThreadStatus.OPEN
    end_reason: EndReason | None = None

    @property
    def latest(self) -> Offer | None:
        return self.offers[-1] if self.offers else None

    @property
    def turn(self) -> Party:
        """Who must answer the latest offer."""
        latest = self.latest
        return Party.SELLER if latest is None or latest.by is Party.BUYER else Party.BUYER

    def party_of(self, agent_id: str) -> Party | None:
        if agent_id == self.buyer.agent_id:
            return Party.BUYER
        if agent_id == self.seller.agent_id:
            return Party.SELLER
        return None


@dataclass(frozen=True)
class Refusal:
    reason: NegotiationRefusal
    detail: str


@dataclass(frozen=True)
class Context:
    """Everything a decision may read: loaded by the handler, never fetched here."""

    actor: Actor
    listing: ListingView | None
    thread: Thread | None
    rules: MarketRulesSet
    now: datetime
    market_id: str = ""
    seller_owner_id: str | None = None
    open_threads_of_actor: int = 0
    others_open: tuple[Thread, ...] = ()
    seen_thread_before: bool = False
    phase: MarketPhase = MarketPhase.OPEN
    """The market's phase at `now` (read for openings only)."""


@dataclass(frozen=True)
class Decision:
    refusal: Refusal | None = None
    threads: tuple[Thread, ...] = ()
    listing: ListingView | None = None
    events: tuple[Message, ...] = ()
    deal: DealAgreed | None = None

    @property
    def refused(self) -> bool:
        return self.refusal is not None


def refuse(reason: NegotiationRefusal, detail: str) -> Decision:
    return Decision(refusal=Refusal(reason, detail))


def short_hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def thread_id_for(listing_id: str, buyer_agent_id: str, epoch: int) -> str:
    return f"t-{short_hash(listing_id, buyer_agent_id, str(epoch))}"
