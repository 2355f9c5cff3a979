-- Settlement outcomes that arrived before the deal they settle (negotiation.events and
-- settlement.events are separate topics, read by separate consumers): kept until DealAgreed
-- comes, then applied right after the reservation, so no listing stays reserved for good.
CREATE TABLE early_outcomes (
    deal_id    text NOT NULL,
    listing_id text NOT NULL,
    event_type text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deal_id, listing_id)
);
