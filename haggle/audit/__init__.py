"""The audit trail of deals: who acted for whom, signed, from the topics (`haggle audit`)."""

from haggle.audit.trail import AUDIT_VERSION, AUDITED_TOPICS, Index, export, index
from haggle.audit.verify import Report, verify_export

__all__ = ["AUDITED_TOPICS", "AUDIT_VERSION", "Index", "Report", "export", "index", "verify_export"]
