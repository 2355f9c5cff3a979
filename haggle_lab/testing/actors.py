"""Scripted actors for tests, benchmarks and the red-team suite: they sign like real agents.

A `ScriptedAgent` owns a key, registers itself on agent.events and sends
signed commands with a monotonic seq, with no brain and no guard: exactly
what a hostile or buggy client can do on the wire.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from haggle.client import Publisher
from haggle.contracts import AgentKey, Envelope, Message, signed
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.topics import AGENT_EVENTS, NEGOTIATION_COMMANDS


@dataclass
class ScriptedAgent:
    agent_id: str
    principal_id: str
    role: Role
    market_id: str
    owner_id: str | None = None
    key: AgentKey = field(default_factory=AgentKey.generate)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def registration(self) -> Envelope:
        event = AgentRegistered(
            agent_id=self.agent_id,
            principal_id=self.principal_id,
            owner_id=self.owner_id,
            role=self.role,
            public_key=self.key.public,
        )
        return self.sign(event)

    def sign(self, payload: Message, seq: int | None = None) -> Envelope:
        return signed(
            payload,
            key=self.key,
            agent_id=self.agent_id,
            seq=seq if seq is not None else next(self._seq),
            market_id=self.market_id,
            producer=f"agent:{self.agent_id}",
        )

    async def register(self, pub: Publisher) -> None:
        await pub.send(AGENT_EVENTS.name, self.agent_id, self.registration())

    async def send(
        self, pub: Publisher, payload: Message, topic: str = NEGOTIATION_COMMANDS.name
    ) -> Envelope:
        env = self.sign(payload)
        key = str(getattr(payload, "listing_id", None) or getattr(payload, "deal_id", self.agent_id))
        await pub.send(topic, key, env)
        return env
