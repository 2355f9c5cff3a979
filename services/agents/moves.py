"""Moved to `haggle.guard.moves` (shared with the agent gateway); re-exported here."""

from haggle.guard.moves import *  # noqa: F403
