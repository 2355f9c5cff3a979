-- Where a deal's parcel goes: the buyer's address sealed for this deal under the shipping key
-- (never in clear), until the forward label is booked and sent back sealed for the seller.
CREATE TABLE ship_to (
    deal_id        text PRIMARY KEY,
    market_id      text NOT NULL,
    sealed_address text NOT NULL,
    label_sent_at  timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
