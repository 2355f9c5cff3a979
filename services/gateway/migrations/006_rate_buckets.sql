-- Rate limits per API key or agent, shared by every gateway instance: one token bucket a row,
-- refilled by the database's clock. A token taken inside a move's transaction that rolls back is
-- given back by the rollback itself.
CREATE TABLE rate_buckets (
    scope      text NOT NULL,
    key        text NOT NULL,
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
