"""Negotiation strategies from the literature: seeded, deterministic, pure.

- Time-dependent tactics (Faratin, Sierra & Jennings 1998): the next offer
  moves from the opening price towards the private limit by
  alpha(t) = t^(1/e), t the share of the negotiation used. e < 1 is Boulware
  (holds out until the deadline), e = 1 linear, e > 1 a conceder (gives in early).
- Relative tit-for-tat (same paper): concede in the ratio the opponent conceded
  over its last two offers.
- Fixed anchor: open at a "fair" point between opening and limit and barely budge.

All share the acceptance rule AC_next (Baarslag et al. 2014): accept the
other side's offer when it is at least as good as the offer I would make
next, or, when no counter is allowed any more, when it is within my limits.
A seller opens at its asking price and never goes under its floor; a buyer
opens at `opening_fraction` of its ceiling and never goes over its max, its
budget or the asking price.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass

from haggle.contracts.goods import ShippingMethod, ShippingOption, shipping_refusal
from haggle.contracts.negotiation import Party, buyer_total_cents, seller_net_cents
from services.agents.guard import GuardRefusal, check
from services.agents.mandate import StrategyName, StrategyParams
from services.agents.moves import NOTHING, Accept, MakeOffer, Move, walk_away
from services.agents.view import NegotiationView, OfferSeen

DEFAULT_E: dict[StrategyName, float] = {
    StrategyName.BOULWARE: 0.2,
    StrategyName.LINEAR: 1.0,
    StrategyName.CONCEDER: 5.0,
}


@dataclass(frozen=True, slots=True)
class Plan:
    """My shipping terms, where I open and the price I will not pass, under those terms."""

    method: ShippingMethod
    shipping_cost_cents: int
    paid_by: Party
    start: int
    limit: int


def concession_time(view: NegotiationView) -> float:
    """Share of the negotiation used by my next offer: 0 for the opening, 1 for the last offer I can
    make (rounds alternate, so that is the last round or the one before it). Each side reaches its
    limit with its own last offer, so two limits that overlap always meet within the round cap."""
    upcoming = view.round + 1
    my_last = view.max_rounds if (view.max_rounds - upcoming) % 2 == 0 else view.max_rounds - 1
    by_rounds = (upcoming - 1) / max(1, my_last - 1)
    return min(1.0, max(by_rounds, view.time_fraction, 0.0))


def _feasible(view: NegotiationView) -> list[ShippingOption]:
    item = view.listing.item
    options = [option for option in view.listing.shipping if shipping_refusal(option.method, item) is None]
    return sorted(options, key=lambda option: (option.cost_cents, option.method.value))


def plan_for(view: NegotiationView, opening_fraction: float) -> Plan | None:
    """None when there is nothing to negotiate: no feasible shipping, wrong condition, no room left."""
    options = _feasible(view)
    if not options:
        return None
    if view.role is Party.SELLER:
        return _seller_plan(view, options)
    return _buyer_plan(view, options, opening_fraction)


def _seller_plan(view: NegotiationView, options: list[ShippingOption]) -> Plan:
    floor = view.limits.floor_cents
    assert floor is not None
    theirs = view.latest_from_other
    chosen = next(
        (o for o in options if theirs is not None and o.method == theirs.shipping_method), options[0]
    )
    paid_by = theirs.shipping_paid_by if theirs is not None else Party.BUYER
    limit = floor + (chosen.cost_cents if paid_by is Party.SELLER else 0)
    start = max(view.listing.asking_price_cents, limit)
    return Plan(chosen.method, chosen.cost_cents, paid_by, start, limit)


def _buyer_plan(view: NegotiationView, options: list[ShippingOption], opening_fraction: float) -> Plan | None:
    minimum = view.limits.min_condition
    if minimum is not None and not view.listing.condition.at_least(minimum):
        return None
    cheapest = options[0]
    limit = min(view.limits.buyer_cap_cents - cheapest.cost_cents, view.listing.asking_price_cents)
    if limit <= 0:
        return None
    start = max(1, min(limit, math.floor(opening_fraction * limit)))
    return Plan(cheapest.method, cheapest.cost_cents, Party.BUYER, start, limit)


def _worth(role: Party, price: int, shipping_cost_cents: int, paid_by: Party) -> int:
    """Higher is better for `role`: a seller's net, or the buyer's total, negated."""
    if role is Party.SELLER:
        return seller_net_cents(price, shipping_cost_cents, paid_by)
    return -buyer_total_cents(price, shipping_cost_cents, paid_by)


class Strategy(ABC):
    """The shared turn logic; subclasses only say where the next offer goes."""

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.params = params or StrategyParams()

    async def decide(self, view: NegotiationView) -> Move:
        return self.move(view)

    def move(self, view: NegotiationView) -> Move:
        if not view.my_turn:
            return NOTHING
        plan = plan_for(view, self.params.opening_fraction)
        if plan is None:
            return walk_away(view)
        target = self._next_price(view, plan) if view.can_offer else None
        offer = view.latest_from_other
        good_enough = target is None or (
            offer is not None
            and _worth(view.role, offer.price_cents, offer.shipping_cost_cents, offer.shipping_paid_by)
            >= _worth(view.role, target, plan.shipping_cost_cents, plan.paid_by)
        )
        if offer is not None and good_enough and self._within_limits(offer, view):
            return Accept(offer.offer_id)
        if target is None:
            return walk_away(view)
        return MakeOffer(target, plan.method, "", plan.paid_by)

    @staticmethod
    def _within_limits(offer: OfferSeen, view: NegotiationView) -> bool:
        return not isinstance(check(Accept(offer.offer_id), view, view.limits), GuardRefusal)

    def _next_price(self, view: NegotiationView, plan: Plan) -> int:
        """The target, never retreating from my last offer and never past my limit."""
        price = self.target(view, plan)
        mine = view.my_offers
        if view.role is Party.SELLER:
            if mine:
                price = min(price, mine[-1].price_cents)
            return max(price, plan.limit)
        if mine:
            price = max(price, mine[-1].price_cents)
        return max(1, min(price, plan.limit))

    def _between(self, plan: Plan, alpha: float) -> int:
        alpha = min(1.0, max(0.0, alpha))
        return round(plan.start + (plan.limit - plan.start) * alpha)

    def _noise(self, view: NegotiationView) -> float:
        if self.params.noise == 0:
            return 0.0
        key = f"{self.params.seed}:{view.listing.listing_id}:{view.thread_id}:{view.round}"
        return random.Random(key).uniform(-self.params.noise, self.params.noise)

    @abstractmethod
    def target(self, view: NegotiationView, plan: Plan) -> int: ...


class TimeDependent(Strategy):
    def __init__(self, e: float, params: StrategyParams | None = None) -> None:
        super().__init__(params)
        if e <= 0:
            raise ValueError("the concession exponent e must be positive")
        self.e = e

    def target(self, view: NegotiationView, plan: Plan) -> int:
        alpha = concession_time(view) ** (1 / self.e)
        return self._between(plan, alpha + self._noise(view))


class TitForTat(Strategy):
    """Relative tit-for-tat with delta = 1: my next = my last x (their previous / their latest)."""

    def target(self, view: NegotiationView, plan: Plan) -> int:
        mine, theirs = view.my_offers, view.their_offers
        if not mine:
            return plan.start
        if len(theirs) < 2:
            step = (plan.limit - plan.start) * self.params.step_fraction
            return round(mine[-1].price_cents + step)
        ratio = theirs[-2].price_cents / max(1, theirs[-1].price_cents)
        return round(mine[-1].price_cents * ratio * (1 + self._noise(view)))


class FixedAnchor(Strategy):
    """Anchor fairly between opening and limit, then concede `step_fraction` of the range per offer."""

    def target(self, view: NegotiationView, plan: Plan) -> int:
        steps = len(view.my_offers)
        alpha = self.params.anchor_fraction + steps * self.params.step_fraction
        return self._between(plan, alpha + self._noise(view))


def strategy(name: StrategyName, params: StrategyParams | None = None) -> Strategy:
    params = params or StrategyParams()
    if name in DEFAULT_E:
        return TimeDependent(params.e if params.e is not None else DEFAULT_E[name], params)
    if name is StrategyName.TIT_FOR_TAT:
        return TitForTat(params)
    return FixedAnchor(params)
