"""The mandate guard, shared by every place a move for a principal is made.

Pure rules (no I/O): `rules.check(move, view, limits, limiter)` keeps a move inside the
principal's mandate or returns a typed `GuardRefusal`. The agents service runs it on what its
brains propose; the agent gateway (services/gateway) runs the same function on what an
external agent sends, so a brain we do not run is held to the same limits. Moved here from
services/agents (whose modules of the same names re-export these) because a service must not
import another service.
"""
