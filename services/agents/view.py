"""Moved to `haggle.guard.view` (shared with the agent gateway); re-exported here."""

from haggle.guard.view import *  # noqa: F403
