"""Moved to `services.agents.domain.turn`; kept so existing imports still work."""

from services.agents.domain.turn import NO_TOKENS, Decision, next_move

__all__ = ["NO_TOKENS", "Decision", "next_move"]
