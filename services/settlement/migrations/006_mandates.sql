-- The last mandate settlement applied per principal and market, from mandate.commands: what a
-- later AssignMandate is judged against as an amendment (whose auto-approve limit then applies).
CREATE TABLE mandates (
    market_id    text NOT NULL,
    principal_id text NOT NULL,
    mandate      jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, principal_id)
);
