CREATE TABLE deals (
    deal_id             text PRIMARY KEY,
    market_id           text NOT NULL,
    listing_id          text NOT NULL,
    buyer_principal_id  text NOT NULL,
    seller_principal_id text NOT NULL,
    price_cents         bigint NOT NULL,
    fee_cents           bigint NOT NULL CHECK (fee_cents >= 0),
    escrow_cents        bigint NOT NULL,
    state               text NOT NULL CHECK (state IN ('awaiting_approval', 'funded', 'shipping',
                            'inspecting', 'disputed', 'returning', 'released', 'refunded', 'failed')),
    due_at              timestamptz,
    data                jsonb NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (state NOT IN ('released', 'refunded', 'failed') OR due_at IS NULL)
);
CREATE INDEX deals_due ON deals (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX deals_market_state ON deals (market_id, state);

-- Reference data from other services' events.
CREATE TABLE market_rules (
    market_id  text PRIMARY KEY,
    rules      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE listing_conditions (
    listing_id text PRIMARY KEY,
    market_id  text NOT NULL,
    condition  text NOT NULL
);
CREATE TABLE settlement_refusals (
    id         bigserial PRIMARY KEY,
    deal_id    text NOT NULL,
    event_id   uuid NOT NULL,
    reason     text NOT NULL,
    detail     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
