"""agent.decisions (key agent_id): how each move an agent signed came about, for the audit trail.

For every negotiation command it sends, an agent also publishes a `MoveDecided`, signed with
the same key: which brain proposed the move, what the mandate guard refused on the way (the
reasons only: a refusal's detail could hint at a private limit), whether the agent fell back to
walking away, and the digest of the mandate it acted under. `haggle audit` joins it to the
command by `command_event_id`. No service consumes this topic; it is a record.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Literal

from pydantic import Field

from haggle.contracts.envelope import Envelope, Message
from haggle.contracts.mandate import Mandate
from haggle.contracts.signing import AgentKey, canonical_json, signed
from haggle.contracts.types import Id

MAX_REFUSALS = 20


class MoveDecided(Message):
    type: Literal["MoveDecided"] = "MoveDecided"
    agent_id: Id
    principal_id: Id
    listing_id: Id
    thread_id: Id | None = None
    command_event_id: str = Field(max_length=64, description="the signed command this decision produced")
    command_type: str = Field(max_length=64)
    brain: str = Field(
        max_length=128, description="who proposed it: strategy:<name>, claude:<model>, gateway:<key>"
    )
    guard_refusals: tuple[str, ...] = Field(
        default=(),
        max_length=MAX_REFUSALS,
        description="the guard's refusal reasons before this move, in order",
    )
    fell_back: bool = Field(
        default=False, description="the brain's proposals were refused: the agent walked away"
    )
    mandate_sha256: str = Field(
        min_length=64, max_length=64, description="sha256 of the mandate's canonical JSON (mandate_digest)"
    )


AGENT_DECISIONS: tuple[type[Message], ...] = (MoveDecided,)


@functools.lru_cache(maxsize=4_096)
def mandate_digest(mandate: Mandate) -> str:
    """sha256 over the mandate's canonical JSON: names the limits without showing them.

    Anyone holding the mandate file recomputes it; the digest alone reveals nothing a guess of
    the whole mandate (ids, keywords, every limit at once) would not."""
    return hashlib.sha256(canonical_json(mandate.model_dump(mode="json"))).hexdigest()


def decision_for(
    command: Envelope,
    *,
    key: AgentKey,
    principal_id: str,
    brain: str,
    mandate_sha256: str,
    refusals: tuple[str, ...] = (),
    fell_back: bool = False,
    producer: str,
) -> Envelope:
    """The signed `MoveDecided` for a signed negotiation command: same key, same seq."""
    decided = MoveDecided(
        agent_id=str(command.agent_id),
        principal_id=principal_id,
        listing_id=command.payload["listing_id"],
        thread_id=command.payload.get("thread_id"),
        command_event_id=str(command.event_id),
        command_type=command.type,
        brain=brain,
        guard_refusals=refusals[-MAX_REFUSALS:],
        fell_back=fell_back,
        mandate_sha256=mandate_sha256,
    )
    return signed(
        decided,
        key=key,
        agent_id=str(command.agent_id),
        seq=int(command.seq or 0),
        market_id=command.market_id,
        producer=producer,
    )
