"""What a brain may answer: one small move. The guard checks it before it becomes a command.

`MakeOffer` opens a thread (buyer, no offers yet) or counters; `Accept` and
`Reject` answer the other side's latest offer by id; `Walk` withdraws; `Say`
chats without binding anyone, and `Say("")` means "do nothing this turn".
"""

from __future__ import annotations

from dataclasses import dataclass

from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import Party
from haggle.guard.view import NegotiationView


@dataclass(frozen=True, slots=True)
class MakeOffer:
    price_cents: int
    shipping_method: ShippingMethod
    message: str = ""
    shipping_paid_by: Party = Party.BUYER


@dataclass(frozen=True, slots=True)
class Accept:
    offer_id: str


@dataclass(frozen=True, slots=True)
class Reject:
    offer_id: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class Walk:
    pass


@dataclass(frozen=True, slots=True)
class Say:
    text: str


Move = MakeOffer | Accept | Reject | Walk | Say


@dataclass(frozen=True, slots=True)
class Malformed:
    """Not a move: a model's answer that broke the tool schema. The guard refuses it (typed) and the
    brain is asked again with the reason, a bounded number of times, then the agent walks away."""

    problem: str
    detail: str = ""


NOTHING = Say("")


def walk_away(view: NegotiationView, message: str = "") -> Move:
    """Leave the thread: reject the offer on the table if there is one, else withdraw."""
    offer = view.latest_from_other
    return Reject(offer.offer_id, message) if offer is not None else Walk()
