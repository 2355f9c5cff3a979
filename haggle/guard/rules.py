"""The mandate guard: a brain proposes, the guard disposes. Pure rules; the rate limiter is the only state.

`check(move, view, limits, limiter)` returns the move unchanged when it keeps
the mandate, else a `GuardRefusal` with a typed reason. It reads only
structured facts (prices, the condition enum, shipping terms, offer ids),
never free text, so a brain that was talked into something by a listing or a
chat message, or a brain that is hostile outright, still cannot spend past its
principal's limits. The one text it reads is what the agent itself would
send (chat, offer and reject notes): `haggle.guard.secrecy` refuses any
that gives away a private number or echoes the brain's instructions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from prometheus_client import Counter

from haggle.contracts.goods import Condition, ShippingMethod, shipping_refusal
from haggle.contracts.negotiation import MAX_CHAT_CHARS, Party, PricedTerms
from haggle.contracts.types import MAX_PRICE_CENTS
from haggle.guard.moves import Accept, MakeOffer, Malformed, Move, Reject, Say, Walk
from haggle.guard.ratelimit import Limiter
from haggle.guard.secrecy import Secrets, disclosure, public_amounts
from haggle.guard.view import MandateLimits, NegotiationView, OfferSeen

GUARD_REFUSALS = Counter("haggle_guard_refusals_total", "Moves the mandate guard refused", ["reason"])


class GuardRefusalReason(StrEnum):
    """Why the guard stopped a move. Each has a test."""

    INVALID_MOVE = "invalid_move"
    ROLE_MISMATCH = "role_mismatch"
    THREAD_ENDED = "thread_ended"
    NO_THREAD = "no_thread"
    NOT_MY_TURN = "not_my_turn"
    NO_ROUNDS_LEFT = "no_rounds_left"
    FINAL_OFFER_PENDING = "final_offer_pending"
    NOT_LATEST_OFFER = "not_latest_offer"
    INVALID_PRICE = "invalid_price"
    ABOVE_MAX = "above_max"
    OVER_BUDGET = "over_budget"
    ABOVE_ASKING = "above_asking"
    BELOW_FLOOR = "below_floor"
    CONDITION_BELOW_MINIMUM = "condition_below_minimum"
    SHIPPING_NOT_OFFERED = "shipping_not_offered"
    SHIPPING_INFEASIBLE = "shipping_infeasible"
    MESSAGE_TOO_LONG = "message_too_long"
    RATE_LIMITED = "rate_limited"
    DISCLOSES_PRIVATE = "discloses_private"
    MALFORMED_REPLY = "malformed_reply"
    TOKEN_BUDGET_SPENT = "token_budget_spent"


R = GuardRefusalReason
MAX_MESSAGE_CHARS = MAX_CHAT_CHARS


@dataclass(frozen=True, slots=True)
class GuardRefusal:
    reason: GuardRefusalReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class _Terms(PricedTerms):
    """A price with its shipping terms, as the principal feels it."""

    price_cents: int
    shipping_method: ShippingMethod
    shipping_cost_cents: int
    shipping_paid_by: Party


def check(
    move: object,
    view: NegotiationView,
    limits: MandateLimits,
    limiter: Limiter | None = None,
    confidential: Sequence[str] = (),
) -> Move | GuardRefusal:
    """The move, if it keeps the mandate and its secrets; otherwise why not. Never raises on what a
    brain returns. `confidential`: the brain's instructions, which no text may echo."""
    try:
        refusal = (
            _shape_refusal(move)
            or _secrecy_refusal(move, view, limits, confidential)  # type: ignore[arg-type]
            or _context_refusal(move, view, limits)
        )
        if refusal is None:
            refusal = _move_refusal(move, view, limits)  # type: ignore[arg-type]
    except Exception as exc:  # a hostile move object must not take the agent down
        return GuardRefusal(R.INVALID_MOVE, f"unreadable move: {type(exc).__name__}")
    if refusal is None and limiter is not None and _costs_a_token(move) and not limiter.allow(view.agent_id):
        refusal = GuardRefusal(R.RATE_LIMITED, f"agent {view.agent_id} is moving too fast")
    # A copy, so the brain cannot change the move it holds after the check.
    return refusal if refusal is not None else replace(move)  # type: ignore[type-var, return-value]


