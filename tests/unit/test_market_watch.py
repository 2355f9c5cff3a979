"""haggle.market.runner.Watch: how far a market got, counted by id, not by envelope."""

from __future__ import annotations

from typing import Any, cast

from haggle.client import Observer, Publisher
from haggle.contracts import Envelope, wrap
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.envelope import Message
from haggle.contracts.listing import ListingCommandRefused, ListingPublished, ListingRefusal
from haggle.market.approvals import ApprovalPolicy
from haggle.market.runner import MarketStatus, Watch
from haggle_lab.testing.goods import sample_commands

MARKET = "m-watch"
KEY = "0" * 43


class Seen:
    """What an `Observer` has read so far: `Watch` reads only this."""

    def __init__(self, messages: list[Message]) -> None:
        self.seen: list[tuple[str, Envelope]] = [
            ("t", wrap(m, market_id=MARKET, producer="t")) for m in messages
        ]


def published(index: int) -> ListingPublished:
    cmd = sample_commands(index + 1, MARKET)[index]
    return ListingPublished.model_validate({**cmd.model_dump(), "type": "ListingPublished"})


def refused(listing_id: str, command_type: str) -> ListingCommandRefused:
    return ListingCommandRefused(
        listing_id=listing_id,
        command_type=command_type,
        command_event_id="e1",
        reason=ListingRefusal.UNKNOWN_AGENT,
        detail="not registered yet",
    )


def registered(agent: str) -> AgentRegistered:
    return AgentRegistered(
        agent_id=agent, principal_id=agent.removesuffix(".agent"), role=Role.BOTH, public_key=KEY
    )


async def test_redelivered_and_retried_listings_and_agents_count_once() -> None:
    first, second, third = published(0), published(1), published(2)
    messages: list[Message] = [
        registered("p1.agent"),
        registered("p1.agent"),  # the relay sent it again after a kill
        registered("p2.agent"),
        first,
        first,  # delivered twice
        refused(second.listing_id, "CreateListing"),  # the listing service had not read p2 yet
        second,  # created again when due
        refused(third.listing_id, "UpdateListingPrice"),  # not a listing coming in
    ]
    status = MarketStatus(MARKET, "mixed", principals=2, listings_expected=3)
    watch = Watch(
        cast(Observer, Seen(messages)), cast(Publisher, None), status, ApprovalPolicy.parse("grant-all")
    )
    await watch.step()
    assert (status.registered, status.listings) == (2, 2)


async def test_a_listing_refused_at_creation_and_never_published_is_in() -> None:
    messages: list[Any] = [refused("p1.item-9", "CreateListing")]
    status = MarketStatus(MARKET, "mixed", principals=1, listings_expected=1)
    await Watch(
        cast(Observer, Seen(messages)), cast(Publisher, None), status, ApprovalPolicy.parse("grant-all")
    ).step()
    assert status.listings == 1
