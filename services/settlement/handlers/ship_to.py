"""Where a parcel goes: the buyer's address, sealed per deal, opened in memory only to print the label.

The web app sends `SetShipTo` (operator-signed) with the address sealed for the deal under the
shipping key. It is kept sealed. Once the forward shipment is booked (whichever comes second:
the address or the booking), the address is opened, the carrier port prints the label with it,
and the label goes out sealed for the seller (`ShippingLabelSealed`), once. Without the shipping
key settlement keeps the sealed address and prints no label.
"""

from __future__ import annotations

import logging

from haggle.contracts import wrap
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.sealing import NoShippingKey, Sealed, open_sealed, seal, shipping_key
from haggle.contracts.settlement import SetShipTo, ShipmentLeg, ShippingLabelSealed
from haggle.contracts.topics import SETTLEMENT_EVENTS_TOPIC
from haggle.runtime.outbox import UnitOfWork
from services.settlement import store
from services.settlement.carriers import carrier_for
from services.settlement.domain.carrier import Booking
from services.settlement.domain.deal import Deal

log = logging.getLogger(__name__)
PRODUCER = "settlement"


async def keep(uow: UnitOfWork, market_id: str, cmd: SetShipTo) -> None:
    """Keep the sealed address; a newer one replaces it until the label is out."""
    await store.keep_ship_to(uow.conn, market_id, cmd.deal_id, cmd.sealed_address)


async def label_booked(uow: UnitOfWork, deal: Deal, rules: MarketRulesSet) -> None:
    """The forward label with the buyer's address, sealed for the seller; once per deal."""
    if deal.leg is not ShipmentLeg.FORWARD or deal.tracking_id is None or deal.booked_at is None:
        return
    sealed = await store.ship_to_unlabelled(uow.conn, deal.market_id, deal.deal_id)
    if sealed is None:
        return
    try:
        key = shipping_key()
    except NoShippingKey:
        log.warning("no shipping key: the label is not printed", extra={"deal_id": deal.deal_id})
        return
    address = open_sealed(key, Sealed.ADDRESS, deal.deal_id, sealed)
    if address is None:
        log.warning("a ship-to that does not open for this deal", extra={"deal_id": deal.deal_id})
        return
    carrier = carrier_for(rules)
    booking = Booking(deal.carrier or carrier.name, deal.tracking_id, deal.booked_at)
    label = seal(key, Sealed.LABEL, deal.deal_id, await carrier.label(booking, address))
    del address
    await store.label_sent(uow.conn, deal.deal_id)
    event = ShippingLabelSealed(deal_id=deal.deal_id, tracking_id=deal.tracking_id, sealed_label=label)
    envelope = wrap(event, market_id=deal.market_id, producer=PRODUCER, correlation_id=deal.deal_id)
    uow.emit(SETTLEMENT_EVENTS_TOPIC.name, deal.deal_id, envelope)
