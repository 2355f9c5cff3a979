"""The agents service's handlers, wired in process over its pure parts. THIN WIRING, NOT A DOMAIN.

The agents service has no pure domain yet: its rules live in pure modules (`shopping`,
`purchases`, `decide.next_move` with the brains and the guard, `common.thread_cap`,
`common.view_of`, `lifecycle.matching_want`, `turns._command`) called from handlers that read
and write PostgreSQL. This module calls those same pure functions; what it re-wires is the
handlers' glue around them, step by step (each names the handler it follows), so that the glue
can move into `services/agents/domain/` and this module then call that instead:

- `lifecycle.on_assign_mandate`, `on_admitted`, `on_listing_published`/`_gone`/`_relisted`,
  `on_market_event` (closing ends the openings);
- `shop.consider`, `reshop`, `still_chosen`, `after_turn`, `wake_declined`;
- `turns.take_turn`, `prepare`, `_hold_for_opening`, `_funded_wants`, `_apply`, `_send_move`,
  `on_thread_event`, `on_deal_agreed`, `_drop_other_threads_for`, `on_refused`;
- `common.limits_of`, `free_budget` (SQL sums over negotiations, here over a dict);
- `settle.on_escrow_funded`, `on_delivered`, `on_dispute_resolved`, `_close_deal`,
  `on_escrow_failed`;
- `app.run_due_turn`: the turn scheduler, here a step on the simulated clock at `retry_at`.

Differences from the service, on purpose: no signatures or seqs (the engine runs every agent),
no rate limiter (it counts wall-clock seconds), model brains are refused (they call out), and a
thread's `time_fraction` is measured on the simulated clock.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from haggle.contracts import AgentKey, Envelope, Message
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.goods import ShippingMethod
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
    EndReason,
    NegotiationEnded,
    OfferMade,
    ThreadOpened,
    WithdrawNegotiation,
)
from haggle.contracts.settlement import (
    AcceptGoods,
    ConfirmHandover,
    DisputeOutcome,
    DisputeReason,
    DisputeResolved,
    EscrowFailed,
    EscrowFunded,
    FundsReleased,
    OpenDispute,
    Refunded,
    ShipItem,
    ShipmentDelivered,
    ShipmentLeg,
)
from haggle.contracts.topics import (
    AGENT_EVENTS,
    AGENT_INBOX,
    LISTING_COMMANDS_TOPIC,
    LISTING_EVENTS_TOPIC,
    NEGOTIATION_COMMANDS,
    SETTLEMENT_COMMANDS,
)
from haggle.guard.view import MandateLimits, NegotiationView, time_fraction
from haggle_lab.sim.bus import Bus
from haggle_lab.sim.clock import Clock
from services.agents import purchases, shopping
from services.agents.brains import Brain, build_brain
from services.agents.brains.base import is_remote
from services.agents.decide import next_move
from services.agents.handlers import common, lifecycle, shop, turns
from services.agents.moves import Walk
from services.agents.store import Negotiation, Principal, buyer_neg_id, seller_neg_id

PRODUCER = "agents"


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
        self.negs_of: dict[str, dict[str, Negotiation]] = {}
        """Each principal's negotiations by id (the service's `negotiations WHERE principal_id`)."""
        self.listings: dict[str, list[Any]] = {}
        self.deals: dict[tuple[str, str], dict[str, Any]] = {}
        self.deals_of: dict[str, list[dict[str, Any]]] = {}
        self.guard_refusals: Counter[str] = Counter()
        bus.subscribe(AGENT_INBOX.name, self._on_inbox)
        bus.subscribe(LISTING_EVENTS_TOPIC.name, self._on_listing_event)

    # lifecycle: mandate → registered → admitted → listed; listings seen

    def assign(self, mandate: Mandate, variant: str) -> None:
        """`lifecycle.on_assign_mandate`: the principal's agent, registered with the referee."""
        brain = build_brain(mandate.brain)
        if is_remote(brain):
            raise RemoteBrain(f"{mandate.principal_id}: {mandate.brain.kind} brains call out; use a strategy")
        agent_id = lifecycle.agent_id_for(mandate.principal_id)
        seed = hashlib.sha256(f"sim-key:{mandate.principal_id}".encode()).digest()
        principal = Principal(
            mandate.principal_id,
            self.market_id,
            agent_id,
            variant,
            mandate,
            AgentKey.from_bytes(seed),
            False,
            0,
        )
        self.principals[mandate.principal_id] = principal
        self.by_agent[agent_id] = mandate.principal_id
        self.brains[mandate.principal_id] = brain
        role = Role.BOTH if mandate.items and mandate.wants else Role.SELLER if mandate.items else Role.BUYER
        registration = AgentRegistered(
            agent_id=agent_id,
            principal_id=mandate.principal_id,
            owner_id=mandate.owner_id,
            role=role,
            public_key=principal.key.public,
        )
        self.bus.publish(AGENT_EVENTS.name, registration, producer=PRODUCER, agent_id=agent_id)

    def _admitted(self, principal: Principal) -> None:
        """`lifecycle.on_admitted`: list what we sell, and look at what is already for sale."""
        if principal.admitted:
            return
        principal.admitted = True
        if not self.open:
            return
        for item in principal.mandate.items:
            listing_id = common.listing_id_for(principal.principal_id, item.id)
            cmd = item.to_listing(listing_id, principal.agent_id, principal.principal_id)
            self._send(principal, cmd, LISTING_COMMANDS_TOPIC.name)
        if principal.mandate.wants:
            for listing_id in sorted(self.listings):
                facts, status = self.listings[listing_id]
                if status == "active":
                    self._consider(principal, facts)

    def _on_listing_event(self, env: Envelope, event: Message) -> None:
        if isinstance(event, ListingPublished):
            self.listings.setdefault(event.listing_id, [event, "active"])
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
        """`lifecycle.on_market_event` for `MarketClosing`: what waits to open ends now."""
        self.open = False
        for neg in self.negs.values():
            if neg.status == "opening":
                self._end(neg, "market_closing")

    @property
    def opening(self) -> int:
        return sum(1 for n in self.negs.values() if n.status == "opening")

    # shopping (`shop`)

    def _consider(self, principal: Principal, listing: ListingPublished) -> None:
        want = lifecycle.matching_want(principal, listing, self._fulfilled(principal))
        if want is None:
            return
        neg_id = buyer_neg_id(principal.principal_id, listing.listing_id)
        if neg_id in self.negs:
            return
        self._add(Negotiation(neg_id, principal.principal_id, listing.listing_id, "buyer", want_id=want.id))
        self._reshop(principal, want.id, shopping.SHOP_SECONDS)

    def _add(self, neg: Negotiation) -> None:
        self.negs[neg.neg_id] = neg
        self.negs_of.setdefault(neg.principal_id, {})[neg.neg_id] = neg

    def _negs(self, principal: Principal) -> list[Negotiation]:
        return [n for _, n in sorted(self.negs_of.get(principal.principal_id, {}).items())]

    def _live_buyer_negs(self, principal: Principal, want_id: str | None = None) -> list[Negotiation]:
        return [
            n
            for n in self._negs(principal)
            if n.role == "buyer" and n.live and (want_id is None or n.want_id == want_id)
        ]

    def _asking(self, neg: Negotiation) -> tuple[int, int]:
        facts = self.listings[neg.listing_id][0]
        return facts.price_cents, min((o.cost_cents for o in facts.shipping), default=0)

    def _reshop(self, principal: Principal, want_id: str, delay: float = 0.0) -> None:
        negs = {n.neg_id: n for n in self._live_buyer_negs(principal, want_id)}
        candidates = [
            shopping.Candidate(n.neg_id, sum(self._asking(n)), n.status == "open" or n.reserved_cents > 0)
            for n in negs.values()
        ]
        chosen = shopping.plan(candidates)
        for neg_id in chosen.open:
            if negs[neg_id].retry_at is None:
                self._due_at(negs[neg_id], self.clock.now + timedelta(seconds=delay))
        for neg_id in chosen.wait:
            negs[neg_id].retry_at = None
        for neg_id in chosen.drop:
            if negs[neg_id].status == "opening":
                self._end(negs[neg_id], "outranked")

    def _still_chosen(self, principal: Principal, neg: Negotiation) -> bool:
        if neg.role != "buyer" or neg.thread_id is not None or neg.reserved_cents or not neg.want_id:
            return True
        self._reshop(principal, neg.want_id)
        return neg.live and neg.retry_at is not None

    def _after_turn(self, principal: Principal, neg: Negotiation) -> None:
        if neg.role == "buyer" and neg.status == "ended" and neg.want_id:
            self._reshop(principal, neg.want_id)

    def _wake_declined(self, principal: Principal) -> None:
        if not self.open:
            return
        fulfilled = self._fulfilled(principal)
        wants: set[str] = set()
        for neg in self._negs(principal):
            untried = neg.status == "ended" and neg.end_reason in shop.REVIVABLE and neg.role == "buyer"
            if untried and neg.want_id and neg.want_id not in fulfilled and neg.attempts < shop.MAX_REOPENS:
                neg.status, neg.end_reason, neg.retry_at, neg.reserved_cents = "opening", None, None, 0
                neg.attempts += 1
                wants.add(neg.want_id)
        for want_id in sorted(wants):
            self._reshop(principal, want_id)

    def _fulfilled(self, principal: Principal) -> set[str]:
        return {
            d["want_id"]
            for d in self.deals_of.get(principal.principal_id, ())
            if d["role"] == "buyer" and d["want_id"] and d["status"] not in ("failed", "refunded")
        }

    def _end(self, neg: Negotiation, reason: str) -> None:
        neg.status, neg.end_reason, neg.reserved_cents, neg.retry_at = "ended", reason, 0, None

    # turns (`app.run_due_turn`, `turns`)

    def _due_at(self, neg: Negotiation, when: datetime) -> None:
        neg.retry_at = when
        self.clock.at(when, lambda: self._run_due_turn(neg.neg_id))

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
        if known is not None:
            return known[0]  # type: ignore[no-any-return]
        item_id = neg.item_id or common.item_id_of(principal.principal_id, neg.listing_id)
        if neg.role == "seller" and item_id:
            return principal.mandate.item(item_id).to_listing(
                neg.listing_id, principal.agent_id, principal.principal_id
            )
        return None

    async def _take_turn(self, principal: Principal, neg: Negotiation) -> None:
        prepared = self._prepare(principal, neg)
        if prepared is not None:
            view, limits = prepared
            decision = await next_move(self.brains[principal.principal_id], view, limits, limiter=None)
            reasons = [refusal.reason.value for refusal in decision.refusals]
            self.guard_refusals.update(reasons)
            command = turns._command(neg, view, decision.move)
            if command is None:
                if isinstance(decision.move, Walk) and neg.thread_id is None:
                    self._end(neg, "declined_to_open")
            else:
                neg.retry_at = None
                self._send(principal, command, NEGOTIATION_COMMANDS.name)
        self._after_turn(principal, neg)

    def _prepare(
        self, principal: Principal, neg: Negotiation
    ) -> tuple[NegotiationView, MandateLimits] | None:
        facts = self._facts(principal, neg)
        if facts is None or not neg.live:
            return None
        if (
            neg.role == "buyer"
            and neg.thread_id is None
            and not self._hold_for_opening(principal, neg, facts)
        ):
            return None
        limits = self._limits(principal, neg)
        view = common.view_of(principal, neg, facts, limits)
        opened = next((e["at"] for e in neg.events if e["type"] == "ThreadOpened"), None)
        if opened is not None and view.deadline is not None:
            fraction = time_fraction(datetime.fromisoformat(opened), view.deadline, self.clock.now)
            view = replace(view, time_fraction=fraction)
        return (view, limits) if view.my_turn else None

    def _hold_for_opening(self, principal: Principal, neg: Negotiation, facts: ListingFacts) -> bool:
        free = self._free_budget(principal, neg)
        cap = common.thread_cap(principal, neg, facts, free)
        could = common.thread_cap(principal, neg, facts, principal.mandate.budget_cents)
        cheapest = min((option.cost_cents for option in facts.shipping), default=0)
        worth = shopping.worth_opening(cap, could, facts.price_cents, cheapest)
        if not worth or str(neg.want_id) not in self._funded_wants(principal):
            self._end(neg, "declined_to_open")
            return False
        neg.reserved_cents = cap
        return True

    def _funded_wants(self, principal: Principal) -> set[str]:
        best: dict[str, tuple[int, int, bool]] = {}
        for neg in self._live_buyer_negs(principal):
            asking, cheapest = self._asking(neg)
            want_id = str(neg.want_id)
            holding = neg.reserved_cents > 0 or (want_id in best and best[want_id][2])
            if want_id not in best or asking < best[want_id][0]:
                best[want_id] = (asking, cheapest, holding)
            else:
                best[want_id] = (*best[want_id][:2], holding)
        plans = [
            shopping.WantPlan(
                want_id,
                principal.buying_cap(want_id),
                shopping.hold_for(principal.buying_cap(want_id), asking, cheapest, 10**12),
                holding,
            )
            for want_id, (asking, cheapest, holding) in sorted(best.items())
        ]
        return shopping.funded(plans, principal.mandate.budget_cents - principal.committed_cents)

    def _free_budget(self, principal: Principal, neg: Negotiation) -> int:
        held = sum(n.reserved_cents for n in self._live_buyer_negs(principal) if n.neg_id != neg.neg_id)
        return max(0, principal.mandate.budget_cents - principal.committed_cents - held)

    def _limits(self, principal: Principal, neg: Negotiation) -> MandateLimits:
        mandate = principal.mandate
        secrets: dict[str, int | None] = {
            "budget_cents": mandate.budget_cents,
            "auto_approve_cents": mandate.auto_approve_limit_cents,
            "tokens_left": None,
        }
        if neg.role == "seller":
            item_id = neg.item_id or common.item_id_of(principal.principal_id, neg.listing_id)
            return MandateLimits.for_seller(mandate.item(str(item_id)).floor_cents, **secrets)
        want = mandate.want(str(neg.want_id))
        free = self._free_budget(principal, neg)
        usable = min(free, neg.reserved_cents) if neg.reserved_cents else free
        return MandateLimits.for_buyer(principal.buying_cap(want.id), usable, want.min_condition, **secrets)

    def _send(self, principal: Principal, command: Message, topic: str) -> None:
        self.bus.publish(topic, command, producer=PRODUCER, agent_id=principal.agent_id)

    # the inbox

    async def _on_inbox(self, env: Envelope, event: Message) -> None:
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

    def _locate(self, principal: Principal, event: Message) -> Negotiation | None:
        listing_id, thread_id = str(getattr(event, "listing_id", "")), getattr(event, "thread_id", None)
        seller_side = getattr(event, "seller_agent_id", None) == principal.agent_id or (
            common.item_id_of(principal.principal_id, listing_id) is not None
        )
        if not seller_side:
            return self.negs.get(buyer_neg_id(principal.principal_id, listing_id))
        neg_id = seller_neg_id(principal.principal_id, str(thread_id))
        found = self.negs.get(neg_id)
        if found is None and isinstance(event, ThreadOpened):
            item_id = common.item_id_of(principal.principal_id, listing_id)
            found = Negotiation(
                neg_id, principal.principal_id, listing_id, "seller", item_id=item_id, thread_id=thread_id
            )
            self._add(found)
        return found

    async def _on_thread_event(
        self, principal: Principal, env: Envelope, event: ThreadOpened | OfferMade | NegotiationEnded
    ) -> None:
        neg = self._locate(principal, event)
        if neg is None:
            return
        neg.events.append(
            {"type": event.type, "payload": event.model_dump(mode="json"), "at": env.occurred_at.isoformat()}
        )
        if isinstance(event, ThreadOpened):
            neg.thread_id, neg.status, neg.retry_at = event.thread_id, "open", None
        if isinstance(event, NegotiationEnded):
            neg.status = "deal" if event.reason is EndReason.DEAL else "ended"
            neg.end_reason = event.reason.value
            if event.reason is not EndReason.DEAL:
                neg.reserved_cents = 0
        if isinstance(event, OfferMade) and event.agent_id != principal.agent_id and neg.live:
            await self._take_turn(principal, neg)
        if isinstance(event, NegotiationEnded) and neg.role == "buyer" and neg.status == "ended":
            self._wake_declined(principal)
            if neg.want_id:
                self._reshop(principal, neg.want_id)

    def _on_deal_agreed(self, principal: Principal, event: DealAgreed) -> None:
        neg = self._locate(principal, event)
        if neg is None:
            return
        buyer = principal.agent_id == event.buyer_agent_id
        key = (event.deal_id, principal.principal_id)
        if key in self.deals:
            return
        amount = event.buyer_total_cents if buyer else event.price_cents
        self.deals[key] = {
            "role": neg.role,
            "listing_id": neg.listing_id,
            "want_id": neg.want_id,
            "amount_cents": amount,
            "shipping_method": event.shipping_method.value,
            "status": "agreed",
        }
        self.deals_of.setdefault(principal.principal_id, []).append(self.deals[key])
        neg.status, neg.reserved_cents = "deal", 0
        if buyer:
            principal.committed_cents += amount
            self._drop_other_threads_for(principal, neg)
            self._wake_declined(principal)

    def _drop_other_threads_for(self, principal: Principal, won: Negotiation) -> None:
        for other in self._live_buyer_negs(principal, won.want_id):
            if other.neg_id == won.neg_id:
                continue
            other.reserved_cents = 0
            if other.thread_id is not None:
                withdraw = WithdrawNegotiation(listing_id=other.listing_id, thread_id=other.thread_id)
                self._send(principal, withdraw, NEGOTIATION_COMMANDS.name)
            else:
                self._end(other, "want_fulfilled")

    def _on_refused(self, principal: Principal, event: ActionRefused) -> None:
        if event.command_type != "OpenNegotiation":
            return
        neg = self.negs.get(buyer_neg_id(principal.principal_id, event.listing_id))
        if neg is None or neg.status != "opening":
            return
        if event.reason.value in turns.RETRYABLE_OPEN_REFUSALS and neg.attempts < turns.MAX_OPEN_ATTEMPTS:
            neg.attempts += 1
            self._due_at(neg, self.clock.now + timedelta(seconds=0.2 * 2**neg.attempts))
        else:
            self._end(neg, event.reason.value)
        self._after_turn(principal, neg)

    # after the handshake (`settle`)

    def _on_settlement(self, principal: Principal, event: Message) -> None:
        if isinstance(event, EscrowFunded):
            self._on_escrow_funded(principal, event)
        elif isinstance(event, ShipmentDelivered):
            self._on_delivered(principal, event)
        elif isinstance(event, DisputeResolved):
            self._on_dispute_resolved(principal, event)
        elif isinstance(event, EscrowFailed):
            deal = self.deals.get((event.deal_id, principal.principal_id))
            if deal and deal["role"] == "buyer" and purchases.consent_refused(event.reason):  # type: ignore[arg-type]
                principal.refused_listings |= {deal["listing_id"]}
                if deal["want_id"]:
                    principal.refused_wants |= {deal["want_id"]}
            self._close_deal(principal, event.deal_id, "failed")
        elif isinstance(event, Refunded):
            self._close_deal(principal, event.deal_id, "refunded")
        elif isinstance(event, FundsReleased):
            self._close_deal(principal, event.deal_id, "settled")

    def _true_condition(self, principal: Principal, listing_id: str) -> Any:
        item_id = common.item_id_of(principal.principal_id, listing_id)
        if item_id is None:
            return None
        item = principal.mandate.item(item_id)
        return item.true_condition or item.condition

    def _on_escrow_funded(self, principal: Principal, event: EscrowFunded) -> None:
        seller = principal.principal_id == event.seller_principal_id
        pickup = event.shipping_method is ShippingMethod.LOCAL_PICKUP
        cmd: Message
        if seller:
            packed = self._true_condition(principal, event.listing_id) or "good"
            cmd = (
                ConfirmHandover(deal_id=event.deal_id, condition=packed)
                if pickup
                else ShipItem(deal_id=event.deal_id, packed_condition=packed)
            )
        elif pickup:
            cmd = ConfirmHandover(deal_id=event.deal_id)
        else:
            return
        self._send(principal, cmd, SETTLEMENT_COMMANDS.name)

    def _on_delivered(self, principal: Principal, event: ShipmentDelivered) -> None:
        if event.leg is not ShipmentLeg.FORWARD or event.delivered_condition is None:
            return
        known = self.listings.get(event.listing_id)
        if known is None or common.item_id_of(principal.principal_id, event.listing_id) is not None:
            return
        listed = known[0].condition
        cmd: Message
        if event.delivered_condition.at_least(listed):
            cmd = AcceptGoods(deal_id=event.deal_id)
        else:
            cmd = OpenDispute(
                deal_id=event.deal_id,
                reason=DisputeReason.CONDITION_WORSE,
                detail=f"listed as {listed.value}, arrived {event.delivered_condition.value}",
            )
        self._send(principal, cmd, SETTLEMENT_COMMANDS.name)

    def _on_dispute_resolved(self, principal: Principal, event: DisputeResolved) -> None:
        deal = self.deals.get((event.deal_id, principal.principal_id))
        if deal is None or deal["role"] != "seller":
            return
        pickup = deal["shipping_method"] == ShippingMethod.LOCAL_PICKUP.value
        if event.outcome is DisputeOutcome.REFUND_AFTER_RETURN and pickup:
            condition = self._true_condition(principal, deal["listing_id"])
            self._send(
                principal,
                ConfirmHandover(deal_id=event.deal_id, condition=condition),
                SETTLEMENT_COMMANDS.name,
            )

    def _close_deal(self, principal: Principal, deal_id: str, status: str) -> None:
        deal = self.deals.get((deal_id, principal.principal_id))
        if deal is None or deal["status"] in ("failed", "refunded", "settled"):
            return
        deal["status"] = status
        if deal["role"] == "buyer" and status in ("failed", "refunded"):
            principal.committed_cents = max(0, principal.committed_cents - int(deal["amount_cents"]))
            self._wake_declined(principal)
