-- Every replica must seal and open secrets with the same key (src/store/secrets.ts). The first
-- replica to use one records an HMAC of it here; a replica with another key refuses to seal or
-- open, saying so, instead of failing later on a secret it cannot read.
CREATE TABLE secret_key_check (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  mac         bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