def token_refusal(used_tokens: int, tokens_left: int | None) -> GuardRefusal | None:
    """A model brain is not asked once its principal's token budget is spent (`tokens_left` when the
    turn began, `used_tokens` since); the agent walks instead."""
    if tokens_left is not None and used_tokens >= tokens_left:
        return GuardRefusal(R.TOKEN_BUDGET_SPENT, "the principal's model token budget is spent")
    return None


def _costs_a_token(move: object) -> bool:
    """Leaving is never rate-limited, so the safe fallback always passes."""
    return isinstance(move, MakeOffer | Accept) or (isinstance(move, Say) and move.text != "")


# Exact types only: a subclass of int or str could lie in its comparisons, a subclass of a move in its fields.
MOVE_TYPES = (MakeOffer, Accept, Reject, Walk, Say)


def _is_int(value: object) -> bool:
    return type(value) is int


def _text_refusal(text: object) -> GuardRefusal | None:
    if type(text) is not str:
        return GuardRefusal(R.INVALID_MOVE, "message is not text")
    if len(text) > MAX_MESSAGE_CHARS:
        return GuardRefusal(R.MESSAGE_TOO_LONG, f"{len(text)} chars, at most {MAX_MESSAGE_CHARS}")
    return None


def _shape_refusal(move: object) -> GuardRefusal | None:
    """Types first: a compromised brain may hand back anything at all."""
    if type(move) is Malformed:
        return GuardRefusal(R.MALFORMED_REPLY, f"{move.problem}: {move.detail[:200]}".rstrip(": "))
    if type(move) not in MOVE_TYPES:
        return GuardRefusal(R.INVALID_MOVE, f"not a move: {type(move).__name__[:40]}")
    if isinstance(move, MakeOffer):
        if not _is_int(move.price_cents):
            return GuardRefusal(R.INVALID_PRICE, f"price {str(move.price_cents)[:20]!r} is not whole cents")
        if not isinstance(move.shipping_method, ShippingMethod) or not isinstance(
            move.shipping_paid_by, Party
        ):
            return GuardRefusal(R.INVALID_MOVE, "shipping terms are not from the enums")
        return _text_refusal(move.message)
    if isinstance(move, Accept | Reject) and type(move.offer_id) is not str:
        return GuardRefusal(R.INVALID_MOVE, "offer id is not text")
    if isinstance(move, Reject):
        return _text_refusal(move.message)
    if isinstance(move, Say):
        return _text_refusal(move.text)
    return None


def _secrecy_refusal(
    move: Move, view: NegotiationView, limits: MandateLimits, confidential: Sequence[str]
) -> GuardRefusal | None:
    text = move.text if isinstance(move, Say) else getattr(move, "message", "")
    if not text:
        return None
    given_away = disclosure(text, Secrets(limits.private_numbers(), _public(move, view), confidential))
    if given_away is None:
        return None
    # The detail goes back to the brain and into logs: it names the secret, never its value.
    return GuardRefusal(R.DISCLOSES_PRIVATE, f"the text gives away {given_away}; keep it private")


def _public(move: Move, view: NegotiationView) -> frozenset[int]:
    """Amounts the other side knows already: the listing's, every offer's, and this move's own."""
    listing = view.listing
    values = [listing.asking_price_cents]
    for option in listing.shipping:
        values += [option.cost_cents, listing.asking_price_cents + option.cost_cents]
    for offer in view.offers:
        values += [offer.price_cents, offer.buyer_total_cents, offer.seller_net_cents]
    if isinstance(move, MakeOffer):
        chosen = listing.shipping_option(move.shipping_method)
        cost = chosen.cost_cents if chosen is not None else 0
        terms = _Terms(move.price_cents, move.shipping_method, cost, move.shipping_paid_by)
        values += [move.price_cents, terms.buyer_total_cents, terms.seller_net_cents]
    return public_amounts(values)


def _context_refusal(move: object, view: NegotiationView, limits: MandateLimits) -> GuardRefusal | None:
    if isinstance(move, Walk):
        return None
    if limits.role is not view.role:
        return GuardRefusal(R.ROLE_MISMATCH, f"limits are a {limits.role}'s, the view a {view.role}'s")
    if view.ended:
        return GuardRefusal(R.THREAD_ENDED, "the negotiation is over")
    if isinstance(move, Say) and move.text and view.thread_id is None:
        return GuardRefusal(R.NO_THREAD, "no thread to talk in yet")
    return None


