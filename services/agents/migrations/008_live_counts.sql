-- The market view (`store.market_counts`), which `haggle market run` asks again and again to
-- know when trading is over, counted a market's live negotiations by walking every principal's
-- negotiations, ended ones included: 220-340 ms a call in a 500 x 3,000 market (EXPLAIN ANALYZE,
-- 2026-12-07), on a machine whose two cores were already busy. The live ones and the deals still
-- settling are few at any time: these indexes hold only them.
CREATE INDEX negotiations_live ON negotiations (principal_id, status) WHERE status IN ('opening', 'open');
CREATE INDEX deals_agreed ON deals (principal_id) WHERE status = 'agreed';
