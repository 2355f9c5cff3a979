"""Brains propose moves: literature strategies, Claude, any OpenAI-compatible model, the narrator
(a strategy moves, a model talks), and a compromised brain for red-teaming."""

from __future__ import annotations

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from haggle.contracts.mandate import ExternalBrainConfig
from services.agents.brains import claude, openai_chat
from services.agents.brains.base import Brain, BrainUnavailable
from services.agents.brains.claude import ClaudeBrain
from services.agents.brains.compromised import CompromisedBrain
from services.agents.brains.narrator import AnthropicWords, NarratorBrain, OpenAIWords, Words
from services.agents.brains.openai_chat import OpenAIChatBrain
from services.agents.brains.strategies import strategy
from services.agents.mandate import (
    BrainConfig,
    ClaudeBrainConfig,
    CompromisedBrainConfig,
    NarratorBrainConfig,
    OpenAIBrainConfig,
)

__all__ = ["Brain", "BrainUnavailable", "build_brain"]


def build_brain(
    config: BrainConfig, client: AsyncAnthropic | None = None, openai_client: AsyncOpenAI | None = None
) -> Brain:
    """The brain a mandate asks for. Without a client, a model brain reads its key from the environment
    (ANTHROPIC_API_KEY, OPENAI_API_KEY)."""
    if isinstance(config, ClaudeBrainConfig):
        return ClaudeBrain(config.model, config.style, client=client, max_tokens=config.max_tokens)
    if isinstance(config, OpenAIBrainConfig):
        return OpenAIChatBrain(
            config.model,
            config.style,
            client=openai_client,
            base_url=config.base_url,
            max_tokens=config.max_tokens,
        )
    if isinstance(config, NarratorBrainConfig):
        words: Words
        if config.provider == "openai":
            words = OpenAIWords(openai_client or openai_chat.client_from_env(config.base_url), config.model)
        else:
            words = AnthropicWords(client or claude.client_from_env(), config.model)
        narrator = NarratorBrain(strategy(config.strategy, config.params), words, config.style)
        narrator.max_tokens = config.max_tokens
        return narrator
    if isinstance(config, CompromisedBrainConfig):
        return CompromisedBrain(config.seed, config.variety)
    if isinstance(config, ExternalBrainConfig):
        raise ValueError("an external agent brings its own brain: it trades through the agent gateway")
    return strategy(config.name, config.params)
