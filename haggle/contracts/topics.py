"""The topic registry: every topic, what keys it, how many partitions, what travels on it.

`haggle topics ensure`, the local infrastructure, the tests and the deploy
job all create topics from this one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from haggle.contracts.agents import AGENT_EVENTS as AGENT_EVENT_TYPES
from haggle.contracts.approval import APPROVAL_EVENTS as APPROVAL_EVENT_TYPES
from haggle.contracts.approval import ApprovalRequested
from haggle.contracts.decisions import AGENT_DECISIONS as AGENT_DECISION_TYPES
from haggle.contracts.envelope import Message
from haggle.contracts.listing import LISTING_COMMANDS, LISTING_EVENTS
from haggle.contracts.mandate import MANDATE_COMMANDS as MANDATE_COMMAND_TYPES
from haggle.contracts.market import MARKET_EVENTS as MARKET_EVENT_TYPES
from haggle.contracts.negotiation import (
    INBOX_EVENTS,
    NEGOTIATION_EVENTS,
)
from haggle.contracts.negotiation import (
    NEGOTIATION_COMMANDS as NEGOTIATION_COMMAND_TYPES,
)
from haggle.contracts.settlement import SETTLEMENT_COMMANDS as SETTLEMENT_COMMAND_TYPES
from haggle.contracts.settlement import SETTLEMENT_EVENTS, SETTLEMENT_INBOX_EVENTS

DEFAULT_PARTITIONS = 12
DLQ_PARTITIONS = 3
RETENTION = ("retention.ms", str(7 * 24 * 3600 * 1000))
BROKER_TIME = ("message.timestamp.type", "LogAppendTime")
"""A command is judged by when it reached the broker: the broker stamps each record with its own
clock on append, so a sender cannot date a late command inside a deadline (its `occurred_at` and
the producer's timestamp are ignored). Consumers read it as `record.timestamp`."""


COMMAND_CONFIG = (RETENTION, BROKER_TIME)


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    partitions: int = DEFAULT_PARTITIONS
    messages: tuple[type[Message], ...] = field(default=())
    config: tuple[tuple[str, str], ...] = (RETENTION,)

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


MARKET_EVENTS = Topic("market.events", key="market_id", partitions=3, messages=MARKET_EVENT_TYPES)
MANDATE_COMMANDS = Topic(
    "mandate.commands", key="principal_id", messages=MANDATE_COMMAND_TYPES, config=COMMAND_CONFIG
)
AGENT_EVENTS = Topic("agent.events", key="agent_id", messages=AGENT_EVENT_TYPES)
LISTING_COMMANDS_TOPIC = Topic(
    "listing.commands", key="listing_id", messages=LISTING_COMMANDS, config=COMMAND_CONFIG
)
LISTING_EVENTS_TOPIC = Topic("listing.events", key="listing_id", messages=LISTING_EVENTS)
NEGOTIATION_COMMANDS = Topic(
    "negotiation.commands", key="listing_id", messages=NEGOTIATION_COMMAND_TYPES, config=COMMAND_CONFIG
)
NEGOTIATION_EVENTS_TOPIC = Topic("negotiation.events", key="listing_id", messages=NEGOTIATION_EVENTS)
AGENT_INBOX = Topic(
    "agent.inbox",
    key="agent_id",
    messages=(*INBOX_EVENTS, *SETTLEMENT_INBOX_EVENTS, ApprovalRequested),
)
SETTLEMENT_COMMANDS = Topic(
    "settlement.commands", key="deal_id", messages=SETTLEMENT_COMMAND_TYPES, config=COMMAND_CONFIG
)
SETTLEMENT_EVENTS_TOPIC = Topic("settlement.events", key="deal_id", messages=SETTLEMENT_EVENTS)
APPROVAL_EVENTS = Topic("approval.events", key="principal_id", messages=APPROVAL_EVENT_TYPES)
AGENT_DECISIONS = Topic("agent.decisions", key="agent_id", messages=AGENT_DECISION_TYPES)

TOPICS: tuple[Topic, ...] = (
    MARKET_EVENTS,
    MANDATE_COMMANDS,
    AGENT_EVENTS,
    LISTING_COMMANDS_TOPIC,
    LISTING_EVENTS_TOPIC,
    NEGOTIATION_COMMANDS,
    NEGOTIATION_EVENTS_TOPIC,
    AGENT_INBOX,
    SETTLEMENT_COMMANDS,
    SETTLEMENT_EVENTS_TOPIC,
    APPROVAL_EVENTS,
    AGENT_DECISIONS,
)


def all_topic_partitions() -> dict[str, int]:
    """Every topic and its DLQ with the partition count to create it with."""
    result: dict[str, int] = {}
    for topic in TOPICS:
        result[topic.name] = topic.partitions
        result[topic.dlq] = DLQ_PARTITIONS
    return result


def durability(replication: int) -> dict[str, str]:
    """With three or more replicas a write is acknowledged once two hold it (acks=all), so one
    broker may die without losing an acknowledged event and the topic still takes writes."""
    return {"min.insync.replicas": "2"} if replication >= 3 else {}


def topic_configs(replication: int = 1) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for topic in TOPICS:
        result[topic.name] = dict(topic.config) | durability(replication)
        result[topic.dlq] = dict(topic.config) | durability(replication)
    return result
