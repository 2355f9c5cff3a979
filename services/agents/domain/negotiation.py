"""One agent's side of one negotiation: its status as an enum, the moves between statuses as a
table, and the reasons an agent ends a negotiation on its own. Pure.

A buyer has one negotiation per listing it shortlisted (`b|principal|listing`); a seller one per
thread (`s|principal|thread`). A negotiation is `OPENING` (a candidate, or its opening sent),
`OPEN` (the referee opened its thread), then `DEAL` or `ENDED`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from haggle.contracts.negotiation import (
    EndReason,
    NegotiationEnded,
    NegotiationRefusal,
    OfferMade,
    ThreadOpened,
)
from haggle.guard.commands import THREAD_EVENTS
from haggle.guard.view import NegotiationView, ThreadEvent


class Status(StrEnum):
    OPENING = "opening"
    OPEN = "open"
    DEAL = "deal"
    ENDED = "ended"


class Role(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"


_BUYER = Role.BUYER


class EndedBecause(StrEnum):
    """Why the agent itself ended a negotiation (the referee's reasons are `EndReason`, and a refused
    opening keeps the referee's `NegotiationRefusal`)."""

    DECLINED_TO_OPEN = "declined_to_open"
    """Not worth opening with the money there is for it."""
    UNFUNDED = "unfunded"
    """Its want gets none of the budget: the money goes to other wants first (`shopping.funded`).
    The want's other candidates waiting to open end with it (`shopping.after_ending`)."""
    WANT_FULFILLED = "want_fulfilled"
    """Another listing for the same want made a deal."""
    OUTRANKED = "outranked"
    """Dearer than the want's shortlist: cheaper candidates go first."""
    MARKET_CLOSING = "market_closing"
    """The market stopped taking new negotiations before this one opened."""


REVIVABLE = frozenset(
    {
        EndedBecause.DECLINED_TO_OPEN,
        EndedBecause.UNFUNDED,
        EndedBecause.WANT_FULFILLED,
        EndedBecause.OUTRANKED,
    }
)
"""Why a candidate ended without being tried: it gets another look when its want is open again."""
MAX_REOPENS = 5
RETRYABLE_OPEN_REFUSALS = frozenset({NegotiationRefusal.LISTING_UNKNOWN, NegotiationRefusal.RATE_LIMITED})
MAX_OPEN_ATTEMPTS = 8

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPENING: frozenset({Status.OPENING, Status.OPEN, Status.ENDED}),
    Status.OPEN: frozenset({Status.OPEN, Status.DEAL, Status.ENDED}),
    # An opening ended (market closing) while its command was in flight may still see its thread
    # open; an untried candidate is revived when its want is open again.
    Status.ENDED: frozenset({Status.ENDED, Status.OPENING, Status.OPEN}),
    Status.DEAL: frozenset({Status.DEAL}),
}
"""Every status a negotiation may move to from each status; staying put is a repeat, allowed."""
LIVE = (Status.OPENING, Status.OPEN)
"""A negotiation still in play. A tuple held here: `live` is asked very often, and looking an enum
member up on its class costs several times a plain lookup (a tuple finds a member by identity)."""


class IllegalTransition(ValueError):
    def __init__(self, neg_id: str, before: Status, after: Status) -> None:
        super().__init__(f"negotiation {neg_id}: {before.value} → {after.value} is not a transition")
        self.neg_id, self.before, self.after = neg_id, before, after


def buyer_neg_id(principal_id: str, listing_id: str) -> str:
    return f"b|{principal_id}|{listing_id}"


def seller_neg_id(principal_id: str, thread_id: str) -> str:
    return f"s|{principal_id}|{thread_id}"


@dataclass(slots=True, eq=False)
class Received:
    """One thread event as this agent received it, and when. Each of the event and its saved form
    (type, payload, at) is made from the other when first asked for: a negotiation loaded from the
    store parses an event only when a turn reads it, and one recorded here is turned into JSON only
    when it is saved (the sim never saves)."""

    at: datetime
    _event: ThreadEvent | None
    _saved: dict[str, Any] | None

    @classmethod
    def of(cls, event: ThreadEvent, at: datetime) -> Received:
        return cls(at, event, None)

    @classmethod
    def loaded(cls, saved: dict[str, Any]) -> Received:
        return cls(datetime.fromisoformat(saved["at"]), None, saved)

    @property
    def event(self) -> ThreadEvent:
        if self._event is None:
            assert self._saved is not None
            self._event = THREAD_EVENTS[self._saved["type"]].model_validate(self._saved["payload"])
        return self._event

    def saved(self) -> dict[str, Any]:
        if self._saved is None:
            event = self.event
            self._saved = {
                "type": event.type,
                "payload": event.model_dump(mode="json"),
                "at": self.at.isoformat(),
            }
        return self._saved

    def __eq__(self, other: object) -> bool:
        """The same event received at the same time, whichever form each side holds."""
        if not isinstance(other, Received):
            return NotImplemented
        return self.at == other.at and self.event == other.event


