"""Moves and the signed negotiation commands they become, both ways; the thread events a view folds.

One mapping for every place a move is made for a principal: the agents service turns its brains'
checked moves into commands with it, the agent gateway turns an outside agent's requests into
commands with it and reads a self-signed command back into the move the guard checks. Pure.
"""

from __future__ import annotations

from haggle.contracts import Message
from haggle.contracts.negotiation import (
    AcceptOffer,
    CounterOffer,
    MessagePosted,
    NegotiationEnded,
    OfferMade,
    OpenNegotiation,
    RejectOffer,
    SendMessage,
    ThreadOpened,
    WithdrawNegotiation,
)
from haggle.guard.moves import Accept, MakeOffer, Move, Reject, Say, Walk

ThreadEvent = ThreadOpened | OfferMade | MessagePosted | NegotiationEnded

THREAD_EVENTS: dict[str, type[ThreadEvent]] = {
    "ThreadOpened": ThreadOpened,
    "OfferMade": OfferMade,
    "MessagePosted": MessagePosted,
    "NegotiationEnded": NegotiationEnded,
}
"""The events of one thread an agent's view is folded from, by type name."""

NEGOTIATION_COMMANDS: tuple[type[Message], ...] = (
    OpenNegotiation,
    CounterOffer,
    AcceptOffer,
    RejectOffer,
    SendMessage,
    WithdrawNegotiation,
)
"""Every signed command a move can become."""


def command_for(move: Move, listing_id: str, thread_id: str | None) -> Message | None:
    """The signed command a checked move becomes; None when it sends nothing (an answer, a walk or
    words before the thread is open, or no words at all)."""
    if isinstance(move, MakeOffer):
        terms = {
            "listing_id": listing_id,
            "price_cents": move.price_cents,
            "shipping_method": move.shipping_method,
            "shipping_paid_by": move.shipping_paid_by,
            "message": move.message,
        }
        if thread_id is None:
            return OpenNegotiation(**terms)
        return CounterOffer(thread_id=thread_id, **terms)
    if thread_id is None:
        return None
    if isinstance(move, Accept):
        return AcceptOffer(listing_id=listing_id, thread_id=thread_id, offer_id=move.offer_id)
    if isinstance(move, Reject):
        return RejectOffer(
            listing_id=listing_id, thread_id=thread_id, offer_id=move.offer_id, message=move.message
        )
    if isinstance(move, Walk):
        return WithdrawNegotiation(listing_id=listing_id, thread_id=thread_id)
    if isinstance(move, Say) and move.text:
        return SendMessage(listing_id=listing_id, thread_id=thread_id, text=move.text)
    return None


def move_of(command: Message) -> tuple[Move, str, str | None]:
    """The move a signed command makes, its listing and its thread (None: it opens one)."""
    if isinstance(command, OpenNegotiation | CounterOffer):
        offer = MakeOffer(
            command.price_cents, command.shipping_method, command.message, command.shipping_paid_by
        )
        return offer, command.listing_id, getattr(command, "thread_id", None)
    if isinstance(command, AcceptOffer):
        return Accept(command.offer_id), command.listing_id, command.thread_id
    if isinstance(command, RejectOffer):
        return Reject(command.offer_id, command.message), command.listing_id, command.thread_id
    if isinstance(command, SendMessage):
        return Say(command.text), command.listing_id, command.thread_id
    if isinstance(command, WithdrawNegotiation):
        return Walk(), command.listing_id, command.thread_id
    raise TypeError(f"{command.type} is not a negotiation command")
