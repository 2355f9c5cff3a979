"""settlement.commands: the parties' signed moves and the operator's decisions.

Agent commands are authenticated against the agents this service learned
from agent.events (signature and per-deal monotonic seq), then checked
against the deal: the acting agent must be its seller or its buyer, in the
role the move needs. Operator commands carry no agent signature; see the
service's README for how they are trusted (an operator key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from haggle.contracts import Envelope, InvalidPayload, wrap
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import Party
from haggle.contracts.settlement import (
    AcceptGoods,
    ConfirmHandover,
    FundWallet,
    OpenDispute,
    ResolveDispute,
    SetShipTo,
    SettlementRefusal,
    ShipItem,
    WalletFunded,
)
from haggle.contracts.topics import SETTLEMENT_EVENTS_TOPIC
from haggle.contracts.types import MAX_PRICE_CENTS
from haggle.runtime import identity, operators
from haggle.runtime.consumer import appended_at
from haggle.runtime.outbox import UnitOfWork
from services.settlement import ledger_store, store
from services.settlement.domain import fulfilment
from services.settlement.domain.deal import (
    Deal,
    LedgerRefused,
    Outcome,
    Refusal,
    funding,
)
from services.settlement.domain.ledger import TransferResult
from services.settlement.handlers import ship_to
from services.settlement.handlers.outcomes import PRODUCER, finish, printable, refuse, utcnow

Decision = Callable[[Deal, Party, MarketRulesSet, datetime], Awaitable[Outcome]]


async def _agent_command(
    uow: UnitOfWork, env: Envelope, deal_id: str, decide: Decision, for_buyer: bool = False
) -> None:
    """Authenticate, find the deal and the agent's part in it, then let the domain decide.

    With `for_buyer`, an operator-signed command acts as the deal's buyer: a person's own
    request through the web app, which holds no agent key.
    """
    as_buyer = for_buyer and operators.is_operator(env)
    agent = None if as_buyer else await identity.authenticate(uow, env, scope=deal_id)
    if isinstance(agent, identity.AuthFailure):
        await refuse(uow, env, deal_id, Refusal(SettlementRefusal(agent.value), f"{agent.value}"))
        return
    deal = await store.load_deal(uow.conn, deal_id)
    if deal is None or deal.market_id != env.market_id:
        await refuse(uow, env, deal_id, Refusal(SettlementRefusal.UNKNOWN_DEAL, f"no deal {deal_id}"))
        return
    party = Party.BUYER if agent is None else deal.party_of(agent.agent_id)
    if party is None:
        refusal = Refusal(SettlementRefusal.NOT_A_PARTY, f"{env.agent_id} is not a party to {deal_id}")
        await refuse(uow, env, deal_id, refusal)
        return
    now = utcnow()
    rules = await store.rules(uow.conn, deal.market_id)
    outcome = await decide(deal, party, rules, now)
    await finish(uow, env, outcome, rules, now)


async def ship_item(uow: UnitOfWork, env: Envelope, cmd: ShipItem) -> None:
    async def decide(deal: Deal, party: Party, rules: MarketRulesSet, now: datetime) -> Outcome:
        return fulfilment.ship(deal, party, cmd.packed_condition)

    await _agent_command(uow, env, cmd.deal_id, decide)


async def confirm_handover(uow: UnitOfWork, env: Envelope, cmd: ConfirmHandover) -> None:
    async def decide(deal: Deal, party: Party, rules: MarketRulesSet, now: datetime) -> Outcome:
        return fulfilment.confirm_handover(deal, party, cmd.condition, rules, now)

    await _agent_command(uow, env, cmd.deal_id, decide)


async def accept_goods(uow: UnitOfWork, env: Envelope, cmd: AcceptGoods) -> None:
    async def decide(deal: Deal, party: Party, rules: MarketRulesSet, now: datetime) -> Outcome:
        return fulfilment.accept_goods(deal, party)

    await _agent_command(uow, env, cmd.deal_id, decide, for_buyer=True)


async def open_dispute(uow: UnitOfWork, env: Envelope, cmd: OpenDispute) -> None:
    async def decide(deal: Deal, party: Party, rules: MarketRulesSet, now: datetime) -> Outcome:
        listed = await store.listing_condition(uow.conn, deal.listing_id, deal.market_id)
        detail = printable(cmd.detail, 2_000)
        sent_at = appended_at() or now  # the broker's time, never the sender's `occurred_at`
        return fulfilment.open_dispute(deal, party, cmd.reason, detail, listed, rules, now, sent_at)

    await _agent_command(uow, env, cmd.deal_id, decide, for_buyer=True)


def _not_operator(env: Envelope) -> Refusal | None:
    if operators.is_operator(env):
        return None
    return Refusal(SettlementRefusal.NOT_OPERATOR, f"{env.type} needs an operator's signature")


async def resolve_dispute(uow: UnitOfWork, env: Envelope, cmd: ResolveDispute) -> None:
    """Operator: a human's decision. Nothing but the deal's state limits it."""
    if refusal := _not_operator(env):
        await refuse(uow, env, cmd.deal_id, refusal)
        return
    deal = await store.load_deal(uow.conn, cmd.deal_id)
    if deal is None or deal.market_id != env.market_id:
        await refuse(uow, env, cmd.deal_id, Refusal(SettlementRefusal.UNKNOWN_DEAL, f"no deal {cmd.deal_id}"))
        return
    now = utcnow()
    rules = await store.rules(uow.conn, deal.market_id)
    by, note = printable(cmd.resolved_by, 128), printable(cmd.note, 2_000)
    outcome = fulfilment.resolve(deal, cmd.outcome, rules, now, resolved_by=by, note=note)
    await finish(uow, env, outcome, rules, now)


async def set_ship_to(uow: UnitOfWork, env: Envelope, cmd: SetShipTo) -> None:
    """Operator (the web app, for the buyer): where the parcel goes, sealed; labels a booked parcel."""
    if refusal := _not_operator(env):
        await refuse(uow, env, cmd.deal_id, refusal)
        return
    await ship_to.keep(uow, env.market_id, cmd)
    deal = await store.load_deal(uow.conn, cmd.deal_id)
    if deal is not None and deal.market_id == env.market_id:
        await ship_to.label_booked(uow, deal, await store.rules(uow.conn, deal.market_id))


async def fund_wallet(uow: UnitOfWork, env: Envelope, cmd: FundWallet) -> None:
    """Operator: money in from outside. The funding id makes a replay a no-op and a reuse a refusal."""
    if refusal := _not_operator(env) or _funding_refusal(cmd):
        await _refuse_funding(uow, env, cmd, refusal)
        return
    market = env.market_id
    accounts, request = funding(market, cmd.principal_id, cmd.funding_id, cmd.amount_cents)
    await ledger_store.open_accounts(uow.conn, market, accounts)
    result = await ledger_store.transfer(uow.conn, market, request)
    transfer_id, wallet = request.id, request.credit_account_id
    if result is TransferResult.EXISTS:
        return
    if result is TransferResult.EXISTS_WITH_DIFFERENT_FIELDS:
        detail = f"funding id {cmd.funding_id} was used for another transfer"
        await _refuse_funding(uow, env, cmd, Refusal(SettlementRefusal.TRANSFER_ID_CONFLICT, detail))
        return
    if result is not TransferResult.OK:
        raise LedgerRefused(f"{transfer_id}: {result}")
    await ledger_store.set_wallet(uow.conn, market, cmd.principal_id, wallet, cmd.auto_approve_limit_cents)
    funded = WalletFunded(**cmd.model_dump(exclude={"type"}), transfer_id=transfer_id)
    out = wrap(funded, market_id=market, producer=PRODUCER, causation_id=str(env.event_id))
    uow.emit(SETTLEMENT_EVENTS_TOPIC.name, cmd.principal_id, out)


def _funding_refusal(cmd: FundWallet) -> Refusal | None:
    amount, limit = cmd.amount_cents, cmd.auto_approve_limit_cents
    if 0 < amount <= MAX_PRICE_CENTS and 0 <= limit <= MAX_PRICE_CENTS:
        return None
    return Refusal(SettlementRefusal.INVALID_AMOUNT, f"amount {amount}, limit {limit} cents")


async def _refuse_funding(uow: UnitOfWork, env: Envelope, cmd: FundWallet, refusal: Refusal) -> None:
    await refuse(uow, env, "", refusal, key=cmd.principal_id)


async def refuse_invalid(uow: UnitOfWork, exc: InvalidPayload) -> None:
    """A sound envelope whose payload breaks the contract: refused to its sender, never dropped."""
    raw = exc.envelope.payload.get("deal_id")
    deal_id = raw if isinstance(raw, str) else ""
    await refuse(uow, exc.envelope, deal_id, Refusal(SettlementRefusal.INVALID_PAYLOAD, str(exc)))