def _move_refusal(move: Move, view: NegotiationView, limits: MandateLimits) -> GuardRefusal | None:
    if isinstance(move, MakeOffer):
        return _offer_refusal(move, view, limits)
    if isinstance(move, Accept):
        return _accept_refusal(move, view, limits)
    if isinstance(move, Reject):
        return _answered_refusal(move.offer_id, view)[0]
    return None


def _offer_refusal(move: MakeOffer, view: NegotiationView, limits: MandateLimits) -> GuardRefusal | None:
    if not view.my_turn:
        return GuardRefusal(R.NOT_MY_TURN, "an offer is waiting for the other side")
    latest = view.latest
    if latest is not None and latest.final:
        return GuardRefusal(R.FINAL_OFFER_PENDING, f"{latest.offer_id} is final: accept or reject it")
    if view.round >= view.max_rounds:
        return GuardRefusal(R.NO_ROUNDS_LEFT, f"all {view.max_rounds} rounds made")
    price = move.price_cents
    if price <= 0 or price > MAX_PRICE_CENTS:
        return GuardRefusal(R.INVALID_PRICE, f"price {price} cents outside 1..{MAX_PRICE_CENTS}")
    option = view.listing.shipping_option(move.shipping_method)
    if option is None:
        return GuardRefusal(R.SHIPPING_NOT_OFFERED, f"{move.shipping_method} is not offered")
    terms = _Terms(price, move.shipping_method, option.cost_cents, move.shipping_paid_by)
    return _shipping_refusal(terms.shipping_method, view) or _terms_refusal(terms, view, limits)


def _accept_refusal(move: Accept, view: NegotiationView, limits: MandateLimits) -> GuardRefusal | None:
    refusal, offer = _answered_refusal(move.offer_id, view)
    if refusal is not None or offer is None:
        return refusal
    if view.listing.shipping_option(offer.shipping_method) is None:
        return GuardRefusal(R.SHIPPING_NOT_OFFERED, f"{offer.shipping_method} is not offered")
    terms = _Terms(
        offer.price_cents, offer.shipping_method, offer.shipping_cost_cents, offer.shipping_paid_by
    )
    return _shipping_refusal(offer.shipping_method, view) or _terms_refusal(terms, view, limits)


def _answered_refusal(offer_id: str, view: NegotiationView) -> tuple[GuardRefusal | None, OfferSeen | None]:
    """Accept and reject answer exactly the other side's latest offer."""
    offer = view.latest_from_other
    if offer is None or offer.offer_id != offer_id:
        on_table = offer.offer_id if offer is not None else "none"
        named = offer_id[:80]
        return GuardRefusal(R.NOT_LATEST_OFFER, f"{named!r} is not the offer on the table ({on_table})"), None
    return None, offer


def _shipping_refusal(method: ShippingMethod, view: NegotiationView) -> GuardRefusal | None:
    if why := shipping_refusal(method, view.listing.item):
        return GuardRefusal(R.SHIPPING_INFEASIBLE, f"{method}: {why}")
    return None


def _terms_refusal(terms: _Terms, view: NegotiationView, limits: MandateLimits) -> GuardRefusal | None:
    if limits.role is Party.SELLER:
        assert limits.floor_cents is not None
        if terms.seller_net_cents < limits.floor_cents:
            return GuardRefusal(R.BELOW_FLOOR, f"nets {terms.seller_net_cents} cents, under the floor")
        return None
    return _buyer_refusal(terms, view, limits)


def _buyer_refusal(terms: _Terms, view: NegotiationView, limits: MandateLimits) -> GuardRefusal | None:
    assert limits.max_price_cents is not None and limits.remaining_budget_cents is not None
    minimum = limits.min_condition or Condition.FOR_PARTS
    if not view.listing.condition.at_least(minimum):
        return GuardRefusal(
            R.CONDITION_BELOW_MINIMUM, f"listed {view.listing.condition}, the mandate wants {minimum}"
        )
    if terms.price_cents > view.listing.asking_price_cents:
        return GuardRefusal(R.ABOVE_ASKING, f"price {terms.price_cents} cents over the asking price")
    total = terms.buyer_total_cents
    if total > limits.max_price_cents:
        return GuardRefusal(R.ABOVE_MAX, f"costs {total} cents in total, over the private max")
    if total > limits.remaining_budget_cents:
        return GuardRefusal(R.OVER_BUDGET, f"costs {total} cents, over the remaining budget")
    return None
