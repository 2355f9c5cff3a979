-- Search without text orders by created_at DESC: without these, a market-wide or category
-- browse sorts every matching row before LIMIT (300 ms at 1,000,000 listings, bench/scale.py).
CREATE INDEX listings_recent ON listings (market_id, status, created_at DESC, listing_id);
CREATE INDEX listings_category_recent ON listings (market_id, status, category, created_at DESC, listing_id);
