-- A listing is considered for every admitted buyer whose wants could match its category
-- (`store.admitted_buyers`). That read unpacked every principal's mandate (a few KB of jsonb,
-- stored compressed out of line) to test the wants' categories, then shipped each matching mandate
-- to the service again, for every listing: 14-15 ms a call and ~1 MB in a 500 x 3,000 market
-- (pg_stat_statements, 2026-12-07), ~45 s of PostgreSQL's time.
--
-- want_categories: the categories the wants could match (`Mandate.categories_wanted`), NULL when
-- a want takes any category. mandate_version: bumped with every new mandate, so a service may keep
-- a mandate it parsed and ask only for the ones it has not seen.
ALTER TABLE principals
    ADD COLUMN want_categories text[],
    ADD COLUMN mandate_version integer NOT NULL DEFAULT 1;

UPDATE principals SET want_categories = CASE
    WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(mandate->'wants') w WHERE w->>'category' IS NULL)
    THEN NULL
    ELSE ARRAY(SELECT DISTINCT w->>'category' FROM jsonb_array_elements(mandate->'wants') w)
END;
