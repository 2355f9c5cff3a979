"""The one interface every brain implements, and the error a brain raises when it cannot think."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from services.agents.moves import Move
from services.agents.view import NegotiationView


@runtime_checkable
class Brain(Protocol):
    async def decide(self, view: NegotiationView) -> Move:
        """Propose the next move. The guard checks it; `view.refusals` says why earlier ones failed."""
        ...


class BrainUnavailable(RuntimeError):
    """The brain's backend stayed down through every retry; the caller decides whether to wait or walk."""
