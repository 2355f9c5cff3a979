-- A market's phase (haggle.contracts.market.LIFECYCLE) and when this service saw it change.
ALTER TABLE market_rules
    ADD COLUMN phase text NOT NULL DEFAULT 'open' CHECK (phase IN ('open', 'closing', 'closed')),
    ADD COLUMN closing_at timestamptz,
    ADD COLUMN closed_at timestamptz;
