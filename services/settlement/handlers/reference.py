"""Facts settlement keeps from other services' events: market rules, listed conditions, agent keys."""

from __future__ import annotations

import logging

from haggle.contracts import Envelope
from haggle.contracts.agents import AgentRegistered, AgentRetired
from haggle.contracts.listing import ListingPublished
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.runtime import identity, markets
from haggle.runtime.outbox import UnitOfWork
from services.settlement import store

log = logging.getLogger(__name__)


async def on_market_event(
    uow: UnitOfWork, env: Envelope, event: MarketRulesSet | MarketClosing | MarketClosed
) -> None:
    """Only the operator sets a market's rules (a forged rule could set the fee or the carrier)
    or closes it; settlement calls a market closed only when every deal in it is final."""
    await markets.apply(uow, env, event, "settlement", unfinished=store.unfinished)


async def on_listing_published(uow: UnitOfWork, env: Envelope, event: ListingPublished) -> None:
    """The listed condition: what a 'condition worse than listed' dispute is judged against."""
    await store.save_listing_condition(uow.conn, event.listing_id, env.market_id, event.condition)


async def on_agent_registered(uow: UnitOfWork, env: Envelope, event: AgentRegistered) -> None:
    outcome = await identity.register(uow.conn, env, event)
    if outcome is not identity.RegistrationOutcome.REGISTERED:
        log.info("registration not applied", extra={"agent_id": event.agent_id, "outcome": outcome})


async def on_agent_retired(uow: UnitOfWork, env: Envelope, event: AgentRetired) -> None:
    await identity.retire(uow.conn, env, event.agent_id)
