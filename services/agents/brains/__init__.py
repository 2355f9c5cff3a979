"""Brains propose moves: literature strategies, Claude, and a compromised brain for red-teaming."""

from __future__ import annotations

from anthropic import AsyncAnthropic

from services.agents.brains.base import Brain, BrainUnavailable
from services.agents.brains.claude import ClaudeBrain
from services.agents.brains.strategies import strategy
from services.agents.mandate import BrainConfig, ClaudeBrainConfig

__all__ = ["Brain", "BrainUnavailable", "build_brain"]


def build_brain(config: BrainConfig, client: AsyncAnthropic | None = None) -> Brain:
    """The brain a mandate asks for. A Claude brain without `client` reads ANTHROPIC_API_KEY."""
    if isinstance(config, ClaudeBrainConfig):
        return ClaudeBrain(config.model, config.style, client=client, max_tokens=config.max_tokens)
    return strategy(config.name, config.params)
