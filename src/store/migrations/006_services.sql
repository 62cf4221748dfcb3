-- The service registry (DESIGN.md §4 "Service registry"): where nodes find NTP, DNS, the API,
-- the provisioner, log collectors... Internal rows are written by each server replica at start
-- and go with it (a replica removed as dead takes its rows along); external rows are the
-- operator's, and for a name they exist under they win over the internal ones.
CREATE TABLE services (
  id          bigserial PRIMARY KEY,
  uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]*$'),
  source      text NOT NULL CHECK (source IN ('internal', 'external')),
  replica_id  text REFERENCES replicas(id) ON DELETE CASCADE,
  addresses   text[] NOT NULL CHECK (cardinality(addresses) > 0),
  port        integer CHECK (port BETWEEN 1 AND 65535),
  url         text,
  description text NOT NULL DEFAULT '',
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((source = 'internal') = (replica_id IS NOT NULL))
);
CREATE UNIQUE INDEX services_external_name ON services (name) WHERE source = 'external';
CREATE UNIQUE INDEX services_internal_name ON services (name, replica_id) WHERE source = 'internal';
