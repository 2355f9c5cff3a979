CREATE TABLE listings (
    listing_id          text PRIMARY KEY,
    seller_agent_id     text NOT NULL,
    seller_principal_id text NOT NULL,
    market_id           text NOT NULL,
    title               text NOT NULL,
    description         text NOT NULL,
    category            text NOT NULL,
    condition           text NOT NULL,
    condition_rank      smallint NOT NULL,
    price_cents         bigint NOT NULL CHECK (price_cents > 0),
    currency            text NOT NULL,
    facts               jsonb NOT NULL,
    status              text NOT NULL CHECK (status IN ('active', 'reserved', 'sold', 'withdrawn')),
    deal_id             text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    search              tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', description), 'B')
    ) STORED
);
CREATE INDEX listings_search ON listings USING gin (search);
CREATE INDEX listings_browse ON listings (market_id, status, category, price_cents);
CREATE INDEX listings_price ON listings (market_id, status, price_cents);

CREATE TABLE listing_refusals (
    id          bigserial PRIMARY KEY,
    listing_id  text NOT NULL,
    event_id    uuid NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
