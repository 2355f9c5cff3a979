"""Moved to `haggle.guard.secrecy` (shared with the agent gateway); re-exported here."""

from haggle.guard.secrecy import *  # noqa: F403
