"""The brain interface lives in the agents' domain (`services.agents.domain.brain`)."""

from services.agents.domain.brain import Brain, BrainUnavailable, confidential_text, is_remote

__all__ = ["Brain", "BrainUnavailable", "confidential_text", "is_remote"]
