"""The agents in process: `services/agents/domain` with the brains and the guard, state in memory.

The service's handlers load a principal, its negotiations and its budget from PostgreSQL, call
the agents' domain, and save what it returns; this class holds the same `Principal`,
`Negotiation`s and listings in dicts and calls the same domain functions: each handler's decide
step is one function of `services.agents.domain.steps`, which the service's handlers call too.
What is left here is each handler's load-and-save: which state it reads and keeps, which step it
calls, and where the command it returns goes. The turn scheduler (`app.run_due_turn`) is a step on
the simulated clock at a negotiation's `retry_at`.

Differences from the service, on purpose: no signatures or seqs (the engine runs every agent),
no rate limiter (it counts wall-clock seconds), model brains are refused (they call out), and
every agent's turn is taken at once on the clock (a strategy's is in the service too).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from haggle.contracts import AgentKey, Message
from haggle.contracts.agents import AgentRegistered
from haggle.contracts.agents import Role as AgentRole
from haggle.contracts.listing import (
    ListingFacts,
    ListingPublished,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingWithdrawn,
)
from haggle.contracts.mandate import Mandate
from haggle.contracts.negotiation import (
    ActionRefused,
    AgentAdmitted,
    DealAgreed,
    NegotiationEnded,
    OfferMade,
    ThreadOpened,
    WithdrawNegotiation,
)
from haggle.contracts.settlement import (
    DisputeResolved,
    EscrowFailed,
    EscrowFunded,
    FundsReleased,
    Refunded,
    ShipmentDelivered,
)
from haggle.contracts.topics import (
    AGENT_EVENTS,
    AGENT_INBOX,
    LISTING_COMMANDS_TOPIC,
    LISTING_EVENTS_TOPIC,
    NEGOTIATION_COMMANDS,
    SETTLEMENT_COMMANDS,
)
from haggle.guard.budget import cheapest_shipping
from haggle.guard.view import MandateLimits, NegotiationView
from haggle_lab.sim.bus import Bus, Delivery
from haggle_lab.sim.clock import Clock
from services.agents.brains import Brain, build_brain
from services.agents.domain import (
    Budget,
    EndedBecause,
    Negotiation,
    Principal,
    Role,
    Status,
    buyer_neg_id,
    deals,
    shopping,
    steps,
    turn,
)
from services.agents.domain.brain import is_remote
from services.agents.domain.deals import Deal, DealStatus

PRODUCER = "agents"
LOCAL_BRAINS = frozenset({"strategy", "compromised"})
"""Brains that think in this process: the others ask a model over the network."""


def _neg_id(neg: Negotiation) -> str:
    return neg.neg_id


def agent_id_for(principal_id: str) -> str:
    return f"{principal_id}.agent"


class RemoteBrain(ValueError):
    """A model brain calls out to a provider: the engine runs strategies and local brains only."""


class Agents:
    def __init__(self, clock: Clock, bus: Bus, market_id: str) -> None:
        self.clock, self.bus, self.market_id = clock, bus, market_id
        self.open = True
        self.principals: dict[str, Principal] = {}
        self.by_agent: dict[str, str] = {}
        self.brains: dict[str, Brain] = {}
        self.negs: dict[str, Negotiation] = {}
        self.negs_of: dict[str, list[Negotiation]] = {}
        """Each principal's negotiations in id order (the service's `negotiations WHERE principal_id`)."""
        self.candidates: dict[tuple[str, str], list[Negotiation]] = {}
        """Each (principal, want)'s live buyer negotiations in id order (the service's index on
        want_id): an ended one is dropped when next read, and put back when it comes alive again."""
        self.listings: dict[str, list[Any]] = {}
        self.asking: dict[str, tuple[int, int]] = {}
        """Each listing's asking price and cheapest shipping."""
        self.deals: dict[tuple[str, str], Deal] = {}
        self.deals_of: dict[str, list[Deal]] = {}
        self.guard_refusals: Counter[str] = Counter()
        bus.subscribe(AGENT_INBOX.name, self._on_inbox)
        bus.subscribe(LISTING_EVENTS_TOPIC.name, self._on_listing_event)

    # lifecycle: mandate → registered → admitted → listed; listings seen (`handlers.lifecycle`)

    def assign(self, mandate: Mandate, variant: str) -> None:
        """The principal's agent, registered with the referee (`on_assign_mandate`)."""
        if mandate.brain.kind not in LOCAL_BRAINS:
            raise RemoteBrain(
                f"{mandate.principal_id}: a {mandate.brain.kind} brain calls out; use a strategy"
            )
        brain = build_brain(mandate.brain)
        if is_remote(brain):
            raise RemoteBrain(f"{mandate.principal_id}: its brain calls out; use a strategy")
        agent_id = agent_id_for(mandate.principal_id)
        seed = hashlib.sha256(f"sim-key:{mandate.principal_id}".encode()).digest()
        key = AgentKey.from_bytes(seed)
        principal = Principal(mandate.principal_id, self.market_id, agent_id, variant, mandate, key, False, 0)
        self.principals[mandate.principal_id] = principal
        self.by_agent[agent_id] = mandate.principal_id
        self.brains[mandate.principal_id] = brain
        role = (
            AgentRole.BOTH
            if mandate.items and mandate.wants
            else AgentRole.SELLER
            if mandate.items
            else AgentRole.BUYER
        )
        registration = AgentRegistered(
            agent_id=agent_id,
            principal_id=mandate.principal_id,
            owner_id=mandate.owner_id,
            role=role,
            public_key=key.public,
        )
        self.bus.publish(AGENT_EVENTS.name, registration, producer=PRODUCER, agent_id=agent_id)

    def _admitted(self, principal: Principal) -> None:
        """List what we sell, and look at what is already for sale (`on_admitted`)."""
        if principal.admitted:
            return
        principal.admitted = True
        if not self.open:
            return
        for item in principal.mandate.items:
            listing_id = principal.listing_id_for(item.id)
            cmd = item.to_listing(listing_id, principal.agent_id, principal.principal_id)
            self._send(principal, cmd, LISTING_COMMANDS_TOPIC.name)
        if principal.mandate.wants:
            for listing_id in sorted(self.listings):
                facts, status = self.listings[listing_id]
                if status == "active":
                    self._consider(principal, facts)

    def _on_listing_event(self, env: Delivery, event: Message) -> None:
        if isinstance(event, ListingPublished):
            self.listings.setdefault(event.listing_id, [event, "active"])
            self.asking.setdefault(event.listing_id, (event.price_cents, cheapest_shipping(event.shipping)))
            if self.open:
                for principal in self._admitted_buyers():
                    self._consider(principal, event)
        elif isinstance(event, ListingWithdrawn | ListingReserved | ListingSold):
            if event.listing_id in self.listings:
                self.listings[event.listing_id][1] = event.type.removeprefix("Listing").lower()
        elif isinstance(event, ListingRelisted) and event.listing_id in self.listings:
            self.listings[event.listing_id][1] = "active"
            if self.open:
                for principal in self._admitted_buyers():
                    self._consider(principal, self.listings[event.listing_id][0])

    def _admitted_buyers(self) -> list[Principal]:
        return [p for _, p in sorted(self.principals.items()) if p.admitted and p.mandate.wants]

    def close(self) -> None:
        """A closing market: what waits to open ends now (`on_market_event`)."""
        self.open = False
        for neg in self.negs.values():
            if neg.status is Status.OPENING:
                neg.end(EndedBecause.MARKET_CLOSING)

    @property
    def opening(self) -> int:
        return sum(1 for n in self.negs.values() if n.status is Status.OPENING)

    # shopping (`handlers.shop`)

    def _consider(self, principal: Principal, listing: ListingPublished) -> None:
        want = shopping.matching_want(
            principal.principal_id,
            principal.mandate,
            listing,
            self._fulfilled(principal),
            principal.refused_listings,
            principal.buying_cap,
        )
        if want is None:
            return
        neg_id = buyer_neg_id(principal.principal_id, listing.listing_id)
        if neg_id in self.negs:
            return  # a listing is tried once
        self._add(
            Negotiation(neg_id, principal.principal_id, listing.listing_id, Role.BUYER, want_id=want.id)
        )
        self._reshop(principal, want.id, shopping.SHOP_SECONDS)

    def _add(self, neg: Negotiation) -> None:
        self.negs[neg.neg_id] = neg
        bisect.insort(self.negs_of.setdefault(neg.principal_id, []), neg, key=_neg_id)
        self._alive(neg)

    def _alive(self, neg: Negotiation) -> None:
        """A buyer negotiation is live (new, revived, or its thread opened after all): a candidate."""
        if neg.is_buyer and neg.want_id is not None and neg.live:
            live = self.candidates.setdefault((neg.principal_id, neg.want_id), [])
            at = bisect.bisect_left(live, neg.neg_id, key=_neg_id)
            if at == len(live) or live[at] is not neg:
                live.insert(at, neg)

    def _negs(self, principal: Principal) -> list[Negotiation]:
        return self.negs_of.get(principal.principal_id, [])

    def _live_buyer_negs(self, principal: Principal, want_id: str) -> list[Negotiation]:
        key = (principal.principal_id, want_id)
        live = self.candidates[key] = [n for n in self.candidates.get(key, ()) if n.live]
        return live

    def _asking(self, neg: Negotiation) -> tuple[int, int]:
        return self.asking[neg.listing_id]

    def _shortlist(self, principal: Principal, want_id: str) -> list[tuple[Negotiation, int]]:
        return [(n, sum(self._asking(n))) for n in self._live_buyer_negs(principal, want_id)]

    def _reshop(self, principal: Principal, want_id: str, delay: float = 0.0) -> None:
        self._apply(shopping.reshop(self._shortlist(principal, want_id), self._in(delay)))

    def _apply(self, outcome: shopping.Reshopped) -> None:
        for neg in outcome.changed:
            if neg.retry_at is not None:
                self._due(neg)

    def _still_chosen(self, principal: Principal, neg: Negotiation) -> bool:
        """A candidate due to open is ranked again first (`shop.still_chosen`)."""
        if not neg.waiting_to_open:
            return True
        self._reshop(principal, str(neg.want_id))
        return neg.live and neg.retry_at is not None

    def _after_turn(self, principal: Principal, neg: Negotiation) -> None:
        if want_id := steps.reshops_after_turn(neg):
            self._apply(shopping.after_ending(neg, self._shortlist(principal, want_id), self._in(0)))

    def _wake_declined(self, principal: Principal) -> None:
        """A want is open again: its untried candidates get another look (`shop.wake_declined`)."""
        if not self.open:
            return
        fulfilled = self._fulfilled(principal)
        by_want: dict[str, list[tuple[Negotiation, int]]] = {}
        for neg in self._negs(principal):
            if neg.revivable(fulfilled):
                by_want.setdefault(str(neg.want_id), []).append((neg, sum(self._asking(neg))))
        for want_id, revivable in sorted(by_want.items()):
            looked = shopping.revival(self._shortlist(principal, want_id), revivable)
            for neg in looked.revive:
                neg.revive()
                self._alive(neg)
            for neg in looked.passed_over:
                neg.passed_over()
            self._reshop(principal, want_id)

    def _fulfilled(self, principal: Principal) -> set[str]:
        return {
            d.want_id
            for d in self.deals_of.get(principal.principal_id, ())
            if d.role is Role.BUYER and d.want_id and d.status not in deals.GIVES_MONEY_BACK
        }

    def _budget(self, principal: Principal) -> Budget:
        return principal.budget(
            n for w in principal.mandate.wants for n in self._live_buyer_negs(principal, w.id)
        )

    # turns (`app.run_due_turn`, `handlers.turns`)

    def _in(self, seconds: float) -> datetime:
        return self.clock.now + timedelta(seconds=seconds)

    def _due(self, neg: Negotiation) -> None:
        """Its `retry_at` is set: the turn scheduler takes it then."""
        assert neg.retry_at is not None
        self.clock.at(neg.retry_at, lambda: self._run_due_turn(neg.neg_id))

    async def _run_due_turn(self, neg_id: str) -> None:
        neg = self.negs[neg_id]
        if neg.retry_at is None or neg.retry_at > self.clock.now or not neg.live:
            return
        principal = self.principals[neg.principal_id]
        if not self._still_chosen(principal, neg):
            return
        neg.retry_at = None
        await self._take_turn(principal, neg)

    def _facts(self, principal: Principal, neg: Negotiation) -> ListingFacts | None:
        known = self.listings.get(neg.listing_id)
        return known[0] if known is not None else turn.seller_facts(principal, neg)

    async def _take_turn(self, principal: Principal, neg: Negotiation) -> None:
        prepared = self._prepare(principal, neg)
        if not isinstance(prepared, steps.NoTurn):
            view, limits = prepared
            decision = await turn.next_move(self.brains[principal.principal_id], view, limits, limiter=None)
            self.guard_refusals.update(refusal.reason.value for refusal in decision.refusals)
            command = steps.command_for(neg, decision)
            if command is not None:
                self._send(principal, command, NEGOTIATION_COMMANDS.name)
        self._after_turn(principal, neg)

    def _prepare(
        self, principal: Principal, neg: Negotiation
    ) -> tuple[NegotiationView, MandateLimits] | steps.NoTurn:
        facts = self._facts(principal, neg)
        if facts is None or not neg.live:
            return steps.NoTurn.NOTHING_TO_SEE
        budget = self._budget(principal) if neg.is_buyer else principal.budget(())
        funded = self._funded_wants(principal) if steps.needs_funding(neg) else None
        return steps.prepare(principal, neg, facts, budget, funded, None, self.clock.now)

    def _funded_wants(self, principal: Principal) -> set[str]:
        """`store.live_candidates`: each live buyer negotiation with its listing's asking price."""
        live = (
            (neg, *self._asking(neg))
            for want in principal.mandate.wants
            for neg in self._live_buyer_negs(principal, want.id)
        )
        return steps.funded_wants(principal, live)

    def _send(self, principal: Principal, command: Message, topic: str) -> None:
        self.bus.publish(topic, command, producer=PRODUCER, agent_id=principal.agent_id)

    # the inbox

    async def _on_inbox(self, env: Delivery, event: Message) -> None:
        pid = self.by_agent.get(str(env.agent_id))
        if pid is None:
            return
        principal = self.principals[pid]
        if isinstance(event, AgentAdmitted):
            self._admitted(principal)
        elif isinstance(event, ThreadOpened | OfferMade | NegotiationEnded):
            await self._on_thread_event(principal, env, event)
        elif isinstance(event, DealAgreed):
            self._on_deal_agreed(principal, event)
        elif isinstance(event, ActionRefused):
            self._on_refused(principal, event)
        else:
            self._on_settlement(principal, event)

    def _locate(self, principal: Principal, event: steps.AboutThread) -> Negotiation | None:
        located = steps.locate(principal, event)
        found = self.negs.get(located.neg_id)
        if found is None and located.fresh is not None:
            found = located.fresh
            self._add(found)
        return found

    async def _on_thread_event(
        self, principal: Principal, env: Delivery, event: ThreadOpened | OfferMade | NegotiationEnded
    ) -> None:
        neg = self._locate(principal, event)
        if neg is None:
            return
        step = steps.on_thread_event(principal, neg, event, env.occurred_at)
        if isinstance(event, ThreadOpened):
            self._alive(neg)
        if step.my_turn:
            await self._take_turn(principal, neg)
        if step.buyer_ended:
            self._wake_declined(principal)
            if neg.want_id:
                self._reshop(principal, neg.want_id)

    def _on_deal_agreed(self, principal: Principal, event: DealAgreed) -> None:
        neg = self._locate(principal, event)
        key = (event.deal_id, principal.principal_id)
        if neg is None or key in self.deals:
            return
        buyer, amount = steps.my_side(principal, event)
        self.deals[key] = Deal(
            deal_id=event.deal_id,
            principal_id=principal.principal_id,
            role=neg.role,
            listing_id=neg.listing_id,
            want_id=neg.want_id,
            amount_cents=amount,
            shipping_method=event.shipping_method.value,
        )
        self.deals_of.setdefault(principal.principal_id, []).append(self.deals[key])
        if not buyer:
            deals.seller_deal_agreed(neg)
            return
        outcome = deals.buyer_deal_agreed(neg, amount, self._budget(principal), self._negs(principal))
        principal.spend(outcome.budget)
        for other in outcome.withdraw:
            withdraw = WithdrawNegotiation(listing_id=other.listing_id, thread_id=str(other.thread_id))
            self._send(principal, withdraw, NEGOTIATION_COMMANDS.name)
        self._wake_declined(principal)

    def _on_refused(self, principal: Principal, event: ActionRefused) -> None:
        if event.command_type != "OpenNegotiation":
            return
        neg = self.negs.get(buyer_neg_id(principal.principal_id, event.listing_id))
        if neg is None or neg.status is not Status.OPENING:
            return
        neg.opening_refused(event.reason, self.clock.now)
        if neg.retry_at is not None:
            self._due(neg)
        self._after_turn(principal, neg)

    # after the handshake (`handlers.settle`)

    def _on_settlement(self, principal: Principal, event: Message) -> None:
        cmd: Message | None = None
        if isinstance(event, EscrowFunded):
            cmd = steps.on_escrow_funded(principal, event)
        elif isinstance(event, ShipmentDelivered):
            known = self.listings.get(event.listing_id)
            cmd = steps.inspect(principal, event, known[0] if known is not None else None)
        elif isinstance(event, DisputeResolved):
            deal = self.deals.get((event.deal_id, principal.principal_id))
            cmd = steps.on_dispute_resolved(principal, deal, event) if deal is not None else None
        elif isinstance(event, EscrowFailed):
            deal = self.deals.get((event.deal_id, principal.principal_id))
            if deal and steps.refuses_again(deal, event):
                principal.refuse_purchase(deal.listing_id, deal.want_id)
            self._close_deal(principal, event.deal_id, DealStatus.FAILED)
        elif isinstance(event, Refunded):
            self._close_deal(principal, event.deal_id, DealStatus.REFUNDED)
        elif isinstance(event, FundsReleased):
            self._close_deal(principal, event.deal_id, DealStatus.SETTLED)
        if cmd is not None:
            self._send(principal, cmd, SETTLEMENT_COMMANDS.name)

    def _close_deal(self, principal: Principal, deal_id: str, status: DealStatus) -> None:
        """A failed or refunded purchase gives its money back to the budget (`Deal.close`)."""
        deal = self.deals.get((deal_id, principal.principal_id))
        if deal is None:
            return
        budget = deal.close(status, self._budget(principal))
        if budget is None:
            return
        principal.spend(budget)
        if deal.gives_money_back:
            self._wake_declined(principal)
