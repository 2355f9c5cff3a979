"""Matchers for waiting on the events a test expects (the `Observer` lives in `haggle.client`)."""

from __future__ import annotations

from haggle.client import Match, Observer
from haggle.contracts import Envelope

__all__ = ["Match", "Observer", "of_type", "to_agent"]


def of_type(type_name: str, **fields: object) -> Match:
    def match(env: Envelope) -> bool:
        return env.type == type_name and all(env.payload.get(k) == v for k, v in fields.items())

    return match


def to_agent(agent_id: str, type_name: str, **fields: object) -> Match:
    inner = of_type(type_name, **fields)
    return lambda env: env.agent_id == agent_id and inner(env)
