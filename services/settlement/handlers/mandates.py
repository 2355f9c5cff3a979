"""mandate.commands: a principal's amended auto-approve limit reaches settlement's approvals.

Settlement learns the limit with the wallet (`FundWallet`); a principal who amends the mandate
(`AssignMandate` again, as the web app's /me/mandate sends it) changes it here too, so a deal
asks a human at the same limit the agent now works to.
"""

from __future__ import annotations

import logging

from haggle.contracts import Envelope
from haggle.contracts.mandate import AssignMandate
from haggle.runtime import operators
from haggle.runtime.outbox import UnitOfWork
from services.settlement import ledger_store, store
from services.settlement.domain.mandates import on_assigned

log = logging.getLogger(__name__)


async def on_assign_mandate(uow: UnitOfWork, env: Envelope, cmd: AssignMandate) -> None:
    """Only an operator hands out mandates (as the agents service checks); anyone else's is ignored."""
    principal_id = cmd.mandate.principal_id
    if not operators.is_operator(env):
        log.warning("mandate not signed by an operator", extra={"principal_id": principal_id})
        return
    known = await store.load_mandate(uow.conn, env.market_id, principal_id)
    decided = on_assigned(known, cmd.mandate)
    if decided.problems:
        extra = {"principal_id": principal_id, "problems": decided.problems}
        log.info("mandate amendment ignored", extra=extra)
    if decided.keep is not None:
        await store.save_mandate(uow.conn, env.market_id, decided.keep)
    if decided.limit_cents is not None:
        await ledger_store.set_approve_limit(uow.conn, env.market_id, principal_id, decided.limit_cents)
