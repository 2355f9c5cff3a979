"""The carrier interface and a simulated carrier. Pure: the simulation is arithmetic on a seed.

A carrier books a label for a shipment and reports tracking when asked. The
settlement service polls `track` from its timer job whenever the last answer's
`next_check_at` has passed, so a real carrier's API (book a label, poll
tracking) plugs in behind the same two calls.

The simulated carrier derives everything from (seed, tracking id) and the
booking time: the same shipment gets the same fate after a crash and restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from haggle.contracts.goods import ShippingMethod
from haggle.contracts.settlement import ShipmentLeg


class TrackingStatus(StrEnum):
    LABEL_BOOKED = "label_booked"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    LOST = "lost"


FINAL_TRACKING = (TrackingStatus.DELIVERED, TrackingStatus.LOST)


@dataclass(frozen=True)
class ShipmentRequest:
    deal_id: str
    leg: ShipmentLeg
    method: ShippingMethod
    booked_at: datetime


@dataclass(frozen=True)
class Booking:
    carrier: str
    tracking_id: str
    booked_at: datetime


@dataclass(frozen=True)
class Tracking:
    status: TrackingStatus
    next_check_at: datetime | None
    """When to ask again; None once the status is final."""


class Carrier(Protocol):
    @property
    def name(self) -> str: ...

    async def book(self, request: ShipmentRequest) -> Booking: ...

    async def track(self, booking: Booking, now: datetime) -> Tracking: ...

    async def label(self, booking: Booking, ship_to: str) -> str: ...


@dataclass(frozen=True)
class SimulatedCarrier:
    """Label booked → in transit after `pickup`, then delivered or lost after `transit`."""

    seed: int = 0
    pickup: timedelta = timedelta(days=1)
    transit: timedelta = timedelta(days=2)
    loss_bps: int = 100
    name: str = "simcarrier"

    def __post_init__(self) -> None:
        if not 0 <= self.loss_bps <= 10_000:
            raise ValueError(f"loss_bps {self.loss_bps} outside 0..10000")
        if self.pickup < timedelta(0) or self.transit < timedelta(0):
            raise ValueError("carrier delays must not be negative")

    @staticmethod
    def tracking_id_for(deal_id: str, leg: ShipmentLeg) -> str:
        digest = hashlib.sha256(f"{deal_id}:{leg.value}".encode()).hexdigest()[:16]
        return f"SIM{'R' if leg is ShipmentLeg.RETURN else 'F'}-{digest}"

    def loses(self, tracking_id: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}:{tracking_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % 10_000 < self.loss_bps

    async def book(self, request: ShipmentRequest) -> Booking:
        return self.booking(request)

    def booking(self, request: ShipmentRequest) -> Booking:
        return Booking(self.name, self.tracking_id_for(request.deal_id, request.leg), request.booked_at)

    async def track(self, booking: Booking, now: datetime) -> Tracking:
        return self.status_at(booking, now)

    async def label(self, booking: Booking, ship_to: str) -> str:
        """The printable label of a booked parcel: carrier, tracking id and where it goes."""
        return f"{self.name} {booking.tracking_id}\nSHIP TO:\n{ship_to}"

    def status_at(self, booking: Booking, now: datetime) -> Tracking:
        in_transit_at = booking.booked_at + self.pickup
        ends_at = in_transit_at + self.transit
        if now < in_transit_at:
            return Tracking(TrackingStatus.LABEL_BOOKED, in_transit_at)
        if now < ends_at:
            return Tracking(TrackingStatus.IN_TRANSIT, ends_at)
        final = TrackingStatus.LOST if self.loses(booking.tracking_id) else TrackingStatus.DELIVERED
        return Tracking(final, None)
