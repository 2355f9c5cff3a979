"""approval.events (key principal_id): a human approves a purchase above the auto-approve limit.

The settlement service requests and expires approvals; a person answers
through `haggle approvals grant|deny`, or a market script answers for them.
The approval id names the deal it is for, so an answer can only approve
that one escrow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from haggle.contracts.envelope import Message
from haggle.contracts.types import Cents, Id


class ApprovalRequested(Message):
    type: Literal["ApprovalRequested"] = "ApprovalRequested"
    approval_id: Id
    deal_id: Id
    listing_id: Id
    principal_id: Id
    buyer_agent_id: Id
    amount_cents: Cents
    auto_approve_limit_cents: Cents
    expires_at: datetime


class ApprovalGranted(Message):
    type: Literal["ApprovalGranted"] = "ApprovalGranted"
    approval_id: Id
    deal_id: Id
    principal_id: Id
    granted_by: str = Field(max_length=128)


class ApprovalDenied(Message):
    type: Literal["ApprovalDenied"] = "ApprovalDenied"
    approval_id: Id
    deal_id: Id
    principal_id: Id
    denied_by: str = Field(max_length=128)
    reason: str = Field(default="", max_length=500)


class ApprovalExpired(Message):
    type: Literal["ApprovalExpired"] = "ApprovalExpired"
    approval_id: Id
    deal_id: Id
    principal_id: Id


APPROVAL_EVENTS: tuple[type[Message], ...] = (
    ApprovalRequested,
    ApprovalGranted,
    ApprovalDenied,
    ApprovalExpired,
)
