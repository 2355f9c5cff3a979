"""Moved to `haggle.guard.rules` (shared with the agent gateway); re-exported here."""

from haggle.guard.rules import *  # noqa: F403
