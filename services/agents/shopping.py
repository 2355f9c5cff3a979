"""Moved to `services.agents.domain.shopping`; kept so existing imports still work."""

from services.agents.domain.shopping import *  # noqa: F403
