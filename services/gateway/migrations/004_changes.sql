-- A per-agent change counter for waiting reads. Every change an agent can see takes the next value
-- under its principal's row lock (held to commit) and stamps the rows it touched, so a reader that
-- sees counter N sees every change numbered up to N, however late each committed.
ALTER TABLE principals ADD COLUMN changes bigint NOT NULL DEFAULT 0;
ALTER TABLE negotiations ADD COLUMN changed bigint NOT NULL DEFAULT 0;
ALTER TABLE deals ADD COLUMN changed bigint NOT NULL DEFAULT 0;
CREATE INDEX negotiations_changed ON negotiations (agent_id, changed);
CREATE INDEX deals_changed ON deals (agent_id, changed);
