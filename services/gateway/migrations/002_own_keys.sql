-- An external agent may sign for itself: then the gateway keeps no private key and no API key,
-- only the agent's public key and the last seq it signed (a replay is refused).
ALTER TABLE principals ALTER COLUMN private_key DROP NOT NULL;
ALTER TABLE principals ALTER COLUMN api_key_sha256 DROP NOT NULL;
ALTER TABLE principals ADD COLUMN public_key text;
ALTER TABLE principals ADD COLUMN last_signed_seq bigint NOT NULL DEFAULT 0;
