-- The rules and phase of every market the agents trade in (from market.events).
CREATE TABLE market_rules (
    market_id text PRIMARY KEY,
    rules     jsonb NOT NULL,
    phase     text NOT NULL DEFAULT 'open' CHECK (phase IN ('open', 'closing', 'closed')),
    closing_at timestamptz,
    closed_at timestamptz
);

-- A purchase the principal denied, or never answered: that listing is not bought again, and the
-- want it was for is bought from then on only within the auto-approve limit (no approval needed).
ALTER TABLE principals
    ADD COLUMN refused_listings text[] NOT NULL DEFAULT '{}',
    ADD COLUMN refused_wants text[] NOT NULL DEFAULT '{}';
