-- Real money beside the ledger (services/settlement/payments). A deal whose card is being authorized
-- waits in 'authorizing'; every provider call is first recorded here as an operation, made outside any
-- transaction with the operation's idempotency key, and its result committed afterwards.
ALTER TABLE deals DROP CONSTRAINT deals_state_check;
ALTER TABLE deals ADD CONSTRAINT deals_state_check CHECK (state IN ('awaiting_approval', 'authorizing',
    'funded', 'shipping', 'inspecting', 'disputed', 'returning', 'released', 'refunded', 'failed'));

-- A principal's accounts at the provider: a buyer's customer and saved payment method, a seller's
-- connected account.
CREATE TABLE payment_accounts (
    market_id            text NOT NULL,
    principal_id         text NOT NULL,
    customer_id          text,
    payment_method_id    text,
    connected_account_id text,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, principal_id)
);

-- One row per provider operation; `op_key` (kind and the ledger transfer it serves) is the
-- idempotency key sent to the provider, so a retry after a crash is the same request.
CREATE TABLE payment_ops (
    id              bigserial PRIMARY KEY,
    op_key          text NOT NULL UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('authorize', 'capture', 'payout', 'void')),
    market_id       text NOT NULL,
    deal_id         text NOT NULL,
    transfer_id     text NOT NULL,
    amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    provider_id     text,
    outcome         text,
    detail          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX payment_ops_pending ON payment_ops (next_attempt_at) WHERE status = 'pending';
CREATE INDEX payment_ops_deal ON payment_ops (deal_id, id);

-- What the provider holds for each deal, as last seen (from our calls and its webhooks).
CREATE TABLE payment_intents (
    deal_id           text PRIMARY KEY,
    market_id         text NOT NULL,
    intent_id         text NOT NULL UNIQUE,
    charge_id         text,
    status            text NOT NULL,
    amount_cents      bigint NOT NULL,
    captured          boolean NOT NULL DEFAULT false,
    authorized_at     timestamptz NOT NULL,
    capture_before    timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_intents_uncaptured ON payment_intents (deal_id) WHERE NOT captured;

-- Webhook events already taken (a replay under the same id changes nothing).
CREATE TABLE provider_events (
    event_id    text PRIMARY KEY,
    provider    text NOT NULL,
    type        text NOT NULL,
    deal_id     text,
    received_at timestamptz NOT NULL DEFAULT now()
);
