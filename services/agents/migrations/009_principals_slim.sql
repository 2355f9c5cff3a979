-- A listing is considered for every admitted buyer whose wants could match its category
-- (`store.admitted_buyers`). That read unpacked every principal's mandate (a few KB of jsonb,
-- stored compressed out of line) to test the wants' categories, then shipped each matching mandate
-- to the service again, for every listing: 14-15 ms a call and ~1 MB in a 500 x 3,000 market
-- (pg_stat_statements, 2026-12-07), ~45 s of PostgreSQL's time.
--
-- want_categories: the categories the wants could match (`Mandate.categories_wanted`), NULL when
-- a want takes any category. mandate_tag: new with every mandate written, so a service may keep a
-- mandate it parsed and ask only for the ones it has not seen. A random tag rather than a counter:
-- a principal of the same id in another database or schema (a test's, a restored backup) never
-- shares one.
ALTER TABLE principals
    ADD COLUMN want_categories text[],
    ADD COLUMN mandate_tag uuid NOT NULL DEFAULT gen_random_uuid();

UPDATE principals SET want_categories = CASE
    WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(mandate->'wants') w WHERE w->>'category' IS NULL)
    THEN NULL
    ELSE ARRAY(SELECT DISTINCT w->>'category' FROM jsonb_array_elements(mandate->'wants') w)
END;

-- A market's principals, admitted or not (the market view's `market_counts`, the openings ended
-- at the close): the only index was of the admitted ones, so these read every principal of every
-- market, and principals' rows are rewritten with every signed command (next_seq).
CREATE INDEX principals_market_all ON principals (market_id);
