-- Power control per node (docs/power.md): which driver reaches its BMC or VM, the settings without
-- secrets, and the secrets sealed by the server (src/store/secrets.ts). The last state a driver
-- confirmed is kept for lists and the UI; it is a cache, the BMC is the truth.
CREATE TABLE node_power (
  node_id        bigint PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
  driver         text NOT NULL CHECK (driver IN ('ipmi', 'redfish', 'vm')),
  settings       jsonb NOT NULL,
  secrets        bytea,
  state          text CHECK (state IN ('on', 'off')),
  state_at       timestamptz,
  version        integer NOT NULL DEFAULT 1,
  updated_at     timestamptz NOT NULL DEFAULT now()
);
