"""An agent's own listings: when to create one again after the listing service refused it. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from haggle.contracts.listing import ListingCommandRefused, ListingRefusal

MAX_LISTING_RETRIES = 10


def worth_retrying(event: ListingCommandRefused) -> bool:
    """The listing service may read agent.events behind the referee: a new agent's first listing
    can be refused as `unknown_agent`, and is created again once the service knows it."""
    return event.reason is ListingRefusal.UNKNOWN_AGENT and event.command_type == "CreateListing"


def retry_due(attempts: int, now: datetime) -> datetime | None:
    """When to create a refused listing again after `attempts` earlier retries; None: give up."""
    if attempts >= MAX_LISTING_RETRIES:
        return None
    return now + timedelta(seconds=min(1.0, 0.1 * 2**attempts))
