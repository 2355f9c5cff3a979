"""Each agent handler's decide step, once. Pure.

The service's handlers (`services/agents/handlers`) load what a step names from PostgreSQL,
call it, then save and send what it returns; the in-process engine (`haggle_lab/sim/agents.py`)
holds the same state in memory and calls the same steps. A rule about what an agent does with
an event lives here, not in either of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from haggle.contracts import Message
from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.listing import ListingFacts
from haggle.contracts.negotiation import DealAgreed, NegotiationEnded, OfferMade, ThreadOpened
from haggle.contracts.settlement import (
    AcceptGoods,
    ConfirmHandover,
    DisputeOutcome,
    DisputeResolved,
    EscrowFailed,
    EscrowFunded,
    OpenDispute,
    ShipItem,
    ShipmentDelivered,
    ShipmentLeg,
)
from haggle.guard.view import MandateLimits, NegotiationView
from services.agents.domain import deals, purchases, shopping, turn
from services.agents.domain.budget import Budget
from services.agents.domain.deals import Deal
from services.agents.domain.negotiation import Negotiation, Role, Status, buyer_neg_id, seller_neg_id
from services.agents.domain.principal import Principal

# A turn -------------------------------------------------------------------------------------


class NoTurn(StrEnum):
    """Why a turn has no move to make."""

    NOTHING_TO_SEE = "nothing_to_see"
    """The listing is unknown to the agent, or the negotiation is over."""
    DECLINED = "declined"
    """A buyer's opening the budget does not fund (or funds other wants first): ended, nothing held."""
    NOT_MY_TURN = "not_my_turn"


def needs_funding(neg: Negotiation) -> bool:
    """A buyer's negotiation not yet opened: its turn holds money first (`prepare` wants
    `funded_wants`)."""
    return neg.is_buyer and neg.thread_id is None


def funded_wants(principal: Principal, live: Iterable[tuple[Negotiation, int, int]]) -> set[str]:
    """The wants this buyer's budget goes to first, from its live buyer negotiations, each with
    its listing's asking price and cheapest shipping (`shopping.funded_wants`)."""
    best = shopping.best_candidates(live, principal.buying_cap)
    return shopping.funded_wants(best, principal.mandate.budget_cents - principal.committed_cents)


def prepare(
    principal: Principal,
    neg: Negotiation,
    facts: ListingFacts | None,
    budget: Budget,
    funded: set[str] | None,
    tokens_left: int | None,
    now: datetime,
) -> tuple[NegotiationView, MandateLimits] | NoTurn:
    """What the brain sees for this negotiation's next move and the limits the guard applies, or
    why there is no move. A buyer's opening holds its cap on `budget` first (`funded`: the
    wants the budget goes to, see `needs_funding`); declined, the negotiation is ended."""
    if facts is None or not neg.live:
        return NoTurn.NOTHING_TO_SEE
    if needs_funding(neg):
        held = turn.hold_for_opening(principal, neg, facts, budget, funded or set())
        if held is None:
            return NoTurn.DECLINED
        budget = held
    limits = turn.limits_for(principal, neg, budget, tokens_left)
    view = turn.view_of(principal, neg, facts, limits, now)
    return (view, limits) if view.my_turn else NoTurn.NOT_MY_TURN


def command_for(neg: Negotiation, decision: turn.Decision) -> Message | None:
    """The command a guarded decision sends (None: nothing); sending it means no turn is due."""
    command = turn.command_for(neg, decision.move)
    if command is not None:
        neg.retry_at = None
    return command


def reshops_after_turn(neg: Negotiation) -> str | None:
    """The want whose next candidate may open: a buyer's negotiation that ended (refused,
    declined, walked away) makes room."""
    if neg.is_buyer and neg.status is Status.ENDED and neg.want_id:
        return neg.want_id
    return None


# Thread events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Located:
    """Which of a principal's negotiations an event is about, and the seller negotiation to start
    when the event opens a thread on its listing and there is none yet."""

    neg_id: str
    fresh: Negotiation | None = None


AboutThread = ThreadOpened | OfferMade | NegotiationEnded | DealAgreed


