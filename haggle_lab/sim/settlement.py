"""Settlement in process: the deal machine (`escrow`, `fulfilment`) and the ledger, in memory.

`Settlement.carry_out` is the service's `handlers.outcomes.carry_out` with the in-memory
`Ledger` for the ledger store and the simulated carrier of `carriers.carrier_for` for the
carrier: it applies an outcome's transfers (each must succeed), feeds the hold's result and the
booking back to the domain, and gathers the events. `save` keeps the deal and wakes its timer at
`due_at`, as the service's timer job does; `fire` is that job's decision for one deal.
"""

from __future__ import annotations

from haggle.contracts import Message
from haggle.contracts.approval import ApprovalDenied, ApprovalExpired, ApprovalGranted, ApprovalRequested
from haggle.contracts.goods import Condition
from haggle.contracts.listing import ListingPublished
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import DealAgreed, Party
from haggle.contracts.settlement import AcceptGoods, ConfirmHandover, OpenDispute, ShipItem
from haggle.contracts.topics import (
    AGENT_INBOX,
    APPROVAL_EVENTS,
    LISTING_EVENTS_TOPIC,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_COMMANDS,
    SETTLEMENT_EVENTS_TOPIC,
)
from haggle_lab.sim.bus import Bus, Delivery
from haggle_lab.sim.clock import Clock
from services.settlement.carriers import carrier_for
from services.settlement.domain import escrow, fulfilment
from services.settlement.domain.carrier import Booking, ShipmentRequest, SimulatedCarrier
from services.settlement.domain.deal import (
    Deal,
    LedgerRefused,
    Outcome,
    deal_accounts,
    funding,
)
from services.settlement.domain.ledger import (
    SUCCESS,
    AccountKind,
    Ledger,
    TransferResult,
    invariant_violations,
)

PRODUCER = "settlement"