@dataclass(frozen=True, slots=True)
class Fold:
    """`turn.view_of`'s last fold of a negotiation's events into a view (a cache, not saved)."""

    inputs: tuple[Any, ...]
    """What the view was folded from besides the events: agent, role, listing facts, limits, rounds."""
    count: int
    """Events folded: `events[:count]`, the last of them `last`."""
    last: Received | None
    view: NegotiationView
    opened_at: datetime | None
    """When this agent received the thread's opening (None: not yet)."""

    def follows(self, inputs: tuple[Any, ...], events: list[Received]) -> bool:
        """The same inputs, and the events folded are still the first ones (events are only appended)."""
        count = self.count
        return (
            count <= len(events) and (count == 0 or events[count - 1] is self.last) and self.inputs == inputs
        )


@dataclass
class Negotiation:
    neg_id: str
    principal_id: str
    listing_id: str
    role: Role
    want_id: str | None = None
    item_id: str | None = None
    thread_id: str | None = None
    status: Status = Status.OPENING
    events: list[Received] = field(default_factory=list)
    """The thread's events as this agent received them, in order."""
    reserved_cents: int = 0
    """What this (buyer) negotiation holds of the budget: see `Budget`."""
    retry_at: datetime | None = None
    """When its next turn is due (an opening, a retry, a model's turn); None: nothing due."""
    attempts: int = 0
    end_reason: str | None = None
    """An `EndedBecause`, the referee's `EndReason`, or the `NegotiationRefusal` of its opening."""
    folded: Fold | None = field(default=None, init=False, repr=False, compare=False)
    """`turn.view_of`'s last fold. A cache, not saved."""

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def is_buyer(self) -> bool:
        return self.role is _BUYER

    @property
    def waiting_to_open(self) -> bool:
        """A buyer's candidate not yet started: no thread, nothing held."""
        return self.is_buyer and self.thread_id is None and not self.reserved_cents and bool(self.want_id)

    def move_to(self, status: Status) -> None:
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.neg_id, self.status, status)
        self.status = status

    def end(self, reason: EndedBecause | EndReason | NegotiationRefusal) -> None:
        """Ended without a deal: the hold goes back to the budget and nothing more is due."""
        self.move_to(Status.ENDED)
        self.end_reason, self.reserved_cents, self.retry_at = reason.value, 0, None

    def record(self, event: ThreadOpened | OfferMade | NegotiationEnded, at: datetime) -> None:
        """A thread event (ThreadOpened, OfferMade, NegotiationEnded) as this agent received it."""
        self.events.append(Received.of(event, at))

    def thread_opened(self, thread_id: str) -> None:
        self.move_to(Status.OPEN)
        self.thread_id, self.retry_at = thread_id, None

    def thread_ended(self, reason: EndReason) -> None:
        if reason is EndReason.DEAL:
            self.move_to(Status.DEAL)
            self.end_reason = reason.value
        else:
            self.end(reason)

    def deal_agreed(self) -> None:
        self.move_to(Status.DEAL)
        self.reserved_cents = 0

    def opening_refused(self, reason: NegotiationRefusal, now: datetime) -> None:
        """The referee refused this buyer's opening: try again later if the refusal may pass, else end."""
        if reason in RETRYABLE_OPEN_REFUSALS and self.attempts < MAX_OPEN_ATTEMPTS:
            self.attempts += 1
            self.retry_at = now + timedelta(seconds=0.2 * 2**self.attempts)
        else:
            self.end(reason)

    def brain_unavailable(self, now: datetime) -> None:
        self.retry_at, self.attempts = now + timedelta(seconds=5), self.attempts + 1

    def revivable(self, fulfilled_wants: set[str]) -> bool:
        """An untried buyer candidate whose want is open again: it may be looked at again."""
        return (
            self.is_buyer
            and self.status is Status.ENDED
            and self.end_reason in REVIVABLE
            and bool(self.want_id)
            and self.want_id not in fulfilled_wants
            and self.attempts < MAX_REOPENS
        )

    def revive(self) -> None:
        self.move_to(Status.OPENING)
        self.end_reason, self.retry_at, self.reserved_cents = None, None, 0
        self.attempts += 1

    def passed_over(self) -> None:
        """A revivable candidate looked at again and outranked at once: as if revived and dropped
        (it ends `outranked`, and the look counts towards `MAX_REOPENS`), without being written twice."""
        if self.status is not Status.ENDED:
            raise IllegalTransition(self.neg_id, self.status, Status.ENDED)
        self.end_reason = EndedBecause.OUTRANKED.value
        self.attempts += 1