def locate(principal: Principal, event: AboutThread) -> Located:
    listing_id, thread_id = event.listing_id, event.thread_id
    item_id = principal.item_id_of(listing_id)
    named_seller = None if isinstance(event, OfferMade) else event.seller_agent_id  # an offer names none
    seller_side = named_seller == principal.agent_id or item_id is not None
    if not seller_side:
        return Located(buyer_neg_id(principal.principal_id, listing_id))
    neg_id = seller_neg_id(principal.principal_id, thread_id)
    if not isinstance(event, ThreadOpened):
        return Located(neg_id)
    fresh = Negotiation(
        neg_id, principal.principal_id, listing_id, Role.SELLER, item_id=item_id, thread_id=thread_id
    )
    return Located(neg_id, fresh)


@dataclass(frozen=True, slots=True)
class ThreadStep:
    my_turn: bool
    """The other side offered: this agent moves next."""
    buyer_ended: bool
    """A buyer's negotiation ended: declined candidates wake, and the want's next one may open."""


def on_thread_event(
    principal: Principal,
    neg: Negotiation,
    event: ThreadOpened | OfferMade | NegotiationEnded,
    occurred_at: datetime,
) -> ThreadStep:
    """The event recorded on the negotiation (as this agent received it), and what follows."""
    neg.record(event, occurred_at)
    if isinstance(event, ThreadOpened):
        neg.thread_opened(event.thread_id)
    if isinstance(event, NegotiationEnded):
        neg.thread_ended(event.reason)
    my_turn = isinstance(event, OfferMade) and event.agent_id != principal.agent_id and neg.live
    buyer_ended = isinstance(event, NegotiationEnded) and neg.is_buyer and neg.status is Status.ENDED
    return ThreadStep(my_turn, buyer_ended)


def my_side(principal: Principal, event: DealAgreed) -> tuple[bool, int]:
    """Whether this principal buys in the deal, and its amount: the buyer's total (price, plus
    shipping when the buyer pays) or the seller's price."""
    buyer = principal.agent_id == event.buyer_agent_id
    return buyer, event.buyer_total_cents if buyer else event.price_cents


# After the handshake ----------------------------------------------------------------------------


def true_condition(principal: Principal, listing_id: str) -> Condition | None:
    """What is really in the box: the seller knows its item, whatever the listing says."""
    item_id = principal.item_id_of(listing_id)
    if item_id is None:
        return None
    item = principal.mandate.item(item_id)
    return item.true_condition or item.condition


def on_escrow_funded(principal: Principal, event: EscrowFunded) -> ConfirmHandover | ShipItem | None:
    """The money is held: the seller ships (or hands over), a pickup's buyer confirms the handover."""
    pickup = event.shipping_method is ShippingMethod.LOCAL_PICKUP
    if principal.principal_id == event.seller_principal_id:
        packed = true_condition(principal, event.listing_id) or Condition.GOOD
        if pickup:
            return ConfirmHandover(deal_id=event.deal_id, condition=packed)
        return ShipItem(deal_id=event.deal_id, packed_condition=packed)
    return ConfirmHandover(deal_id=event.deal_id) if pickup else None


def inspect(
    principal: Principal, event: ShipmentDelivered, listed: ListingFacts | None
) -> AcceptGoods | OpenDispute | None:
    """The buyer's inspection of a forward delivery: the delivered condition against the listing's
    (`listed`: the listing as the agent knows it), by `deals.inspection` (a principal who inspects
    the goods themselves is left to accept them)."""
    delivered = event.delivered_condition
    if event.leg is not ShipmentLeg.FORWARD or delivered is None or listed is None:
        return None
    if principal.item_id_of(event.listing_id) is not None:
        return None  # its own listing
    inspects = principal.mandate.inspects_goods
    return deals.inspection(event.deal_id, listed.condition, delivered, inspects)


def on_dispute_resolved(principal: Principal, deal: Deal, event: DisputeResolved) -> ConfirmHandover | None:
    """A pickup item coming back after a refund: the seller confirms it has it again."""
    pickup = deal.shipping_method == ShippingMethod.LOCAL_PICKUP.value
    if deal.role is not Role.SELLER or event.outcome is not DisputeOutcome.REFUND_AFTER_RETURN or not pickup:
        return None
    return ConfirmHandover(deal_id=event.deal_id, condition=true_condition(principal, deal.listing_id))


def refuses_again(deal: Deal, event: EscrowFailed) -> bool:
    """A purchase the principal denied or never answered is not tried again (`purchases`)."""
    return deal.role is Role.BUYER and purchases.consent_refused(event.reason)
