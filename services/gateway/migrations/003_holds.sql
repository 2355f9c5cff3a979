-- A buyer's negotiation holds, from its opening to its end, the most it could commit: several open
-- at once never promise more than the budget. Freed when it ends without a deal, committed on one.
ALTER TABLE negotiations ADD COLUMN held_cents bigint NOT NULL DEFAULT 0 CHECK (held_cents >= 0);
CREATE INDEX negotiations_holding ON negotiations (agent_id) WHERE held_cents > 0;
