"""agent.events: who an agent is, whom it acts for, and the key it signs with.

Registration is self-signed (the envelope is signed with the key being
registered, proving possession) and the first registration of an agent id
binds its key for good: a later registration with another key is refused.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from haggle.contracts.envelope import Message
from haggle.contracts.types import Id


class Role(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"
    BOTH = "both"


class AgentRegistered(Message):
    type: Literal["AgentRegistered"] = "AgentRegistered"
    agent_id: Id
    principal_id: Id
    owner_id: Id | None = Field(default=None, description="who controls the principal, for wash-trade rules")
    role: Role
    public_key: str = Field(min_length=40, max_length=64, description="Ed25519, urlsafe base64")


class AgentRetired(Message):
    type: Literal["AgentRetired"] = "AgentRetired"
    agent_id: Id


AGENT_EVENTS: tuple[type[Message], ...] = (AgentRegistered, AgentRetired)
