-- Two reads that scanned more rows than they need, found with pg_stat_statements in a 500 x 3,000
-- market (2026-12-07), where PostgreSQL shared two busy cores with everything else:
-- * a buyer's fulfilled wants (asked for every buyer a new listing may suit: 86,000 times in four
--   minutes, 1.2 ms each) scanned every deal of every market;
CREATE INDEX deals_principal ON deals (principal_id);
-- * a want's shortlist (115,000 times, 2.3 ms each) read every live negotiation of the principal,
--   both sides, to keep one want's.
CREATE INDEX negotiations_want ON negotiations (principal_id, want_id, status);
