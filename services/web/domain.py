"""What the web pages say about the market's events: pure rules, no I/O.

A deal's phase is read from the settlement events it has seen (they may arrive in
any order relative to the deal itself), refusals are put in plain words, and money
is shown from integer cents.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from haggle.contracts.negotiation import EndReason, NegotiationRefusal
from haggle.guard.rules import GuardRefusalReason as G


class DealPhase(StrEnum):
    AGREED = "agreed"
    AWAITING_APPROVAL = "awaiting_approval"
    ESCROW_HELD = "escrow_held"
    SHIPPED = "shipped"
    INSPECTING = "inspecting"
    DISPUTED = "disputed"
    RELEASED = "released"
    REFUNDED = "refunded"
    FAILED = "failed"


LABEL_PENDING = frozenset({DealPhase.AGREED, DealPhase.AWAITING_APPROVAL, DealPhase.ESCROW_HELD})
"""Deals whose parcel is not yet labelled: a new address still reaches the carrier."""
FINAL_PHASES = frozenset({DealPhase.RELEASED, DealPhase.REFUNDED, DealPhase.FAILED})

PHASE_OF_EVENT: dict[str, DealPhase] = {
    "ApprovalRequested": DealPhase.AWAITING_APPROVAL,
    "EscrowFunded": DealPhase.ESCROW_HELD,
    "ShipmentBooked": DealPhase.SHIPPED,
    "ShipmentInTransit": DealPhase.SHIPPED,
    "HandoverConfirmed": DealPhase.SHIPPED,
    "ShipmentDelivered": DealPhase.INSPECTING,
    "ShipmentLost": DealPhase.DISPUTED,
    "DisputeOpened": DealPhase.DISPUTED,
    "InspectionPassed": DealPhase.INSPECTING,
    "FundsReleased": DealPhase.RELEASED,
    "Refunded": DealPhase.REFUNDED,
    "EscrowFailed": DealPhase.FAILED,
}
"""The phase each settlement event moves a deal to."""

PHASE_ORDER: tuple[DealPhase, ...] = (
    DealPhase.AGREED,
    DealPhase.AWAITING_APPROVAL,
    DealPhase.ESCROW_HELD,
    DealPhase.SHIPPED,
    DealPhase.INSPECTING,
    DealPhase.DISPUTED,
    DealPhase.RELEASED,
    DealPhase.REFUNDED,
    DealPhase.FAILED,
)


def deal_phase(event_types: Iterable[str]) -> DealPhase:
    """The furthest phase the seen events reach: arrival order does not matter.

    A return leg's delivery after a dispute keeps the deal disputed until its refund.
    """
    phases = {PHASE_OF_EVENT[t] for t in event_types if t in PHASE_OF_EVENT}
    return max(phases, key=PHASE_ORDER.index, default=DealPhase.AGREED)


def can_open_dispute(phase: DealPhase) -> bool:
    """A buyer disputes a delivered item while its inspection runs."""
    return phase is DealPhase.INSPECTING


EVENT_WORDS: dict[str, str] = {
    "DealAgreed": "Deal agreed",
    "ApprovalRequested": "Waiting for the buyer's approval",
    "ApprovalGranted": "Approved",
    "ApprovalDenied": "Denied",
    "ApprovalExpired": "Approval expired unanswered",
    "EscrowFunded": "Escrow held",
    "EscrowFailed": "Escrow failed",
    "ShipmentBooked": "Shipment booked",
    "ShipmentInTransit": "In transit",
    "HandoverConfirmed": "Handover confirmed",
    "ShipmentDelivered": "Delivered",
    "ShipmentLost": "Parcel lost",
    "InspectionPassed": "Inspection passed",
    "DisputeOpened": "Dispute opened",
    "DisputeResolved": "Dispute resolved",
    "FundsReleased": "Funds released to the seller",
    "Refunded": "Refunded to the buyer",
    "SettlementCommandRefused": "A settlement step was refused",
    "ShippingLabelSealed": "Shipping label printed",
}

REFUSAL_WORDS: dict[NegotiationRefusal, str] = {
    NegotiationRefusal.INVALID_PAYLOAD: "the move was malformed",
    NegotiationRefusal.BAD_SIGNATURE: "the move's signature did not check out",
    NegotiationRefusal.UNKNOWN_AGENT: "the referee did not know the agent yet",
    NegotiationRefusal.REPLAYED_SEQ: "the move was a replay of an earlier one",
    NegotiationRefusal.OUT_OF_TURN: "it was not the agent's turn",
    NegotiationRefusal.STALE_OFFER: "the offer answered had been replaced",
    NegotiationRefusal.SELF_DEALING: "an agent may not trade with itself",
    NegotiationRefusal.SAME_OWNER: "both sides belong to one owner (a wash trade)",
    NegotiationRefusal.WRONG_ROLE: "the agent may not act in that role",
    NegotiationRefusal.NOT_A_PARTY: "the agent is not part of that negotiation",
    NegotiationRefusal.LISTING_UNKNOWN: "the listing was not known yet",
    NegotiationRefusal.LISTING_NOT_ACTIVE: "the listing is not for sale right now",
    NegotiationRefusal.LISTING_SOLD: "the listing was already sold",
    NegotiationRefusal.SHIPPING_NOT_OFFERED: "the seller does not offer that shipping",
    NegotiationRefusal.SHIPPING_INFEASIBLE: "that carrier cannot take the item",
    NegotiationRefusal.INVALID_PRICE: "the price was not acceptable",
    NegotiationRefusal.THREAD_EXISTS: "a negotiation on that listing was already open",
    NegotiationRefusal.UNKNOWN_THREAD: "no such negotiation",
    NegotiationRefusal.THREAD_ENDED: "the negotiation had ended",
    NegotiationRefusal.DEADLINE_PASSED: "the negotiation's deadline had passed",
    NegotiationRefusal.MAX_ROUNDS: "the negotiation ran out of rounds",
    NegotiationRefusal.TOO_MANY_THREADS: "the agent had too many negotiations open",
    NegotiationRefusal.RATE_LIMITED: "the agent was moving too fast",
}

END_WORDS: dict[EndReason, str] = {
    EndReason.DEAL: "ended in a deal",
    EndReason.REJECTED: "rejected",
    EndReason.WITHDRAWN: "withdrawn",
    EndReason.EXPIRED_DEADLINE: "ran past its deadline",
    EndReason.LISTING_SOLD: "the listing sold to someone else",
    EndReason.LISTING_WITHDRAWN: "the listing was withdrawn",
}


GUARD_WORDS: dict[G, str] = {
    G.INVALID_MOVE: "Your agent proposed a move that made no sense, so it was stopped.",
    G.ROLE_MISMATCH: "Your agent tried to act for the wrong side of the deal.",
    G.THREAD_ENDED: "Your agent tried to move in a negotiation that had already ended.",
    G.NO_THREAD: "Your agent tried to answer a negotiation that had not started.",
    G.NOT_MY_TURN: "Your agent tried to move out of turn.",
    G.NO_ROUNDS_LEFT: "Your agent had no rounds left for another offer.",
    G.FINAL_OFFER_PENDING: "A final offer was on the table: your agent could only accept it or walk away.",
    G.NOT_LATEST_OFFER: "Your agent answered an offer that had since been replaced.",
    G.INVALID_PRICE: "Your agent proposed a price that is not a valid amount.",
    G.ABOVE_MAX: "Your agent tried to offer more than the most you said you would pay.",
    G.OVER_BUDGET: "Your agent tried to spend more than is left of your budget.",
    G.ABOVE_ASKING: "Your agent tried to offer more than the seller asks.",
    G.BELOW_FLOOR: "Your agent tried to sell below the lowest price you set.",
    G.CONDITION_BELOW_MINIMUM: "Your agent tried to buy an item in worse condition than you accept.",
    G.SHIPPING_NOT_OFFERED: "Your agent chose a shipping method the seller does not offer.",
    G.SHIPPING_INFEASIBLE: "Your agent chose a shipping method that cannot carry the item.",
    G.MESSAGE_TOO_LONG: "Your agent wrote a message too long to send.",
    G.RATE_LIMITED: "Your agent was moving too fast and had to wait.",
    G.DISCLOSES_PRIVATE: "Your agent's message would have given away a private limit; it was not sent.",
    G.MALFORMED_REPLY: "Your agent's model gave an answer that could not be read.",
    G.TOKEN_BUDGET_SPENT: "Your agent's model has used up its token budget.",
}
"""A fixed sentence per reason: never the guard's detail, which can name a private limit."""
GUARD_UNKNOWN = "Your agent's mandate guard stopped a move."


