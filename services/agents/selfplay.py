"""A tiny in-process alternating-offers loop: two brains, their guards, one listing. Not the referee.

For tests, benchmarks and strategy comparisons without Kafka: the buyer
opens, the parties alternate, an offer in the last allowed round is final,
accept makes a deal, reject or walk ends it. Every move goes through
`next_move`, so the guard is in the loop exactly as in a live agent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from haggle.contracts.negotiation import Party
from services.agents.brains.base import Brain
from services.agents.decide import next_move
from services.agents.guard import GuardRefusal
from services.agents.moves import Accept, MakeOffer, Move, Say
from services.agents.ratelimit import RateLimiter
from services.agents.view import ChatLine, ListingView, MandateLimits, NegotiationView, OfferSeen

THREAD_ID = "selfplay"
MAX_IDLE_TURNS = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    deal: OfferSeen | None
    ended_by: str
    offers: tuple[OfferSeen, ...]
    moves: tuple[tuple[Party, Move], ...]
    refusals: tuple[GuardRefusal, ...]

    @property
    def rounds(self) -> int:
        return len(self.offers)


def _view(role: Party, listing: ListingView, limits: MandateLimits, max_rounds: int) -> NegotiationView:
    return NegotiationView(
        agent_id=f"{role.value}-agent", role=role, listing=listing, limits=limits, max_rounds=max_rounds
    )


def _offer(
    move: MakeOffer, by: Party, listing: ListingView, offers: tuple[OfferSeen, ...], max_rounds: int
) -> OfferSeen:
    option = listing.shipping_option(move.shipping_method)
    assert option is not None, "the guard lets only offered shipping through"
    round_ = len(offers) + 1
    return OfferSeen(
        offer_id=f"{THREAD_ID}.{round_}",
        by=by,
        round=round_,
        price_cents=move.price_cents,
        shipping_method=move.shipping_method,
        shipping_cost_cents=option.cost_cents,
        shipping_paid_by=move.shipping_paid_by,
        final=round_ >= max_rounds,
        message=move.message,
    )


async def play(
    buyer: Brain,
    seller: Brain,
    listing: ListingView,
    buyer_limits: MandateLimits,
    seller_limits: MandateLimits,
    max_rounds: int = 20,
    retries: int = 2,
    limiter: RateLimiter | None = None,
) -> Outcome:
    brains = {Party.BUYER: buyer, Party.SELLER: seller}
    views = {
        Party.BUYER: _view(Party.BUYER, listing, buyer_limits, max_rounds),
        Party.SELLER: _view(Party.SELLER, listing, seller_limits, max_rounds),
    }
    offers: tuple[OfferSeen, ...] = ()
    moves: list[tuple[Party, Move]] = []
    refusals: list[GuardRefusal] = []
    idle = 0
    while idle < MAX_IDLE_TURNS:
        mover = Party.BUYER if not offers or offers[-1].by is Party.SELLER else Party.SELLER
        view = replace(views[mover], time_fraction=len(offers) / max_rounds)
        decision = await next_move(brains[mover], view, view.limits, retries, limiter)
        moves.append((mover, decision.move))
        refusals += decision.refusals
        move = decision.move
        if isinstance(move, MakeOffer):
            offer = _offer(move, mover, listing, offers, max_rounds)
            offers = (*offers, offer)
            views = {party: v.with_offer(offer, THREAD_ID) for party, v in views.items()}
            idle = 0
        elif isinstance(move, Accept):
            return Outcome(offers[-1], "deal", offers, tuple(moves), tuple(refusals))
        elif isinstance(move, Say):
            views = (
                {party: v.with_chat(ChatLine(mover, move.text)) for party, v in views.items()}
                if move.text
                else views
            )
            idle += 1
        else:
            return Outcome(None, type(move).__name__.lower(), offers, tuple(moves), tuple(refusals))
    return Outcome(None, "stalled", offers, tuple(moves), tuple(refusals))
