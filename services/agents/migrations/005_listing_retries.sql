-- A listing to create again once the listing service knows our agent (it refused it as
-- unknown_agent): taken by the turn scheduler at due_at, never waited for in a transaction.
CREATE TABLE listing_retries (
    listing_id    text PRIMARY KEY,
    principal_id  text NOT NULL REFERENCES principals,
    item_id       text NOT NULL,
    attempts      int NOT NULL DEFAULT 0,
    due_at        timestamptz
);
CREATE INDEX listing_retries_due ON listing_retries (due_at) WHERE due_at IS NOT NULL;