def guard_words(reason: str) -> str:
    """The sentence shown to the principal for one guard refusal; an unknown code gets a fixed one."""
    try:
        return GUARD_WORDS[G(reason)]
    except ValueError:
        return GUARD_UNKNOWN


def refusal_words(reason: str) -> str:
    try:
        return REFUSAL_WORDS[NegotiationRefusal(reason)]
    except ValueError:
        return reason.replace("_", " ")


def end_words(reason: str | None) -> str:
    if reason is None:
        return "open"
    try:
        return END_WORDS[EndReason(reason)]
    except ValueError:
        return reason.replace("_", " ")


def dollars(cents: int | None) -> str:
    """Integer cents as dollars for people: 123456 → $1,234.56 (no float ever touches it)."""
    if cents is None:
        return "-"
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}${whole:,}.{part:02d}"


def plain_dollars(cents: int) -> str:
    """Cents as a form shows them back: 123456 → 1234.56."""
    whole, part = divmod(cents, 100)
    return f"{whole}.{part:02d}"


def parse_dollars(text: str) -> int | str:
    """A person's '12.50' or '$1,200' as cents, or the text unchanged when it is no amount.

    Returning the text lets the mandate contract refuse it with its own words.
    """
    cleaned = text.strip().replace("$", "").replace(",", "")
    if not cleaned:
        return text
    whole, _, part = cleaned.partition(".")
    if (not whole.isdigit() and whole != "") or not (part == "" or (part.isdigit() and len(part) <= 2)):
        return text
    return int(whole or "0") * 100 + int(part.ljust(2, "0") or "0")


def surplus_cents(role: str, price_cents: int, reference_cents: int | None) -> int | None:
    """A buyer gains what it paid below the reference value; a seller what it got above it."""
    if reference_cents is None:
        return None
    return reference_cents - price_cents if role == "buyer" else price_cents - reference_cents
