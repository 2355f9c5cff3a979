-- An outside agent may sell: a seller has one thread per buyer on each of its listings, so a
-- negotiation is named by `neg_id` ('b|<listing>' for a buyer's, 's|<thread>' for a seller's).
ALTER TABLE negotiations ADD COLUMN role text NOT NULL DEFAULT 'buyer' CHECK (role IN ('buyer', 'seller'));
ALTER TABLE negotiations ADD COLUMN neg_id text;
UPDATE negotiations SET neg_id = 'b|' || listing_id;
ALTER TABLE negotiations ALTER COLUMN neg_id SET NOT NULL;
ALTER TABLE negotiations DROP CONSTRAINT negotiations_pkey;
ALTER TABLE negotiations ADD PRIMARY KEY (agent_id, neg_id);
CREATE UNIQUE INDEX negotiations_buying ON negotiations (agent_id, listing_id) WHERE role = 'buyer';
ALTER TABLE negotiations ALTER COLUMN want_id DROP NOT NULL;
ALTER TABLE deals ADD COLUMN role text NOT NULL DEFAULT 'buyer' CHECK (role IN ('buyer', 'seller'));
