-- What a principal's own agent was stopped from doing (agent.decisions, reasons only), with the
-- agent's registered key to check those records by.
ALTER TABLE agent_principals ADD COLUMN public_key text;

CREATE TABLE guard_refusals (
    id           bigserial PRIMARY KEY,
    event_id     uuid NOT NULL,
    market_id    text NOT NULL,
    principal_id text NOT NULL,
    listing_id   text NOT NULL,
    thread_id    text,
    position     integer NOT NULL,
    reason       text NOT NULL,
    at           timestamptz NOT NULL,
    UNIQUE (event_id, position)
);
CREATE INDEX guard_refusals_mine ON guard_refusals (principal_id, listing_id, id);
