-- How many listings of a market the agents have read (the market's /markets/{id} view, asked
-- every half second while a market runs): an index lookup, not a scan of every market's listings.
CREATE INDEX listings_seen_market ON listings_seen (market_id);
