"""Brains propose moves: literature strategies, Claude, and a compromised brain for red-teaming."""

from __future__ import annotations

from anthropic import AsyncAnthropic

from services.agents.brains.base import Brain, BrainUnavailable
from services.agents.brains.claude import ClaudeBrain
from services.agents.brains.compromised import CompromisedBrain
from services.agents.brains.strategies import strategy
from services.agents.mandate import BrainConfig, ClaudeBrainConfig, CompromisedBrainConfig

__all__ = ["Brain", "BrainUnavailable", "build_brain"]


def build_brain(config: BrainConfig, client: AsyncAnthropic | None = None) -> Brain:
    """The brain a mandate asks for. A Claude brain without `client` reads ANTHROPIC_API_KEY."""
    if isinstance(config, ClaudeBrainConfig):
        return ClaudeBrain(config.model, config.style, client=client, max_tokens=config.max_tokens)
    if isinstance(config, CompromisedBrainConfig):
        return CompromisedBrain(config.seed, config.variety)
    return strategy(config.name, config.params)
