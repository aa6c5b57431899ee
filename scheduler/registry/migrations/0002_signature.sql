-- A member's signature of its row: HMAC-SHA256 under the cluster key
-- (cluster.key_file), over the cluster, name, boot id, URLs, address, ports, id and
-- registration time (scheduler/registry/_trust.py). NULL for a member without a key.
-- Readers with the key ignore rows whose signature does not verify.
ALTER TABLE schedulers ADD COLUMN signature text;
