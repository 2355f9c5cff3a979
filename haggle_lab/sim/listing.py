"""The listing service in process: `services.listing.domain` over listings held in memory."""

from __future__ import annotations

from collections.abc import Sequence

from haggle.contracts import Message
from haggle.contracts.listing import CreateListing, ListingCommandRefused
from haggle.contracts.negotiation import DealAgreed
from haggle.contracts.settlement import EscrowFailed, FundsReleased, Refunded
from haggle.contracts.topics import (
    LISTING_COMMANDS_TOPIC,
    LISTING_EVENTS_TOPIC,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_EVENTS_TOPIC,
)
from haggle_lab.sim.bus import Bus, Delivery
from services.listing import domain
from services.listing.domain import Listing

PRODUCER = "listing"


class Listings:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.listings: dict[str, Listing] = {}
        bus.subscribe(LISTING_COMMANDS_TOPIC.name, self._on_command)
        bus.subscribe(NEGOTIATION_EVENTS_TOPIC.name, self._on_deal)
        bus.subscribe(SETTLEMENT_EVENTS_TOPIC.name, self._on_settled)

    def _on_command(self, env: Delivery, cmd: Message) -> None:
        if not isinstance(cmd, CreateListing):
            return
        listing, events, refusal = domain.create(self.listings.get(cmd.listing_id), cmd)
        if refusal is not None:
            refused = ListingCommandRefused(
                listing_id=cmd.listing_id,
                command_type=cmd.type,
                command_event_id=str(env.event_id),
                reason=refusal.reason,
                detail=refusal.detail[:1000],
            )
            self.bus.publish(LISTING_EVENTS_TOPIC.name, refused, producer=PRODUCER)
            return
        self._commit(listing, events)

    def _commit(self, listing: Listing | None, events: Sequence[Message]) -> None:
        if listing is not None:
            self.listings[listing.listing_id] = listing
        for event in events:
            self.bus.publish(LISTING_EVENTS_TOPIC.name, event, producer=PRODUCER)

    def _on_deal(self, env: Delivery, event: Message) -> None:
        if isinstance(event, DealAgreed):
            self._commit(*domain.reserve(self.listings.get(event.listing_id), event.deal_id))

    def _on_settled(self, env: Delivery, event: Message) -> None:
        if isinstance(event, FundsReleased):
            self._commit(*domain.sell(self.listings.get(event.listing_id), event.deal_id))
        elif isinstance(event, EscrowFailed):
            self._commit(*domain.relist(self.listings.get(event.listing_id), event.deal_id, event.reason))
        elif isinstance(event, Refunded):
            current = self.listings.get(event.listing_id)
            self._commit(*domain.close_after_refund(current, event.deal_id, event.reason))
