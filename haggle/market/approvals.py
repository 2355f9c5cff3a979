"""The simulated human who answers approvals in `market run`, and what that lets the optimum count.

Policies (`--approval-policy`):
- `consistent:<share>` (the default, share 0.1): each principal answers every
  request the same way, as its mandate already said it would pay that much —
  except a seeded `share` of principals who decline every purchase that needs
  approval (the stated share of people who change their mind);
- `grant-all`, `deny-all`, `grant-up-to:<cents>`;
- `human`: nobody answers here (use `haggle approvals`), requests expire.

`consent_limit` is the most a principal would end up paying under the policy
(None: no limit beyond the mandate). The optimum is computed under the same
rule — a trade whose cheapest total is above its buyer's consent limit is not
an edge — so efficiency measures the agents and the market, not the policy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from haggle.contracts.approval import ApprovalDenied, ApprovalGranted, ApprovalRequested

DEFAULT_POLICY = "consistent:0.1"


@dataclass(frozen=True)
class ApprovalPolicy:
    kind: str
    value: float = 0.0
    seed: int = 0

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> ApprovalPolicy:
        kind, _, raw = text.partition(":")
        if kind in ("grant-all", "deny-all", "human") and not raw:
            return cls(kind, seed=seed)
        if kind == "grant-up-to" and raw.isdigit():
            return cls(kind, float(raw), seed)
        if kind == "consistent":
            try:
                share = float(raw or "0.1")
            except ValueError:
                share = -1.0
            if 0.0 <= share <= 1.0:
                return cls(kind, share, seed)
        raise ValueError(
            f"approval policy {text!r}: use consistent:<share 0..1>, grant-all, deny-all, human"
            " or grant-up-to:<cents>"
        )

    def __str__(self) -> str:
        if self.kind == "grant-up-to":
            return f"grant-up-to:{int(self.value)}"
        return f"consistent:{self.value:g}" if self.kind == "consistent" else self.kind

    def declines(self, principal_id: str) -> bool:
        """Whether this principal says no to every purchase that needs its approval."""
        if self.kind == "deny-all":
            return True
        if self.kind != "consistent":
            return False
        digest = hashlib.sha256(f"{self.seed}:{principal_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.value

    def consent_limit(self, principal_id: str, auto_approve_limit_cents: int) -> int | None:
        if self.declines(principal_id):
            return auto_approve_limit_cents
        if self.kind == "grant-up-to":
            return max(auto_approve_limit_cents, int(self.value))
        return None

    def answer(
        self, request: ApprovalRequested, principal_id: str
    ) -> ApprovalGranted | ApprovalDenied | None:
        """The answer to one request (for the unscoped `principal_id`); None: nobody answers."""
        if self.kind == "human":
            return None
        ids = {
            "approval_id": request.approval_id,
            "deal_id": request.deal_id,
            "principal_id": request.principal_id,
        }
        limit = self.consent_limit(principal_id, request.auto_approve_limit_cents)
        if limit is None or request.amount_cents <= limit:
            return ApprovalGranted(**ids, granted_by=f"policy:{self}")
        return ApprovalDenied(**ids, denied_by=f"policy:{self}", reason="the principal declined")
