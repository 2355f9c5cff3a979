"""negotiation.commands (signed by agents) and negotiation.events (from the referee).

One thread per (listing, buyer). The buyer opens with an offer; then the
parties alternate: counter, accept, reject, withdraw. An accept names the
exact offer it accepts. The referee assigns thread and offer ids, so an agent
can only refer to offers that exist.

On `agent.inbox` the same event models travel, one copy per recipient, keyed
by the recipient's agent id (the envelope's `agent_id` names the recipient).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import Field

from haggle.contracts.envelope import Message
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.types import Cents, Id

MAX_CHAT_CHARS = 2_000


class Party(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"


def buyer_total_cents(price_cents: int, shipping_cost_cents: int, paid_by: Party) -> int:
    """What the buyer pays: the price, plus shipping when the buyer pays it. The one place."""
    return price_cents + (shipping_cost_cents if paid_by is Party.BUYER else 0)


def seller_net_cents(price_cents: int, shipping_cost_cents: int, paid_by: Party) -> int:
    """What the seller keeps before fees: the price, less shipping when the seller pays it."""
    return price_cents - (shipping_cost_cents if paid_by is Party.SELLER else 0)


class _Terms(Protocol):
    @property
    def price_cents(self) -> int: ...
    @property
    def shipping_cost_cents(self) -> int: ...
    @property
    def shipping_paid_by(self) -> Party: ...


class PricedTerms:
    """Mixin for any message or view with a price and shipping terms: the totals, from the rules above."""

    __slots__ = ()

    @property
    def buyer_total_cents(self: _Terms) -> int:
        return buyer_total_cents(self.price_cents, self.shipping_cost_cents, self.shipping_paid_by)

    @property
    def seller_net_cents(self: _Terms) -> int:
        return seller_net_cents(self.price_cents, self.shipping_cost_cents, self.shipping_paid_by)


class NegotiationRefusal(StrEnum):
    """Why the referee refused a move. Each has a test."""

    INVALID_PAYLOAD = "invalid_payload"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_AGENT = "unknown_agent"
    REPLAYED_SEQ = "replayed_seq"
    OUT_OF_TURN = "out_of_turn"
    STALE_OFFER = "stale_offer"
    SELF_DEALING = "self_dealing"
    SAME_OWNER = "same_owner"
    WRONG_ROLE = "wrong_role"
    NOT_A_PARTY = "not_a_party"
    LISTING_UNKNOWN = "listing_unknown"
    LISTING_NOT_ACTIVE = "listing_not_active"
    LISTING_SOLD = "listing_sold"
    SHIPPING_NOT_OFFERED = "shipping_not_offered"
    SHIPPING_INFEASIBLE = "shipping_infeasible"
    INVALID_PRICE = "invalid_price"
    THREAD_EXISTS = "thread_exists"
    UNKNOWN_THREAD = "unknown_thread"
    THREAD_ENDED = "thread_ended"
    DEADLINE_PASSED = "deadline_passed"
    MAX_ROUNDS = "max_rounds"
    TOO_MANY_THREADS = "too_many_threads"
    RATE_LIMITED = "rate_limited"
    MARKET_CLOSING = "market_closing"
    MARKET_CLOSED = "market_closed"


class EndReason(StrEnum):
    DEAL = "deal"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED_DEADLINE = "expired_deadline"
    LISTING_SOLD = "listing_sold"
    LISTING_WITHDRAWN = "listing_withdrawn"


# Commands (signed; key = listing_id) ----------------------------------------


class OpenNegotiation(Message):
    type: Literal["OpenNegotiation"] = "OpenNegotiation"
    listing_id: Id
    price_cents: Cents
    shipping_method: ShippingMethod
    shipping_paid_by: Party = Party.BUYER
    message: str = Field(default="", max_length=MAX_CHAT_CHARS)


class CounterOffer(Message):
    type: Literal["CounterOffer"] = "CounterOffer"
    listing_id: Id
    thread_id: Id
    price_cents: Cents
    shipping_method: ShippingMethod
    shipping_paid_by: Party = Party.BUYER
    message: str = Field(default="", max_length=MAX_CHAT_CHARS)


class AcceptOffer(Message):
    type: Literal["AcceptOffer"] = "AcceptOffer"
    listing_id: Id
    thread_id: Id
    offer_id: Id


class RejectOffer(Message):
    """Ends the thread: the parties walk away."""

    type: Literal["RejectOffer"] = "RejectOffer"
    listing_id: Id
    thread_id: Id
    offer_id: Id
    message: str = Field(default="", max_length=MAX_CHAT_CHARS)


class WithdrawNegotiation(Message):
    type: Literal["WithdrawNegotiation"] = "WithdrawNegotiation"
    listing_id: Id
    thread_id: Id


class SendMessage(Message):
    """Chat without a move. It never binds anyone to anything."""

    type: Literal["SendMessage"] = "SendMessage"
    listing_id: Id
    thread_id: Id
    text: str = Field(max_length=MAX_CHAT_CHARS)


NEGOTIATION_COMMANDS: tuple[type[Message], ...] = (
    OpenNegotiation,
    CounterOffer,
    AcceptOffer,
    RejectOffer,
    WithdrawNegotiation,
    SendMessage,
)


# Events (key = listing_id) --------------------------------------------------


class ThreadOpened(Message):
    type: Literal["ThreadOpened"] = "ThreadOpened"
    thread_id: Id
    listing_id: Id
    buyer_agent_id: Id
    seller_agent_id: Id
    deadline: datetime
    max_rounds: int


class OfferMade(PricedTerms, Message):
    type: Literal["OfferMade"] = "OfferMade"
    thread_id: Id
    listing_id: Id
    offer_id: Id
    by: Party
    agent_id: Id
    round: int
    price_cents: Cents
    shipping_method: ShippingMethod
    shipping_cost_cents: Cents
    shipping_paid_by: Party
    message: str = Field(default="", max_length=MAX_CHAT_CHARS)
    final: bool = Field(default=False, description="the last round: only accept or reject may follow")


class MessagePosted(Message):
    type: Literal["MessagePosted"] = "MessagePosted"
    thread_id: Id
    listing_id: Id
    by: Party
    agent_id: Id
    text: str = Field(max_length=MAX_CHAT_CHARS)


class NegotiationEnded(Message):
    """Every thread ends exactly once, with a reason; a deal also emits DealAgreed."""

    type: Literal["NegotiationEnded"] = "NegotiationEnded"
    thread_id: Id
    listing_id: Id
    buyer_agent_id: Id
    seller_agent_id: Id
    reason: EndReason
    by: Party | None = None
    rounds: int
    last_offer_id: Id | None = None
    message: str = Field(default="", max_length=MAX_CHAT_CHARS)


class DealAgreed(PricedTerms, Message):
    type: Literal["DealAgreed"] = "DealAgreed"
    deal_id: Id
    listing_id: Id
    thread_id: Id
    buyer_agent_id: Id
    buyer_principal_id: Id
    seller_agent_id: Id
    seller_principal_id: Id
    price_cents: Cents
    shipping_method: ShippingMethod
    shipping_cost_cents: Cents
    shipping_paid_by: Party
    accepted_offer_id: Id
    rounds: int = 0


class ActionRefused(Message):
    type: Literal["ActionRefused"] = "ActionRefused"
    listing_id: str = Field(max_length=128)
    thread_id: str | None = Field(default=None, max_length=128)
    agent_id: str | None = Field(default=None, max_length=128)
    seq: int | None = None
    command_type: str = Field(max_length=64)
    command_event_id: str = Field(max_length=64)
    reason: NegotiationRefusal
    detail: str = Field(max_length=1_000)


class AgentAdmitted(Message):
    """Sent to an agent's inbox once the referee knows its key: it may now act."""

    type: Literal["AgentAdmitted"] = "AgentAdmitted"
    agent_id: Id
    principal_id: Id


NEGOTIATION_EVENTS: tuple[type[Message], ...] = (
    ThreadOpened,
    OfferMade,
    MessagePosted,
    NegotiationEnded,
    DealAgreed,
    ActionRefused,
)
INBOX_EVENTS: tuple[type[Message], ...] = (*NEGOTIATION_EVENTS, AgentAdmitted)