class Settlement:
    def __init__(self, clock: Clock, bus: Bus, rules: MarketRulesSet, market_id: str) -> None:
        self.clock, self.bus, self.rules, self.market_id = clock, bus, rules, market_id
        carrier = carrier_for(rules)
        assert isinstance(carrier, SimulatedCarrier), "the engine books with the simulated carrier"
        self.carrier = carrier
        self.ledger = Ledger()
        self.deals: dict[str, Deal] = {}
        self.limits: dict[str, int] = {}
        self.conditions: dict[str, Condition] = {}
        self.refusals: list[tuple[str, str]] = []
        self.outcomes: list[Outcome] = []
        """Every decision carried out, with its follow-ups, in order."""
        bus.subscribe(NEGOTIATION_EVENTS_TOPIC.name, self._on_deal_agreed)
        bus.subscribe(APPROVAL_EVENTS.name, self._on_approval)
        bus.subscribe(SETTLEMENT_COMMANDS.name, self._on_command)
        bus.subscribe(LISTING_EVENTS_TOPIC.name, self._on_listing)

    # the operator's money in, and what the ledger must always show

    def fund(self, principal_id: str, amount_cents: int, auto_approve_limit_cents: int | None = None) -> None:
        accounts, transfer = funding(self.market_id, principal_id, principal_id, amount_cents)
        for account in accounts:
            self.ledger.open(account)
        # A seller with no budget gets a wallet and nothing in it (the ledger refuses empty transfers).
        if amount_cents and self.ledger.apply(transfer) is not TransferResult.OK:
            raise LedgerRefused(f"funding {principal_id}")
        if auto_approve_limit_cents is not None:
            self.limits[principal_id] = auto_approve_limit_cents

    def ledger_problems(self) -> list[str]:
        problems = invariant_violations(self.ledger.accounts.values(), self.ledger.transfers.values())
        open_escrow = [
            a.id for a in self.ledger.accounts.values() if a.kind is AccountKind.ESCROW and a.balance
        ]
        final = all(d.final for d in self.deals.values())
        return problems + ([f"escrow not empty: {x}" for x in open_escrow] if final else [])

    @property
    def deals_open(self) -> int:
        return sum(1 for d in self.deals.values() if not d.final)

    # decisions in, as the handlers take them

    def agree(self, event: DealAgreed, limit: int | None = None) -> Outcome:
        """A deal from the referee: hold the price in escrow, or ask the buyer's human first."""
        if event.deal_id in self.deals:
            return Outcome()
        if limit is None:
            limit = self.limits.get(event.buyer_principal_id)
        return self.run(escrow.agree(event, self.market_id, self.rules, limit, self.clock.now))

    def run(self, outcome: Outcome) -> Outcome:
        """Carry out a decision and save it; returns the outcome with every follow-up's events."""
        if outcome.refusal is not None:
            detail = outcome.refusal.detail
            self.refusals.append((outcome.deal.deal_id if outcome.deal else "", detail))
            return outcome
        deal, total = self.carry_out(outcome)
        if deal is not None:
            self.outcomes.append(total)
            self.save(deal)
            self.publish(deal, total.events)
        return total

    def carry_out(self, outcome: Outcome) -> tuple[Deal | None, Outcome]:
        deal, total, now = outcome.deal, outcome, self.clock.now
        while True:
            deal = outcome.deal or deal
            if deal is None:
                return None, total
            for account in deal_accounts(deal):
                self.ledger.open(account)
            for transfer in outcome.transfers:
                result = self.ledger.apply(transfer)
                if result not in SUCCESS:
                    raise LedgerRefused(f"{transfer.id}: {result}")
            if outcome.hold is not None:
                outcome = escrow.held(deal, self.ledger.apply(outcome.hold), self.rules, now)
            elif outcome.book is not None:
                request = ShipmentRequest(deal.deal_id, outcome.book, deal.shipping_method, now)
                booking = self.carrier.booking(request)
                tracking = self.carrier.status_at(booking, now)
                outcome = fulfilment.booked(deal, outcome.book, booking, tracking, now)
            else:
                return deal, total
            total = total.then(outcome)

    def save(self, deal: Deal) -> None:
        before = self.deals.get(deal.deal_id)
        self.deals[deal.deal_id] = deal
        if deal.due_at is not None and (before is None or before.due_at != deal.due_at):
            self.clock.at(deal.due_at, lambda: self._timer(deal.deal_id))

    def _timer(self, deal_id: str) -> None:
        self.fire(deal_id)

    def fire(self, deal_id: str) -> Outcome:
        """The timer job's decision for a deal that is due (nothing if it is not, or not any more)."""
        deal, now = self.deals[deal_id], self.clock.now
        if deal.due_at is None or deal.due_at > now:
            return Outcome()
        if fulfilment.on_carrier(deal):
            assert deal.carrier and deal.tracking_id and deal.booked_at
            tracking = self.carrier.status_at(Booking(deal.carrier, deal.tracking_id, deal.booked_at), now)
            return self.run(fulfilment.tracked(deal, tracking, self.rules, now))
        return self.run(fulfilment.due(deal))

    def publish(self, deal: Deal, events: tuple[Message, ...] | list[Message]) -> None:
        """Each event on its topic, plus one copy per party who must react, in `agent.inbox`."""
        for event in events:
            if isinstance(event, ApprovalRequested | ApprovalExpired):
                self.bus.publish(APPROVAL_EVENTS.name, event, producer=PRODUCER)
                recipients = [deal.buyer_agent_id] if isinstance(event, ApprovalRequested) else []
            else:
                self.bus.publish(SETTLEMENT_EVENTS_TOPIC.name, event, producer=PRODUCER)
                recipients = [deal.buyer_agent_id, deal.seller_agent_id]
            for agent_id in recipients:
                self.bus.publish(AGENT_INBOX.name, event, producer=PRODUCER, agent_id=agent_id)

    # the bus

    def _on_deal_agreed(self, env: Delivery, event: Message) -> None:
        if isinstance(event, DealAgreed):
            self.agree(event)

    def _on_listing(self, env: Delivery, event: Message) -> None:
        if isinstance(event, ListingPublished):
            self.conditions[event.listing_id] = event.condition

    def _on_approval(self, env: Delivery, event: Message) -> None:
        if not isinstance(event, ApprovalGranted | ApprovalDenied):
            return
        deal = self.deals.get(event.deal_id)
        if deal is None or deal.buyer_principal_id != event.principal_id:
            return
        if isinstance(event, ApprovalGranted):
            outcome = escrow.approval_granted(deal, event.approval_id)
        else:
            outcome = escrow.approval_denied(deal, event.approval_id)
        if outcome.deal is not None:
            self.run(outcome)

    def _on_command(self, env: Delivery, cmd: Message) -> None:
        deal = self.deals.get(str(getattr(cmd, "deal_id", "")))
        party = deal.party_of(str(env.agent_id)) if deal else None
        if deal is None or party is None:
            self.refusals.append((str(getattr(cmd, "deal_id", "")), f"{cmd.type}: not a party"))
            return
        outcome = self._decide(deal, party, cmd)
        if outcome is not None:
            self.run(outcome)

    def _decide(self, deal: Deal, party: Party, cmd: Message) -> Outcome | None:
        """The settlement handler's decision for one party's command (`handlers.commands`)."""
        now = self.clock.now
        if isinstance(cmd, ShipItem):
            return fulfilment.ship(deal, party, cmd.packed_condition)
        if isinstance(cmd, ConfirmHandover):
            return fulfilment.confirm_handover(deal, party, cmd.condition, self.rules, now)
        if isinstance(cmd, AcceptGoods):
            return fulfilment.accept_goods(deal, party)
        if isinstance(cmd, OpenDispute):
            listed = self.conditions.get(deal.listing_id)
            return fulfilment.open_dispute(deal, party, cmd.reason, cmd.detail, listed, self.rules, now, now)
        return None
