-- The web service's own read models, built from the event topics, and its people's side:
-- invites, sessions, the mandates its principals submitted and their encrypted addresses.
CREATE TABLE agent_principals (
    agent_id     text PRIMARY KEY,
    principal_id text NOT NULL,
    market_id    text NOT NULL
);
CREATE INDEX agent_principals_principal ON agent_principals (principal_id);

CREATE TABLE markets (
    market_id  text PRIMARY KEY,
    phase      text NOT NULL DEFAULT 'open' CHECK (phase IN ('open', 'closing', 'closed')),
    rules      jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE listings (
    listing_id          text PRIMARY KEY,
    market_id           text NOT NULL,
    seller_agent_id     text NOT NULL,
    seller_principal_id text NOT NULL,
    title               text NOT NULL,
    description         text NOT NULL,
    category            text NOT NULL,
    condition           text NOT NULL,
    price_cents         bigint NOT NULL,
    shipping            jsonb NOT NULL,
    status              text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    search              tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', description), 'B')
    ) STORED
);
CREATE INDEX listings_browse ON listings (market_id, status, created_at DESC);
CREATE INDEX listings_seller ON listings (seller_principal_id);
CREATE INDEX listings_search ON listings USING gin (search);

CREATE TABLE threads (
    thread_id       text PRIMARY KEY,
    listing_id      text NOT NULL,
    market_id       text NOT NULL,
    buyer_agent_id  text NOT NULL,
    seller_agent_id text NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended')),
    end_reason      text,
    rounds          integer NOT NULL DEFAULT 0,
    last_price_cents bigint,
    deadline        timestamptz,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threads_buyer ON threads (buyer_agent_id);
CREATE INDEX threads_seller ON threads (seller_agent_id);
CREATE INDEX threads_market ON threads (market_id, status);

CREATE TABLE thread_items (
    id          bigserial PRIMARY KEY,
    thread_id   text NOT NULL,
    kind        text NOT NULL,
    by_party    text,
    round       integer,
    price_cents bigint,
    text        text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL
);
CREATE INDEX thread_items_thread ON thread_items (thread_id, id);

CREATE TABLE refusals (
    id         bigserial PRIMARY KEY,
    market_id  text NOT NULL,
    agent_id   text,
    thread_id  text,
    listing_id text NOT NULL,
    reason     text NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX refusals_agent ON refusals (agent_id, id);

CREATE TABLE deals (
    deal_id             text PRIMARY KEY,
    market_id           text NOT NULL,
    listing_id          text NOT NULL,
    thread_id           text NOT NULL,
    buyer_agent_id      text NOT NULL,
    buyer_principal_id  text NOT NULL,
    seller_agent_id     text NOT NULL,
    seller_principal_id text NOT NULL,
    price_cents         bigint NOT NULL,
    shipping_method     text NOT NULL,
    shipping_cost_cents bigint NOT NULL,
    shipping_paid_by    text NOT NULL,
    agreed_at           timestamptz NOT NULL
);
CREATE INDEX deals_buyer ON deals (buyer_principal_id);
CREATE INDEX deals_seller ON deals (seller_principal_id);
CREATE INDEX deals_market ON deals (market_id);

-- Settlement events keyed by deal; they may arrive before the DealAgreed they follow.
CREATE TABLE deal_events (
    id       bigserial PRIMARY KEY,
    deal_id  text NOT NULL,
    event_id uuid NOT NULL UNIQUE,
    type     text NOT NULL,
    payload  jsonb NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX deal_events_deal ON deal_events (deal_id, id);
CREATE INDEX deal_events_type ON deal_events (type);

CREATE TABLE approvals (
    approval_id     text PRIMARY KEY,
    deal_id         text NOT NULL,
    market_id       text NOT NULL,
    principal_id    text NOT NULL,
    listing_id      text NOT NULL,
    amount_cents    bigint NOT NULL,
    expires_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'waiting'
                    CHECK (status IN ('waiting', 'granted', 'denied', 'expired')),
    answered_by     text,
    answered_at     timestamptz,
    answer_sent_at  timestamptz,
    requested_at    timestamptz NOT NULL
);
CREATE INDEX approvals_principal ON approvals (principal_id, status);
CREATE INDEX approvals_market ON approvals (market_id, status);

-- What changed, for the live streams: audience holds the agent or principal ids it concerns.
CREATE TABLE feed (
    id        bigserial PRIMARY KEY,
    market_id text NOT NULL,
    kind      text NOT NULL,
    ref_id    text NOT NULL,
    audience  text[] NOT NULL DEFAULT '{}',
    at        timestamptz NOT NULL DEFAULT now()
);

-- The people's side.
CREATE TABLE principals (
    principal_id text PRIMARY KEY,
    market_id    text NOT NULL,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE invites (
    token_hash   bytea PRIMARY KEY,
    role         text NOT NULL CHECK (role IN ('principal', 'operator')),
    principal_id text,
    market_id    text NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'principal') = (principal_id IS NOT NULL))
);

CREATE TABLE sessions (
    token_hash   bytea PRIMARY KEY,
    role         text NOT NULL CHECK (role IN ('principal', 'operator')),
    principal_id text,
    market_id    text NOT NULL,
    csrf         text NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE signin_attempts (
    id     bigserial PRIMARY KEY,
    client text NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signin_attempts_client ON signin_attempts (client, at);

-- Private: only its principal's pages read it. One mandate per principal (the agents
-- service assigns a mandate once).
CREATE TABLE mandates (
    principal_id text PRIMARY KEY,
    market_id    text NOT NULL,
    mandate      jsonb NOT NULL,
    source       text NOT NULL DEFAULT 'form',
    submitted_at timestamptz NOT NULL DEFAULT now()
);

-- Personal data: AES-GCM ciphertext under the web data key, bound to its principal.
CREATE TABLE addresses (
    principal_id text PRIMARY KEY,
    nonce        bytea NOT NULL,
    ciphertext   bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
