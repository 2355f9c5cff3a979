"""Moved to `haggle.guard.ratelimit` (shared with the agent gateway); re-exported here."""

from haggle.guard.ratelimit import *  # noqa: F403
