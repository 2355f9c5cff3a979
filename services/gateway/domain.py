"""The gateway's pure rules: what an external agent may ask, and how a request becomes a move.

No I/O. A request is validated (pydantic, typed), turned into the same `Move` the agents
service's brains return, and checked by the same mandate guard (`haggle.guard.rules.check`)
against a view folded from the thread's events. Every refusal has a typed reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from haggle.contracts import Message
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.listing import CreateListing, ListingFacts
from haggle.contracts.mandate import Mandate, Want
from haggle.contracts.negotiation import MAX_CHAT_CHARS, Party
from haggle.contracts.types import Id
from haggle.guard import budget, commands
from haggle.guard.commands import NEGOTIATION_COMMANDS
from haggle.guard.moves import MakeOffer, Move
from haggle.guard.rules import GuardRefusal
from haggle.guard.view import ListingView, MandateLimits, NegotiationView


class GatewayRefusal(StrEnum):
    """Why the gateway refused a request (the guard's reasons travel as `guard:<reason>`). Each has a test."""

    UNAUTHORIZED = "unauthorized"
    BAD_SIGNATURE = "bad_signature"
    RATE_LIMITED = "rate_limited"
    REPLAYED_REQUEST = "replayed_request"
    INVALID_REQUEST = "invalid_request"
    NOT_ADMITTED = "not_admitted"
    UNKNOWN_LISTING = "unknown_listing"
    NO_MATCHING_WANT = "no_matching_want"
    ALREADY_NEGOTIATING = "already_negotiating"
    UNKNOWN_NEGOTIATION = "unknown_negotiation"
    BUDGET_HELD = "budget_held"
    WRONG_LISTING = "wrong_listing"
    UNKNOWN_ITEM = "unknown_item"
    ALREADY_LISTED = "already_listed"
    GUARD = "guard"


class Refused(Exception):
    def __init__(self, reason: GatewayRefusal, detail: str, guard: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.guard = reason, detail, guard

    @property
    def code(self) -> str:
        return f"guard:{self.guard}" if self.guard else self.reason.value

    def as_json(self) -> dict[str, Any]:
        return {"refused": self.code, "detail": self.detail}


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


_STRICT = ConfigDict(extra="forbid", frozen=True)


class Mutating(BaseModel):
    model_config = _STRICT
    request_id: str = Field(min_length=8, max_length=64, description="your id for this request: sent once")


class OpenRequest(Mutating):
    listing_id: Id
    price_cents: int = Field(strict=True)
    shipping_method: ShippingMethod
    shipping_paid_by: Party = Party.BUYER
    message: str = Field(default="", max_length=MAX_CHAT_CHARS)
    want_id: Id | None = None


class CounterRequest(Mutating):
    thread_id: Id
    price_cents: int = Field(strict=True)
    shipping_method: ShippingMethod
    shipping_paid_by: Party = Party.BUYER
    message: str = Field(default="", max_length=MAX_CHAT_CHARS)


class AnswerRequest(Mutating):
    thread_id: Id
    offer_id: Id
    message: str = Field(default="", max_length=MAX_CHAT_CHARS)


class ListRequest(Mutating):
    item_id: Id
    asking_price_cents: int | None = Field(default=None, strict=True, description="default: the mandate's")


class SayRequest(Mutating):
    thread_id: Id
    text: str = Field(min_length=1, max_length=MAX_CHAT_CHARS)


@dataclass(frozen=True)
class Standing:
    """What the guard needs about one principal and one negotiation, as its buyer or its seller."""

    agent_id: str
    mandate: Mandate
    held_cents: int
    """A buyer's: what this negotiation holds of the budget, all it may ever commit."""
    facts: ListingFacts
    want: Want | None
    """The want a buyer's negotiation serves; None: the agent sells (`item_id`)."""
    events: tuple[dict[str, Any], ...] = ()
    item_id: str | None = None

    @property
    def role(self) -> Party:
        return Party.BUYER if self.want is not None else Party.SELLER

    def limits(self) -> MandateLimits:
        """A buyer's thread spends only what it holds; the budget and the approval limit are secrets too."""
        secrets = {
            "budget_cents": self.mandate.budget_cents,
            "auto_approve_cents": self.mandate.auto_approve_limit_cents,
        }
        if self.want is None:
            return MandateLimits.for_seller(self.mandate.item(str(self.item_id)).floor_cents, **secrets)
        return MandateLimits.for_buyer(
            self.want.max_price_cents, self.held_cents, self.want.min_condition, **secrets
        )

    def view(self) -> NegotiationView:
        view = NegotiationView(
            self.agent_id, self.role, ListingView.from_facts(self.facts), self.limits(), 20
        )
        for entry in self.events:
            view = view.with_event(commands.THREAD_EVENTS[entry["type"]].model_validate(entry["payload"]))
        return view


def listing_for(mandate: Mandate, agent_id: str, item_id: str, asking_cents: int | None) -> CreateListing:
    """The listing of one of the mandate's items, at its asking price or the one asked (never under the
    floor: the guard's reason, without the floor)."""
    item = next((i for i in mandate.items if i.id == item_id), None)
    if item is None:
        raise Refused(GatewayRefusal.UNKNOWN_ITEM, f"the mandate sells no item {item_id}")
    asking = item.asking_price_cents if asking_cents is None else asking_cents
    if asking < item.floor_cents:
        raise Refused(GatewayRefusal.GUARD, "the asking price is under the principal's floor", "below_floor")
    listing_id = f"{mandate.principal_id}.{item.id}"
    command = item.to_listing(listing_id, agent_id, mandate.principal_id)
    return CreateListing.model_validate({**command.model_dump(), "price_cents": asking})


def own_listing(mandate: Mandate, agent_id: str, command: CreateListing) -> CreateListing:
    """A listing a self-signing agent signed: exactly the mandate's item as `listing_for` lists it, at
    the price the agent chose (never under the floor), by this agent for this principal."""
    item_id = command.listing_id.removeprefix(f"{mandate.principal_id}.")
    if item_id == command.listing_id:
        raise Refused(GatewayRefusal.UNKNOWN_ITEM, f"{command.listing_id} is not a listing of this principal")
    expected = listing_for(mandate, agent_id, item_id, command.price_cents)
    if command != expected:
        raise Refused(GatewayRefusal.UNKNOWN_ITEM, f"{command.listing_id} is not the mandate's item as it is")
    return command


def hold(mandate: Mandate, want: Want, facts: ListingFacts, committed_cents: int, held_cents: int) -> int:
    """What opening a negotiation on this listing holds of the budget; none free is a typed refusal."""
    free = budget.free_cents(mandate.budget_cents, committed_cents, held_cents)
    cap = budget.hold_for(
        want.max_price_cents, facts.price_cents, budget.cheapest_shipping(facts.shipping), free_cents=free
    )
    if cap <= 0:
        raise Refused(GatewayRefusal.BUDGET_HELD, "open negotiations and deals hold all of the budget")
    return cap


def want_for(mandate: Mandate, facts: ListingFacts, want_id: str | None, fulfilled: set[str]) -> Want:
    """The want this listing serves: the one named, else the first open one it matches."""
    for want in mandate.wants:
        if want.id in fulfilled or (want_id is not None and want.id != want_id):
            continue
        if want_id is not None or want.matches(facts.title, facts.category):
            return want
    raise Refused(GatewayRefusal.NO_MATCHING_WANT, f"no open want of the mandate fits {facts.listing_id}")


def guarded(move: Move | object, standing: Standing, check: Any) -> Move:
    """The move if the guard lets it through, else a typed refusal."""
    verdict = check(move, standing.view(), standing.limits())
    if isinstance(verdict, GuardRefusal):
        raise Refused(GatewayRefusal.GUARD, verdict.detail, verdict.reason.value)
    return verdict  # type: ignore[no-any-return]


def open_move(req: OpenRequest) -> MakeOffer:
    return MakeOffer(req.price_cents, req.shipping_method, req.message, req.shipping_paid_by)


def counter_move(req: CounterRequest) -> MakeOffer:
    return MakeOffer(req.price_cents, req.shipping_method, req.message, req.shipping_paid_by)


SIGNED_COMMANDS = NEGOTIATION_COMMANDS
"""The moves a self-signing agent may send through the gateway (besides its registration and its
listings, `own_listing`)."""


def command_for(move: Move, listing_id: str, thread_id: str | None) -> Message:
    """The signed command a checked move becomes (the same mapping as the agents service's)."""
    command = commands.command_for(move, listing_id, thread_id)
    if command is None:
        raise Refused(GatewayRefusal.INVALID_REQUEST, "this move sends nothing here")
    return command


def summary(standing_view: NegotiationView, status: str, listing_id: str) -> dict[str, Any]:
    """A negotiation as its agent may see it (never the mandate's limits)."""
    latest = standing_view.latest
    return {
        "listing_id": listing_id,
        "role": standing_view.role.value,
        "thread_id": standing_view.thread_id,
        "status": "ended" if standing_view.ended else status,
        "my_turn": standing_view.my_turn,
        "round": standing_view.round,
        "max_rounds": standing_view.max_rounds,
        "offers": [
            {
                "offer_id": o.offer_id,
                "by": o.by.value,
                "price_cents": o.price_cents,
                "shipping_method": o.shipping_method.value,
                "shipping_cost_cents": o.shipping_cost_cents,
                "final": o.final,
                "message": o.message,
            }
            for o in standing_view.offers
        ],
        "latest_offer_id": latest.offer_id if latest else None,
        "chat": [{"by": line.by.value, "text": line.text} for line in standing_view.chat],
    }
