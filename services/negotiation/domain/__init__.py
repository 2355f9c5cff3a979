"""The negotiation domain: the referee's model and its rules (pure)."""

from services.negotiation.domain.model import (
    Actor,
    Context,
    Decision,
    ListingState,
    ListingView,
    Offer,
    Refusal,
    Thread,
    ThreadStatus,
    thread_id_for,
)
from services.negotiation.domain.referee import close_for_listing, decide, expire

__all__ = [
    "Actor",
    "Context",
    "Decision",
    "ListingState",
    "ListingView",
    "Offer",
    "Refusal",
    "Thread",
    "ThreadStatus",
    "close_for_listing",
    "decide",
    "expire",
    "thread_id_for",
]
