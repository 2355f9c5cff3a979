"""services.agents.decide: brain → guard → re-ask with the reason → walk away; never a refused move out."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from haggle.contracts.goods import Condition, Dimensions, Item, ShippingMethod, ShippingOption
from haggle.contracts.negotiation import Party
from services.agents.brains.base import BrainUnavailable
from services.agents.brains.compromised import CompromisedBrain
from services.agents.decide import next_move
from services.agents.guard import GuardRefusalReason
from services.agents.moves import Accept, MakeOffer, Move, Reject, Walk
from services.agents.view import ListingView, MandateLimits, NegotiationView, OfferSeen

STD = ShippingMethod.PARCEL_STANDARD
LISTING = ListingView(
    "L-1",
    "Lamp",
    "A lamp.",
    "home",
    Condition.GOOD,
    5_000,
    (ShippingOption(method=STD, cost_cents=500),),
    Item(weight_g=1_500, dimensions=Dimensions(length_mm=400, width_mm=300, height_mm=300)),
)
BUYER = MandateLimits.for_buyer(4_000, 100_000, Condition.GOOD)
ON_TABLE = (
    OfferSeen("t.1", Party.BUYER, 1, 2_000, STD, 500),
    OfferSeen("t.2", Party.SELLER, 2, 4_800, STD, 500),
)
VIEW = NegotiationView("buyer-1", Party.BUYER, LISTING, BUYER, 20, "t", ON_TABLE)


class Scripted:
    """Answers from a list and remembers every view it was shown."""

    def __init__(self, *moves: Move | Exception) -> None:
        self.moves = list(moves)
        self.seen: list[NegotiationView] = []

    async def decide(self, view: NegotiationView) -> Move:
        self.seen.append(view)
        answer = self.moves.pop(0) if len(self.moves) > 1 else self.moves[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def decide(brain: object, view: NegotiationView = VIEW, retries: int = 2):  # type: ignore[no-untyped-def]
    return asyncio.run(next_move(brain, view, view.limits, retries))  # type: ignore[arg-type]


def test_a_good_move_passes_untouched() -> None:
    decision = decide(Scripted(MakeOffer(3_000, STD)))
    assert decision.move == MakeOffer(3_000, STD) and decision.refusals == () and not decision.fell_back


def test_a_refused_move_is_asked_again_with_the_reason() -> None:
    before = count("haggle_guard_refusals_total", reason="above_max")
    brain = Scripted(Accept("t.2"), MakeOffer(3_400, STD))
    decision = decide(brain)
    assert decision.move == MakeOffer(3_400, STD)
    assert [r.reason for r in decision.refusals] == [GuardRefusalReason.ABOVE_MAX]
    assert brain.seen[0].refusals == ()
    assert len(brain.seen[1].refusals) == 1 and brain.seen[1].refusals[0].startswith("above_max: ")
    assert count("haggle_guard_refusals_total", reason="above_max") == before + 1


def test_after_the_retries_the_agent_walks_away() -> None:
    fallbacks = count("haggle_agent_fallbacks_total")
    brain = Scripted(Accept("t.2"))
    decision = decide(brain, retries=2)
    assert len(brain.seen) == 3 and len(decision.refusals) == 3
    assert decision.fell_back and decision.move == Reject("t.2")
    assert count("haggle_agent_fallbacks_total") == fallbacks + 1
    no_offer = replace(VIEW, offers=(), thread_id=None)
    assert decide(Scripted(MakeOffer(9_999, STD)), no_offer).move == Walk()


def test_walk_when_even_rejecting_is_refused() -> None:
    ended = replace(VIEW, ended=True)
    decision = decide(Scripted(Accept("t.2")), ended, retries=0)
    assert decision.fell_back and decision.move == Walk()


def test_a_brain_that_raises_makes_the_agent_walk() -> None:
    before = count("haggle_brain_failures_total", error="ZeroDivisionError")
    decision = decide(Scripted(ZeroDivisionError("boom")))
    assert decision.move == Reject("t.2") and decision.fell_back
    assert count("haggle_brain_failures_total", error="ZeroDivisionError") == before + 1


def test_an_unavailable_brain_is_the_runtimes_call() -> None:
    with pytest.raises(BrainUnavailable):
        decide(Scripted(BrainUnavailable("overloaded")))


@pytest.mark.parametrize("role", [Party.BUYER, Party.SELLER])
def test_a_compromised_brain_only_ever_walks_away(role: Party) -> None:
    limits = BUYER if role is Party.BUYER else MandateLimits.for_seller(3_000)
    offers = ON_TABLE if role is Party.BUYER else ON_TABLE[:1]
    view = NegotiationView(f"{role}-1", role, LISTING, limits, 20, "t", offers)
    decision = decide(CompromisedBrain(), view)
    assert decision.fell_back and decision.move == Reject(offers[-1].offer_id)
    expected = GuardRefusalReason.ABOVE_MAX if role is Party.BUYER else GuardRefusalReason.BELOW_FLOOR
    assert {r.reason for r in decision.refusals} == {expected}
