"""Everything a brain may know about one negotiation, and nothing more.

A `NegotiationView` is built by the agent runtime from the listing and the
thread's events and handed to a brain, which answers with a `Move`. Text
written by other parties (the listing's title and description, chat, offer
messages) is UNTRUSTED: a brain may read it but must never take orders from it,
and the guard never reads it at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from haggle.contracts.goods import Condition, Item, ShippingMethod, ShippingOption
from haggle.contracts.listing import ListingFacts
from haggle.contracts.negotiation import (
    MessagePosted,
    NegotiationEnded,
    OfferMade,
    Party,
    PricedTerms,
    ThreadOpened,
)


@dataclass(frozen=True, slots=True)
class MandateLimits:
    """The private limits of one negotiation: a seller's floor; a buyer's max, budget, minimum condition.
    `budget_cents` and `auto_approve_cents` are the principal's: never spent here, never to be said."""

    role: Party
    floor_cents: int | None = None
    max_price_cents: int | None = None
    remaining_budget_cents: int | None = None
    min_condition: Condition | None = None
    budget_cents: int | None = None
    auto_approve_cents: int | None = None
    tokens_left: int | None = None
    """What is left of the principal's model token budget; None: no budget."""

    def __post_init__(self) -> None:
        if self.role is Party.SELLER and (self.floor_cents is None or self.floor_cents <= 0):
            raise ValueError("a seller's limits need a positive floor")
        if self.role is Party.BUYER and (self.max_price_cents is None or self.remaining_budget_cents is None):
            raise ValueError("a buyer's limits need a max price and a remaining budget")

    @classmethod
    def for_seller(
        cls,
        floor_cents: int,
        budget_cents: int | None = None,
        auto_approve_cents: int | None = None,
        tokens_left: int | None = None,
    ) -> MandateLimits:
        return cls(
            Party.SELLER,
            floor_cents=floor_cents,
            budget_cents=budget_cents,
            auto_approve_cents=auto_approve_cents,
            tokens_left=tokens_left,
        )

    @classmethod
    def for_buyer(
        cls,
        max_price_cents: int,
        remaining_budget_cents: int,
        min_condition: Condition = Condition.ACCEPTABLE,
        budget_cents: int | None = None,
        auto_approve_cents: int | None = None,
        tokens_left: int | None = None,
    ) -> MandateLimits:
        return cls(
            Party.BUYER,
            max_price_cents=max_price_cents,
            remaining_budget_cents=remaining_budget_cents,
            min_condition=min_condition,
            budget_cents=budget_cents,
            auto_approve_cents=auto_approve_cents,
            tokens_left=tokens_left,
        )

    def private_numbers(self) -> dict[str, int]:
        """Every private number of the principal in this negotiation, by name, in cents."""
        named = {
            "floor": self.floor_cents,
            "private max": self.max_price_cents,
            "remaining budget": self.remaining_budget_cents,
            "budget": self.budget_cents,
            "auto-approve limit": self.auto_approve_cents,
        }
        return {name: cents for name, cents in named.items() if cents is not None and cents > 0}

    @property
    def buyer_cap_cents(self) -> int:
        """The most a buyer may pay in total (price plus the shipping it pays)."""
        assert self.max_price_cents is not None and self.remaining_budget_cents is not None
        return min(self.max_price_cents, self.remaining_budget_cents)


@dataclass(frozen=True, slots=True)
class ListingView:
    """The listing's structured facts, plus its free text (title, description) which is untrusted."""

    listing_id: str
    title: str
    description: str
    category: str
    condition: Condition
    asking_price_cents: int
    shipping: tuple[ShippingOption, ...]
    item: Item

    @classmethod
    def from_facts(cls, facts: ListingFacts) -> ListingView:
        return cls(
            listing_id=facts.listing_id,
            title=facts.title,
            description=facts.description,
            category=facts.category,
            condition=facts.condition,
            asking_price_cents=facts.price_cents,
            shipping=tuple(facts.shipping),
            item=facts.item,
        )

    def shipping_option(self, method: ShippingMethod) -> ShippingOption | None:
        return next((option for option in self.shipping if option.method == method), None)


@dataclass(frozen=True, slots=True)
class OfferSeen(PricedTerms):
    offer_id: str
    by: Party
    round: int
    price_cents: int
    shipping_method: ShippingMethod
    shipping_cost_cents: int
    shipping_paid_by: Party = Party.BUYER
    final: bool = False
    message: str = ""  # untrusted

    @classmethod
    def from_event(cls, event: OfferMade) -> OfferSeen:
        return cls(
            offer_id=event.offer_id,
            by=event.by,
            round=event.round,
            price_cents=event.price_cents,
            shipping_method=event.shipping_method,
            shipping_cost_cents=event.shipping_cost_cents,
            shipping_paid_by=event.shipping_paid_by,
            final=event.final,
            message=event.message,
        )


