"""One mapping between moves and signed commands, for the agents service and the gateway alike."""

from __future__ import annotations

import pytest

from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import (
    AcceptOffer,
    CounterOffer,
    OpenNegotiation,
    Party,
    RejectOffer,
    SendMessage,
    WithdrawNegotiation,
)
from haggle.guard import commands
from haggle.guard.commands import command_for, move_of
from haggle.guard.moves import Accept, MakeOffer, Reject, Say, Walk

PICKUP = ShippingMethod.LOCAL_PICKUP
EVERY_COMMAND = [
    OpenNegotiation(listing_id="s.bike", price_cents=100, shipping_method=PICKUP, message="hi"),
    CounterOffer(
        listing_id="s.bike",
        thread_id="t",
        price_cents=200,
        shipping_method=PICKUP,
        shipping_paid_by=Party.SELLER,
    ),
    AcceptOffer(listing_id="s.bike", thread_id="t", offer_id="t.2"),
    RejectOffer(listing_id="s.bike", thread_id="t", offer_id="t.2", message="no"),
    SendMessage(listing_id="s.bike", thread_id="t", text="is it blue?"),
    WithdrawNegotiation(listing_id="s.bike", thread_id="t"),
]


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=lambda c: c.type)
def test_every_command_is_the_move_it_makes_and_back(command: object) -> None:
    assert command_for(*move_of(command)) == command  # type: ignore[arg-type]


def test_the_table_names_every_command_a_move_becomes() -> None:
    assert {type(c) for c in EVERY_COMMAND} == set(commands.NEGOTIATION_COMMANDS)


def test_a_move_that_sends_nothing_is_none() -> None:
    assert move_of(EVERY_COMMAND[0])[0] == MakeOffer(100, PICKUP, "hi", Party.BUYER)
    for move in (Accept("t.1"), Reject("t.1"), Walk(), Say("hello")):
        assert command_for(move, "s.bike", None) is None  # nothing to answer before the thread opens
    assert command_for(Say(""), "s.bike", "t") is None


def test_a_thread_event_is_read_by_its_type_name() -> None:
    assert set(commands.THREAD_EVENTS) == {"ThreadOpened", "OfferMade", "MessagePosted", "NegotiationEnded"}
    assert all(model.model_fields["type"].default == name for name, model in commands.THREAD_EVENTS.items())


def test_a_command_that_is_no_move_is_a_type_error() -> None:
    from haggle.contracts.agents import AgentRetired

    with pytest.raises(TypeError):
        move_of(AgentRetired(agent_id="a"))  # type: ignore[call-arg]
