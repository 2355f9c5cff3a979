-- One agent per principal. The private key stays in this schema; in production
-- keep this schema's credentials (or the key column, via a KMS) as secret as money.
CREATE TABLE principals (
    principal_id  text PRIMARY KEY,
    market_id     text NOT NULL,
    agent_id      text NOT NULL UNIQUE,
    variant       text NOT NULL,
    mandate       jsonb NOT NULL,
    private_key   bytea NOT NULL,
    next_seq      bigint NOT NULL DEFAULT 1,
    admitted      boolean NOT NULL DEFAULT false,
    committed_cents bigint NOT NULL DEFAULT 0 CHECK (committed_cents >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX principals_market ON principals (market_id) WHERE admitted;

-- What the agents know of every listing in their markets (from listing.events).
CREATE TABLE listings_seen (
    listing_id   text PRIMARY KEY,
    market_id    text NOT NULL,
    facts        jsonb NOT NULL,
    status       text NOT NULL,
    seller_principal_id text NOT NULL
);
CREATE INDEX listings_seen_open ON listings_seen (market_id) WHERE status = 'active';

-- One row per negotiation as this side sees it, and the money it holds.
-- A buyer has one per listing (neg_id b|principal|listing); a seller one per thread.
CREATE TABLE negotiations (
    neg_id        text PRIMARY KEY,
    principal_id  text NOT NULL REFERENCES principals,
    listing_id    text NOT NULL,
    role          text NOT NULL CHECK (role IN ('buyer', 'seller')),
    want_id       text,
    item_id       text,
    thread_id     text,
    status        text NOT NULL CHECK (status IN ('opening', 'open', 'deal', 'ended')),
    events        jsonb NOT NULL DEFAULT '[]',
    reserved_cents bigint NOT NULL DEFAULT 0 CHECK (reserved_cents >= 0),
    retry_at      timestamptz,
    attempts      int NOT NULL DEFAULT 0,
    end_reason    text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX negotiations_principal ON negotiations (principal_id, status);
CREATE INDEX negotiations_thread ON negotiations (thread_id);
CREATE INDEX negotiations_retry ON negotiations (retry_at) WHERE retry_at IS NOT NULL;

-- Deals this principal is party to, for settlement reactions and the budget.
CREATE TABLE deals (
    deal_id       text NOT NULL,
    principal_id  text NOT NULL REFERENCES principals,
    role          text NOT NULL,
    listing_id    text NOT NULL,
    want_id       text,
    amount_cents  bigint NOT NULL,
    shipping_method text NOT NULL,
    status        text NOT NULL,
    PRIMARY KEY (deal_id, principal_id)
);

-- Every move that left an agent, with the guard's verdicts: the evidence for "no mandate broken".
CREATE TABLE moves (
    id            bigserial PRIMARY KEY,
    principal_id  text NOT NULL,
    listing_id    text NOT NULL,
    kind          text NOT NULL,
    price_cents   bigint,
    guard_refusals int NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);
