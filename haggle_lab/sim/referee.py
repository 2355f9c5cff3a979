"""The referee in process: `services.negotiation.domain.decide` over threads held in memory.

What the negotiation service's handlers do around the pure decision, done here on dicts:
know the agents (from `AgentRegistered`, admitting each) and the listings (from listing.events),
load a decision's context, apply the decision (threads, the listing's deal, the events on
negotiation.events and a copy in each party's inbox), and end a thread at its deadline.
Signatures are not checked: every agent here is run by the engine itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from haggle.contracts import Message
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.listing import (
    ListingPublished,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingWithdrawn,
)
from haggle.contracts.market import MarketPhase, MarketRulesSet
from haggle.contracts.negotiation import (
    AcceptOffer,
    ActionRefused,
    AgentAdmitted,
    DealAgreed,
    EndReason,
    NegotiationRefusal,
    OpenNegotiation,
)
from haggle.contracts.topics import (
    AGENT_EVENTS,
    AGENT_INBOX,
    LISTING_EVENTS_TOPIC,
    NEGOTIATION_COMMANDS,
    NEGOTIATION_EVENTS_TOPIC,
)
from haggle_lab.sim.bus import Bus, Delivery
from haggle_lab.sim.clock import Clock
from services.negotiation.domain import (
    Actor,
    Context,
    Decision,
    ListingState,
    ListingView,
    Refusal,
    Thread,
    ThreadStatus,
    close_for_listing,
    decide,
    expire,
)

PRODUCER = "negotiation"


class Referee:
    def __init__(self, clock: Clock, bus: Bus, rules: MarketRulesSet, market_id: str) -> None:
        self.clock, self.bus, self.rules, self.market_id = clock, bus, rules, market_id
        self.phase = MarketPhase.OPEN
        self.closing_at: datetime | None = None
        self.agents: dict[str, Actor] = {}
        self.listings: dict[str, ListingView] = {}
        self.threads: dict[str, Thread] = {}
        self.on_listing: dict[str, list[str]] = defaultdict(list)
        self.of_buyer: dict[str, list[str]] = defaultdict(list)
        self.deals: list[DealAgreed] = []
        self.refusals: list[ActionRefused] = []
        bus.subscribe(AGENT_EVENTS.name, self._on_agent_event)
        bus.subscribe(LISTING_EVENTS_TOPIC.name, self._on_listing_event)
        bus.subscribe(NEGOTIATION_COMMANDS.name, self._on_command)

    # the market's phase (the operator's MarketClosing / MarketClosed)

    def close(self) -> None:
        self.phase, self.closing_at = MarketPhase.CLOSING, self.clock.now

    @property
    def open_threads(self) -> int:
        return sum(1 for t in self.threads.values() if t.status is ThreadStatus.OPEN)

    # agent.events and listing.events

    def register(self, actor: Actor) -> None:
        self.agents.setdefault(actor.agent_id, actor)

    def _on_agent_event(self, env: Delivery, event: Message) -> None:
        if not isinstance(event, AgentRegistered):
            return
        self.register(
            Actor(
                event.agent_id,
                event.principal_id,
                event.owner_id,
                can_buy=event.role in (Role.BUYER, Role.BOTH),
                can_sell=event.role in (Role.SELLER, Role.BOTH),
            )
        )
        admitted = AgentAdmitted(agent_id=event.agent_id, principal_id=event.principal_id)
        self.bus.publish(AGENT_INBOX.name, admitted, producer=PRODUCER, agent_id=event.agent_id)

    def _on_listing_event(self, env: Delivery, event: Message) -> None:
        if isinstance(event, ListingPublished):
            self.add_listing(
                ListingView(
                    event.listing_id,
                    env.market_id,
                    event.seller_agent_id,
                    event.seller_principal_id,
                    ListingState.ACTIVE,
                    event.item,
                    event.shipping,
                )
            )
        elif isinstance(event, ListingWithdrawn):
            self._set_state(event.listing_id, ListingState.WITHDRAWN, close=EndReason.LISTING_WITHDRAWN)
        elif isinstance(event, ListingReserved):
            self._set_state(event.listing_id, ListingState.RESERVED)
        elif isinstance(event, ListingSold):
            self._set_state(event.listing_id, ListingState.SOLD)
        elif isinstance(event, ListingRelisted):
            self._set_state(event.listing_id, ListingState.ACTIVE, relist=True)

    def add_listing(self, view: ListingView) -> None:
        self.listings.setdefault(view.listing_id, view)

    def _set_state(
        self, listing_id: str, state: ListingState, close: EndReason | None = None, relist: bool = False
    ) -> None:
        view = self.listings.get(listing_id)
        if view is None:
            return
        deal_id = None if relist else view.deal_id
        epoch = view.epoch + 1 if relist else view.epoch
        self.listings[listing_id] = replace(view, state=state, deal_id=deal_id, epoch=epoch)
        if close is not None:
            self.apply(close_for_listing(self._threads_on(listing_id, open_only=True), close))

    def _threads_on(self, listing_id: str, open_only: bool = False) -> tuple[Thread, ...]:
        found = (self.threads[t] for t in self.on_listing.get(listing_id, ()))
        return tuple(t for t in found if not open_only or t.status is ThreadStatus.OPEN)

    # negotiation.commands: load → decide → apply

    def _on_command(self, env: Delivery, cmd: Message) -> None:
        self.command(str(env.agent_id), cmd)

    def command(self, agent_id: str, cmd: Message) -> Decision:
        """Decide one agent's command and apply what was decided; a refusal goes back to the sender."""
        actor = self.agents.get(agent_id)
        if actor is None:
            decision = Decision(refusal=Refusal(NegotiationRefusal.UNKNOWN_AGENT, "unknown agent"))
        else:
            decision = decide(cmd, self.context(actor, cmd))
        if decision.refusal is not None:
            self._refuse(agent_id, cmd, decision.refusal)
        else:
            self.apply(decision)
        return decision

    def context(self, actor: Actor, cmd: Message) -> Context:
        listing_id = str(getattr(cmd, "listing_id", ""))
        listing = self.listings.get(listing_id)
        if isinstance(cmd, OpenNegotiation):
            seller = self.agents.get(listing.seller_agent_id) if listing else None
            epoch = listing.epoch if listing else 0
            mine = [self.threads[t] for t in self.of_buyer.get(actor.agent_id, ())]
            return self._context(
                actor,
                listing,
                None,
                phase=self.phase,
                seller_owner_id=seller.owner_id if seller else None,
                seen_thread_before=any(t.listing_id == listing_id and t.epoch == epoch for t in mine),
                open_threads_of_actor=sum(1 for t in mine if t.status is ThreadStatus.OPEN),
            )
        thread = self.threads.get(str(getattr(cmd, "thread_id", "")))
        if thread is not None and thread.listing_id != listing_id:
            thread = None
        if not isinstance(cmd, AcceptOffer):
            return self._context(actor, listing, thread)
        others = tuple(
            t
            for t in self._threads_on(listing_id, open_only=True)
            if thread is None or t.thread_id != thread.thread_id
        )
        return self._context(actor, listing, thread, others_open=others)

    def _context(
        self, actor: Actor, listing: ListingView | None, thread: Thread | None, **more: Any
    ) -> Context:
        return Context(actor, listing, thread, self.rules, self.clock.now, self.market_id, **more)

    def apply(self, decision: Decision) -> None:
        """Save what a decision changed and publish its events, as the service's `apply_decision`."""
        by_id = {t.thread_id: t for t in decision.threads}
        for thread in decision.threads:
            if thread.thread_id not in self.threads:
                self.on_listing[thread.listing_id].append(thread.thread_id)
                self.of_buyer[thread.buyer.agent_id].append(thread.thread_id)
                self.clock.at(thread.deadline, _expiry(self, thread.thread_id))
            self.threads[thread.thread_id] = thread
        if decision.listing is not None:
            self.listings[decision.listing.listing_id] = decision.listing
        if decision.deal is not None:
            self.deals.append(decision.deal)
        for event in decision.events:
            thread = by_id[str(getattr(event, "thread_id", ""))]
            self._emit(event, (thread.buyer.agent_id, thread.seller.agent_id))

    def _expire(self, thread_id: str) -> None:
        self.apply(expire(self.threads[thread_id], self.clock.now))

    def _emit(self, event: Message, recipients: tuple[str, ...]) -> None:
        self.bus.publish(NEGOTIATION_EVENTS_TOPIC.name, event, producer=PRODUCER)
        for agent_id in dict.fromkeys(recipients):
            self.bus.publish(AGENT_INBOX.name, event, producer=PRODUCER, agent_id=agent_id)

    def _refuse(self, agent_id: str, cmd: Message, refusal: Refusal) -> None:
        event = ActionRefused(
            listing_id=str(getattr(cmd, "listing_id", ""))[:128],
            thread_id=getattr(cmd, "thread_id", None),
            agent_id=agent_id,
            command_type=cmd.type,
            command_event_id="sim",
            reason=refusal.reason,
            detail=refusal.detail[:1000],
        )
        self.refusals.append(event)
        self._emit(event, (agent_id,))


def _expiry(referee: Referee, thread_id: str) -> Callable[[], None]:
    return lambda: referee._expire(thread_id)
