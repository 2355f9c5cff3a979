-- Why the guard refused the proposals before the move that left: the market report counts them.
ALTER TABLE moves ADD COLUMN refusal_reasons text[] NOT NULL DEFAULT '{}';
CREATE INDEX moves_principal ON moves (principal_id);
