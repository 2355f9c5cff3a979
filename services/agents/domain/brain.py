"""The one interface every brain implements, and the error a brain raises when it cannot think. Pure."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from haggle.guard.moves import Move
from haggle.guard.view import NegotiationView


@runtime_checkable
class Brain(Protocol):
    """A brain that calls a network service (a model API) sets `remote = True`: its turns are
    then taken by the turn scheduler in their own transactions, never inside an inbox batch."""

    async def decide(self, view: NegotiationView) -> Move:
        """Propose the next move. The guard checks it; `view.refusals` says why earlier ones failed."""
        ...


def is_remote(brain: Brain) -> bool:
    return bool(getattr(brain, "remote", False))


def confidential_text(brain: Brain, view: NegotiationView) -> tuple[str, ...]:
    """The instructions a brain was given for `view` (a model's system prompt), which the guard keeps
    any outgoing text from echoing. A brain with no prompt has none."""
    lines = getattr(brain, "confidential", None)
    return tuple(lines(view)) if callable(lines) else ()


class BrainUnavailable(RuntimeError):
    """The brain's backend stayed down through every retry; the caller decides whether to wait or walk."""
