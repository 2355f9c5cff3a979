"""Moved to `services.agents.domain.purchases`; kept so existing imports still work."""

from services.agents.domain.purchases import *  # noqa: F403
