-- Tokens a model used, one row per decision that asked one, by agent negotiation (principal, listing).
-- micro_dollars is the estimate from the price table in services/agents/brains/model_calls.py.
CREATE TABLE model_usage (
    id                 bigserial PRIMARY KEY,
    principal_id       text NOT NULL,
    listing_id         text NOT NULL,
    model              text NOT NULL,
    input_tokens       bigint NOT NULL,
    output_tokens      bigint NOT NULL,
    cache_read_tokens  bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    micro_dollars      bigint NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_usage_principal ON model_usage (principal_id, listing_id);
