-- Principals whose agent we do not run: the gateway holds the agent's key and signs for it.
-- As in the agents schema, keep these credentials (the private key) as secret as money.
CREATE TABLE principals (
    principal_id    text PRIMARY KEY,
    market_id       text NOT NULL,
    agent_id        text NOT NULL UNIQUE,
    mandate         jsonb NOT NULL,
    mandate_sha256  text NOT NULL,
    api_key_sha256  text NOT NULL UNIQUE,
    private_key     bytea NOT NULL,
    next_seq        bigint NOT NULL DEFAULT 1,
    admitted        boolean NOT NULL DEFAULT false,
    committed_cents bigint NOT NULL DEFAULT 0 CHECK (committed_cents >= 0)
);

-- The listings the gateway's agents may trade on (from listing.events): the guard's facts.
CREATE TABLE listings (
    listing_id text PRIMARY KEY,
    market_id  text NOT NULL,
    facts      jsonb NOT NULL,
    status     text NOT NULL
);

-- One negotiation per (agent, listing): the thread's events as the agent's inbox received them.
CREATE TABLE negotiations (
    agent_id     text NOT NULL,
    listing_id   text NOT NULL,
    want_id      text NOT NULL,
    thread_id    text,
    status       text NOT NULL DEFAULT 'opening',
    events       jsonb NOT NULL DEFAULT '[]',
    last_refusal jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, listing_id)
);
CREATE UNIQUE INDEX negotiations_thread ON negotiations (thread_id) WHERE thread_id IS NOT NULL;

CREATE TABLE deals (
    deal_id     text PRIMARY KEY,
    agent_id    text NOT NULL,
    listing_id  text NOT NULL,
    total_cents bigint NOT NULL,
    status      text NOT NULL,
    agreed      jsonb NOT NULL
);
CREATE INDEX deals_agent ON deals (agent_id);

-- Every request an external agent made that changed something, by its own id: a replay is refused.
CREATE TABLE requests (
    agent_id   text NOT NULL,
    request_id text NOT NULL,
    event_id   uuid NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, request_id)
);