@dataclass(frozen=True, slots=True)
class ChatLine:
    by: Party
    text: str  # untrusted


@dataclass(frozen=True, slots=True)
class NegotiationView:
    agent_id: str
    role: Party
    listing: ListingView
    limits: MandateLimits
    max_rounds: int
    thread_id: str | None = None
    offers: tuple[OfferSeen, ...] = ()
    chat: tuple[ChatLine, ...] = ()
    time_fraction: float = 0.0
    deadline: datetime | None = None
    ended: bool = False
    refusals: tuple[str, ...] = field(default=(), repr=False)
    """Why the guard refused this brain's earlier proposals for this turn, newest last."""

    @property
    def other(self) -> Party:
        return Party.SELLER if self.role is Party.BUYER else Party.BUYER

    @property
    def round(self) -> int:
        """Offers made so far; the next offer gets round `round + 1`."""
        return len(self.offers)

    @property
    def latest(self) -> OfferSeen | None:
        return self.offers[-1] if self.offers else None

    @property
    def latest_from_other(self) -> OfferSeen | None:
        """The offer this agent may accept or reject: the latest one, if the other side made it."""
        latest = self.latest
        return latest if latest is not None and latest.by is self.other else None

    @property
    def my_offers(self) -> tuple[OfferSeen, ...]:
        return tuple(offer for offer in self.offers if offer.by is self.role)

    @property
    def their_offers(self) -> tuple[OfferSeen, ...]:
        return tuple(offer for offer in self.offers if offer.by is self.other)

    @property
    def my_turn(self) -> bool:
        if self.ended:
            return False
        if not self.offers:
            return self.role is Party.BUYER
        return self.latest_from_other is not None

    @property
    def can_offer(self) -> bool:
        """Whether an offer (open or counter) is allowed: my turn, rounds left, no final offer pending."""
        latest = self.latest
        return self.my_turn and self.round < self.max_rounds and not (latest is not None and latest.final)

    def with_offer(self, offer: OfferSeen, thread_id: str | None = None) -> NegotiationView:
        return replace(self, offers=(*self.offers, offer), thread_id=thread_id or self.thread_id, refusals=())

    def with_chat(self, line: ChatLine) -> NegotiationView:
        return replace(self, chat=(*self.chat, line))

    @property
    def final_offer_pending(self) -> bool:
        """The other side's offer on the table is final: only accept or reject may follow."""
        offer = self.latest_from_other
        return offer is not None and offer.final

    def with_event(self, event: ThreadEvent) -> NegotiationView:
        """Fold one thread event from the agent's inbox into the view."""
        return self.with_events((event,))

    def with_events(
        self, events: Iterable[ThreadEvent], time_fraction: float | None = None
    ) -> NegotiationView:
        """Fold thread events from the agent's inbox into the view, in order, as one new view (and
        set its `time_fraction`, if given). A new offer clears the guard's refusals."""
        thread_id, max_rounds, deadline, ended = self.thread_id, self.max_rounds, self.deadline, self.ended
        offers: list[OfferSeen] = []
        chat: list[ChatLine] = []
        for event in events:
            if isinstance(event, ThreadOpened):
                thread_id, max_rounds, deadline = event.thread_id, event.max_rounds, event.deadline
            elif isinstance(event, OfferMade):
                offers.append(OfferSeen.from_event(event))
                thread_id = event.thread_id or thread_id
            elif isinstance(event, MessagePosted):
                chat.append(ChatLine(event.by, event.text))
            else:
                ended = True
        return replace(
            self,
            thread_id=thread_id,
            max_rounds=max_rounds,
            deadline=deadline,
            ended=ended,
            offers=(*self.offers, *offers) if offers else self.offers,
            chat=(*self.chat, *chat) if chat else self.chat,
            refusals=() if offers else self.refusals,
            time_fraction=self.time_fraction if time_fraction is None else time_fraction,
        )


ThreadEvent = ThreadOpened | OfferMade | MessagePosted | NegotiationEnded


def time_fraction(opened_at: datetime, deadline: datetime, now: datetime) -> float:
    """Share of the negotiation's time used, clamped to 0..1."""
    total = (deadline - opened_at).total_seconds()
    if total <= 0:
        return 1.0
    return min(1.0, max(0.0, (now - opened_at).total_seconds() / total))
