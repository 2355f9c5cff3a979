CREATE TABLE market_rules (
    market_id text PRIMARY KEY,
    rules     jsonb NOT NULL
);

CREATE TABLE listings_view (
    listing_id          text PRIMARY KEY,
    market_id           text NOT NULL,
    seller_agent_id     text NOT NULL,
    seller_principal_id text NOT NULL,
    state               text NOT NULL,
    item                jsonb NOT NULL,
    shipping            jsonb NOT NULL,
    deal_id             text,
    epoch               int NOT NULL DEFAULT 0
);

CREATE TABLE threads (
    thread_id       text PRIMARY KEY,
    listing_id      text NOT NULL,
    market_id       text NOT NULL,
    epoch           int NOT NULL,
    buyer_agent_id  text NOT NULL,
    buyer           jsonb NOT NULL,
    seller          jsonb NOT NULL,
    opened_at       timestamptz NOT NULL,
    deadline        timestamptz NOT NULL,
    max_rounds      int NOT NULL,
    offers          jsonb NOT NULL,
    messages        int NOT NULL DEFAULT 0,
    status          text NOT NULL CHECK (status IN ('open', 'ended')),
    end_reason      text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (listing_id, buyer_agent_id, epoch)
);
CREATE INDEX threads_open_by_listing ON threads (listing_id) WHERE status = 'open';
CREATE INDEX threads_open_by_buyer ON threads (buyer_agent_id) WHERE status = 'open';
CREATE INDEX threads_due ON threads (deadline) WHERE status = 'open';

-- Business keys: one live deal per listing, one deal per thread and per accepted offer.
CREATE TABLE deals (
    deal_id           text PRIMARY KEY,
    listing_id        text NOT NULL,
    thread_id         text NOT NULL UNIQUE,
    accepted_offer_id text NOT NULL UNIQUE,
    price_cents       bigint NOT NULL CHECK (price_cents > 0),
    body              jsonb NOT NULL,
    cancelled         boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX deals_one_live_per_listing ON deals (listing_id) WHERE NOT cancelled;
