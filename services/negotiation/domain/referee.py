"""The referee: alternating-offer threads on one listing, as pure rules. No I/O here.

`decide(command, ctx)` returns a `Decision`: either a refusal with a typed
reason and no state change, or the new state of the threads it touched, the
listing view's deal, and the events to publish. Every move on one listing is
decided in order (commands are keyed by listing id), so "the first valid
accept wins" is a plain check of the listing's deal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from haggle.contracts.envelope import Message
from haggle.contracts.goods import ShippingMethod, shipping_refusal
from haggle.contracts.market import MarketPhase
from haggle.contracts.negotiation import (
    AcceptOffer,
    CounterOffer,
    DealAgreed,
    EndReason,
    MessagePosted,
    NegotiationEnded,
    NegotiationRefusal,
    OfferMade,
    OpenNegotiation,
    Party,
    RejectOffer,
    SendMessage,
    ThreadOpened,
    WithdrawNegotiation,
)
from haggle.contracts.types import MAX_PRICE_CENTS
from services.negotiation.domain.model import (
    MAX_MESSAGES_PER_THREAD,
    Actor,
    Context,
    Decision,
    ListingState,
    ListingView,
    Offer,
    Refusal,
    Thread,
    ThreadStatus,
    refuse,
    short_hash,
    thread_id_for,
)

R = NegotiationRefusal


# Shared checks --------------------------------------------------------------


def _listing_refusal(listing: ListingView | None, market_id: str) -> Refusal | None:
    if listing is None or listing.market_id != market_id:
        return Refusal(R.LISTING_UNKNOWN, "the referee does not know this listing (yet)")
    if listing.deal_id is not None or listing.state in (ListingState.RESERVED, ListingState.SOLD):
        return Refusal(R.LISTING_SOLD, "the listing already has a deal")
    if listing.state is not ListingState.ACTIVE:
        return Refusal(R.LISTING_NOT_ACTIVE, f"listing is {listing.state}")
    return None


def _terms_refusal(listing: ListingView, price: int, method: ShippingMethod) -> Refusal | None:
    if price <= 0 or price > MAX_PRICE_CENTS:
        return Refusal(R.INVALID_PRICE, f"price {price} cents outside 1..{MAX_PRICE_CENTS}")
    if method not in {option.method for option in listing.shipping}:
        return Refusal(R.SHIPPING_NOT_OFFERED, f"{method} is not offered for this listing")
    if why := shipping_refusal(method, listing.item):
        return Refusal(R.SHIPPING_INFEASIBLE, f"{method}: {why}")
    return None


def _shipping_cost(listing: ListingView, method: ShippingMethod) -> int:
    return next(option.cost_cents for option in listing.shipping if option.method is method)


def _live_thread_refusal(ctx: Context, thread_id: str) -> Refusal | None:
    """The thread exists, the actor is a party, and it may still move."""
    thread = ctx.thread
    if thread is None or thread.thread_id != thread_id:
        return Refusal(R.UNKNOWN_THREAD, f"no thread {thread_id} on this listing")
    if thread.party_of(ctx.actor.agent_id) is None:
        return Refusal(R.NOT_A_PARTY, "you are not a party to this thread")
    if thread.status is ThreadStatus.ENDED:
        if thread.end_reason is EndReason.LISTING_SOLD:
            return Refusal(R.LISTING_SOLD, "another buyer's deal closed this thread")
        return Refusal(R.THREAD_ENDED, f"thread ended: {thread.end_reason}")
    if ctx.now >= thread.deadline:
        return Refusal(R.DEADLINE_PASSED, f"deadline {thread.deadline.isoformat()} passed")
    return None


def _ended(
    thread: Thread, reason: EndReason, by: Party | None, message: str = ""
) -> tuple[Thread, NegotiationEnded]:
    event = NegotiationEnded(
        thread_id=thread.thread_id,
        listing_id=thread.listing_id,
        buyer_agent_id=thread.buyer.agent_id,
        seller_agent_id=thread.seller.agent_id,
        reason=reason,
        by=by,
        rounds=len(thread.offers),
        last_offer_id=thread.latest.offer_id if thread.latest else None,
        message=message,
    )
    return replace(thread, status=ThreadStatus.ENDED, end_reason=reason), event


def _offer_event(thread: Thread, offer: Offer, message: str) -> OfferMade:
    return OfferMade(
        thread_id=thread.thread_id,
        listing_id=thread.listing_id,
        offer_id=offer.offer_id,
        by=offer.by,
        agent_id=offer.agent_id,
        round=offer.round,
        price_cents=offer.price_cents,
        shipping_method=offer.shipping_method,
        shipping_cost_cents=offer.shipping_cost_cents,
        shipping_paid_by=offer.shipping_paid_by,
        message=message,
        final=offer.round >= thread.max_rounds,
    )


def _new_offer(
    thread: Thread, by: Party, agent_id: str, listing: ListingView, cmd: OpenNegotiation | CounterOffer
) -> Offer:
    round_ = len(thread.offers) + 1
    return Offer(
        offer_id=f"{thread.thread_id}.{round_}",
        by=by,
        agent_id=agent_id,
        round=round_,
        price_cents=cmd.price_cents,
        shipping_method=cmd.shipping_method,
        shipping_cost_cents=_shipping_cost(listing, cmd.shipping_method),
        shipping_paid_by=cmd.shipping_paid_by,
    )


# Decisions, one per command ------------------------------------------------


CLOSED_PHASES = {
    MarketPhase.CLOSING: Refusal(R.MARKET_CLOSING, "the market is closing: no new negotiations"),
    MarketPhase.CLOSED: Refusal(R.MARKET_CLOSED, "the market is closed"),
}


def open_thread(cmd: OpenNegotiation, ctx: Context) -> Decision:
    listing, actor = ctx.listing, ctx.actor
    if refusal := CLOSED_PHASES.get(ctx.phase):
        return Decision(refusal=refusal)
    if refusal := _listing_refusal(listing, ctx.market_id):
        return Decision(refusal=refusal)
    assert listing is not None
    if not actor.can_buy:
        return refuse(R.WRONG_ROLE, "only a buyer agent may open a negotiation")
    if actor.principal_id == listing.seller_principal_id:
        return refuse(R.SELF_DEALING, "buyer and seller act for the same principal")
    if ctx.rules.forbid_same_owner_trades and actor.owner_id and actor.owner_id == ctx.seller_owner_id:
        return refuse(R.SAME_OWNER, "buyer and seller principals have the same owner")
    if ctx.seen_thread_before:
        return refuse(R.THREAD_EXISTS, "one thread per buyer on a listing until it is relisted")
    if ctx.open_threads_of_actor >= ctx.rules.max_open_threads_per_agent:
        return refuse(R.TOO_MANY_THREADS, f"{ctx.open_threads_of_actor} threads open already")
    if refusal := _terms_refusal(listing, cmd.price_cents, cmd.shipping_method):
        return Decision(refusal=refusal)
    seller = Actor(listing.seller_agent_id, listing.seller_principal_id, ctx.seller_owner_id, False, True)
    thread = Thread(
        thread_id=thread_id_for(listing.listing_id, actor.agent_id, listing.epoch),
        listing_id=listing.listing_id,
        buyer=actor,
        seller=seller,
        opened_at=ctx.now,
        deadline=ctx.now + timedelta(seconds=ctx.rules.negotiation_ttl_seconds),
        max_rounds=ctx.rules.max_rounds,
        epoch=listing.epoch,
    )
    offer = _new_offer(thread, Party.BUYER, actor.agent_id, listing, cmd)
    opened = ThreadOpened(
        thread_id=thread.thread_id,
        listing_id=thread.listing_id,
        buyer_agent_id=actor.agent_id,
        seller_agent_id=seller.agent_id,
        deadline=thread.deadline,
        max_rounds=thread.max_rounds,
    )
    thread = replace(thread, offers=(offer,))
    return Decision(threads=(thread,), events=(opened, _offer_event(thread, offer, cmd.message)))


def _move_refusal(ctx: Context, thread_id: str) -> Refusal | None:
    return _live_thread_refusal(ctx, thread_id) or _listing_refusal(ctx.listing, ctx.market_id)


def counter(cmd: CounterOffer, ctx: Context) -> Decision:
    if refusal := _move_refusal(ctx, cmd.thread_id):
        return Decision(refusal=refusal)
    thread, listing = ctx.thread, ctx.listing
    assert thread is not None and listing is not None
    party = thread.party_of(ctx.actor.agent_id)
    assert party is not None
    if party is not thread.turn:
        return refuse(R.OUT_OF_TURN, f"it is the {thread.turn}'s turn")
    if len(thread.offers) >= thread.max_rounds:
        return refuse(R.MAX_ROUNDS, f"{thread.max_rounds} rounds made: only accept or reject remain")
    if refusal := _terms_refusal(listing, cmd.price_cents, cmd.shipping_method):
        return Decision(refusal=refusal)
    offer = _new_offer(thread, party, ctx.actor.agent_id, listing, cmd)
    updated = replace(thread, offers=(*thread.offers, offer))
    return Decision(threads=(updated,), events=(_offer_event(updated, offer, cmd.message),))


def _answer_refusal(ctx: Context, thread_id: str, offer_id: str) -> Refusal | None:
    """Accept and reject answer exactly the latest offer of the other side."""
    if refusal := _move_refusal(ctx, thread_id):
        return refusal
    thread = ctx.thread
    assert thread is not None
    latest = thread.latest
    if latest is None or latest.offer_id != offer_id:
        return Refusal(R.STALE_OFFER, f"{offer_id} is not the latest offer")
    if latest.by is thread.party_of(ctx.actor.agent_id):
        return Refusal(R.OUT_OF_TURN, "you cannot answer your own offer")
    return None


def accept(cmd: AcceptOffer, ctx: Context) -> Decision:
    if refusal := _answer_refusal(ctx, cmd.thread_id, cmd.offer_id):
        return Decision(refusal=refusal)
    thread, listing = ctx.thread, ctx.listing
    assert thread is not None and listing is not None and thread.latest is not None
    offer = thread.latest
    deal = DealAgreed(
        deal_id=f"d-{short_hash(thread.thread_id, offer.offer_id)}",
        listing_id=listing.listing_id,
        thread_id=thread.thread_id,
        buyer_agent_id=thread.buyer.agent_id,
        buyer_principal_id=thread.buyer.principal_id,
        seller_agent_id=thread.seller.agent_id,
        seller_principal_id=thread.seller.principal_id,
        price_cents=offer.price_cents,
        shipping_method=offer.shipping_method,
        shipping_cost_cents=offer.shipping_cost_cents,
        shipping_paid_by=offer.shipping_paid_by,
        accepted_offer_id=offer.offer_id,
        rounds=len(thread.offers),
    )
    won, won_event = _ended(thread, EndReason.DEAL, thread.party_of(ctx.actor.agent_id))
    closed = [_ended(other, EndReason.LISTING_SOLD, None) for other in ctx.others_open]
    return Decision(
        threads=(won, *(t for t, _ in closed)),
        listing=replace(listing, deal_id=deal.deal_id),
        events=(deal, won_event, *(e for _, e in closed)),
        deal=deal,
    )


def reject(cmd: RejectOffer, ctx: Context) -> Decision:
    if refusal := _answer_refusal(ctx, cmd.thread_id, cmd.offer_id):
        return Decision(refusal=refusal)
    assert ctx.thread is not None
    ended, event = _ended(
        ctx.thread, EndReason.REJECTED, ctx.thread.party_of(ctx.actor.agent_id), cmd.message
    )
    return Decision(threads=(ended,), events=(event,))


def withdraw(cmd: WithdrawNegotiation, ctx: Context) -> Decision:
    """Walking away needs no turn and is allowed after the listing is gone."""
    if refusal := _live_thread_refusal(ctx, cmd.thread_id):
        return Decision(refusal=refusal)
    assert ctx.thread is not None
    ended, event = _ended(ctx.thread, EndReason.WITHDRAWN, ctx.thread.party_of(ctx.actor.agent_id))
    return Decision(threads=(ended,), events=(event,))


def chat(cmd: SendMessage, ctx: Context) -> Decision:
    if refusal := _live_thread_refusal(ctx, cmd.thread_id):
        return Decision(refusal=refusal)
    thread = ctx.thread
    assert thread is not None
    if thread.messages >= MAX_MESSAGES_PER_THREAD:
        return refuse(R.RATE_LIMITED, f"{MAX_MESSAGES_PER_THREAD} messages per thread at most")
    party = thread.party_of(ctx.actor.agent_id)
    assert party is not None
    event = MessagePosted(
        thread_id=thread.thread_id,
        listing_id=thread.listing_id,
        by=party,
        agent_id=ctx.actor.agent_id,
        text=cmd.text,
    )
    return Decision(threads=(replace(thread, messages=thread.messages + 1),), events=(event,))


# Reactions that end threads without a command --------------------------------


def expire(thread: Thread, now: datetime) -> Decision:
    if thread.status is ThreadStatus.ENDED or now < thread.deadline:
        return Decision()
    ended, event = _ended(thread, EndReason.EXPIRED_DEADLINE, None)
    return Decision(threads=(ended,), events=(event,))


def close_for_listing(threads: tuple[Thread, ...], reason: EndReason) -> Decision:
    closed = [_ended(t, reason, None) for t in threads if t.status is ThreadStatus.OPEN]
    return Decision(threads=tuple(t for t, _ in closed), events=tuple(e for _, e in closed))


COMMANDS: dict[type[Message], Callable[[Any, Context], Decision]] = {
    OpenNegotiation: open_thread,
    CounterOffer: counter,
    AcceptOffer: accept,
    RejectOffer: reject,
    WithdrawNegotiation: withdraw,
    SendMessage: chat,
}


def decide(cmd: Message, ctx: Context) -> Decision:
    """The referee's one dispatch table: the service subscribes to exactly these commands."""
    return COMMANDS[type(cmd)](cmd, ctx)
