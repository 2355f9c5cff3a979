-- The double-entry ledger. The rules live in domain/ledger.py; these constraints are the last line:
-- no overdrawn wallet, one resolution per hold, one hold per deal, transfers never change.
CREATE TABLE accounts (
    id              text PRIMARY KEY,
    market_id       text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('wallet', 'escrow', 'fees', 'carrier', 'external')),
    no_overdraft    boolean NOT NULL,
    debits_pending  bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted   bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted  bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT no_overdraft CHECK (NOT no_overdraft OR debits_pending + debits_posted <= credits_posted),
    CONSTRAINT only_external_may_overdraw CHECK (no_overdraft OR kind = 'external')
);
CREATE INDEX accounts_market ON accounts (market_id, kind);

CREATE TABLE transfers (
    id                text PRIMARY KEY,
    phase             text NOT NULL CHECK (phase IN ('single', 'pending', 'post', 'void')),
    debit_account_id  text NOT NULL REFERENCES accounts (id),
    credit_account_id text NOT NULL REFERENCES accounts (id),
    amount            bigint NOT NULL CHECK (amount > 0),
    pending_id        text REFERENCES transfers (id),
    code              text NOT NULL,
    deal_id           text,
    market_id         text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((phase IN ('post', 'void')) = (pending_id IS NOT NULL))
);
CREATE UNIQUE INDEX transfers_one_resolution_per_hold ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE UNIQUE INDEX transfers_one_hold_per_deal ON transfers (deal_id) WHERE phase = 'pending';
CREATE UNIQUE INDEX transfers_one_payout_per_deal ON transfers (deal_id, code)
    WHERE code IN ('release', 'fee', 'shipping');
CREATE INDEX transfers_deal ON transfers (deal_id);

CREATE FUNCTION transfers_are_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transfers are insert-only (% on %)', TG_OP, OLD.id;
END
$$;
CREATE TRIGGER transfers_insert_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION transfers_are_insert_only();

CREATE TABLE wallets (
    market_id                text NOT NULL,
    principal_id             text NOT NULL,
    account_id               text NOT NULL REFERENCES accounts (id),
    auto_approve_limit_cents bigint NOT NULL CHECK (auto_approve_limit_cents >= 0),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, principal_id)
);
