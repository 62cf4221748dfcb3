-- Names (DESIGN.md layer 6, docs/dns.md): the zones Fulcrum serves, the name filters that turn
-- node addresses into records, records an operator adds by hand, and RFC 2136 push targets.

CREATE TABLE dns_zones (
  id           bigserial PRIMARY KEY,
  uuid         uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  -- Canonical: lower case, no trailing dot ("cluster.example", "0.10.in-addr.arpa").
  name         text NOT NULL UNIQUE CHECK (name = lower(name) AND name !~ '\.$' AND name <> ''),
  kind         text NOT NULL CHECK (kind IN ('forward', 'reverse')),
  description  text NOT NULL DEFAULT '',
  ttl          integer NOT NULL DEFAULT 300 CHECK (ttl BETWEEN 0 AND 2147483647),
  primary_ns   text NOT NULL,
  -- RNAME as a name: hostmaster.cluster.example
  admin_email  text NOT NULL,
  -- NS records of the zone; addresses of in-zone name servers become their A/AAAA records.
  nameservers  text[] NOT NULL DEFAULT '{}',
  ns_addresses inet[] NOT NULL DEFAULT '{}',
  refresh      integer NOT NULL DEFAULT 3600 CHECK (refresh > 0),
  retry        integer NOT NULL DEFAULT 600 CHECK (retry > 0),
  expire       integer NOT NULL DEFAULT 604800 CHECK (expire > 0),
  minimum      integer NOT NULL DEFAULT 60 CHECK (minimum >= 0),
  -- Bumped whenever the zone's records change (compared by content_hash), by whichever replica
  -- sees the change first: the UPDATE is conditional on the old hash.
  serial       bigint NOT NULL DEFAULT 1 CHECK (serial BETWEEN 1 AND 4294967295),
  content_hash text NOT NULL DEFAULT '',
  version      integer NOT NULL DEFAULT 1,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dns_name_filters (
  id          bigserial PRIMARY KEY,
  uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  zone_id     bigint NOT NULL REFERENCES dns_zones(id) ON DELETE CASCADE,
  -- {"network": "admin", "category": "admin", "range": "host", "deployment": "prod", "role": "etcd",
  --  "attrib": {"name": "...", "value": ...}}: every given key must match (see dns/filters.ts).
  match       jsonb NOT NULL DEFAULT '{}',
  -- Liquid, rendered per (node, address); relative to the zone unless it ends with a dot.
  template    text NOT NULL,
  -- Also publish PTR records for the addresses (in the reverse zones that hold them).
  ptr         boolean NOT NULL DEFAULT true,
  ttl         integer CHECK (ttl BETWEEN 0 AND 2147483647),
  enabled     boolean NOT NULL DEFAULT true,
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dns_name_filters_zone ON dns_name_filters (zone_id);

CREATE TABLE dns_records (
  id         bigserial PRIMARY KEY,
  uuid       uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  zone_id    bigint NOT NULL REFERENCES dns_zones(id) ON DELETE CASCADE,
  -- Canonical absolute name inside the zone.
  name       text NOT NULL CHECK (name = lower(name)),
  type       text NOT NULL CHECK (type IN ('A', 'AAAA', 'NS', 'CNAME', 'PTR', 'SRV', 'TXT')),
  ttl        integer CHECK (ttl BETWEEN 0 AND 2147483647),
  -- Presentation format ("10 5 2379 etcd-1.cluster.example.").
  data       text NOT NULL,
  version    integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (name, type, data)
);
CREATE INDEX dns_records_zone ON dns_records (zone_id);

CREATE TABLE dns_push_targets (
  id             bigserial PRIMARY KEY,
  uuid           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name           text NOT NULL UNIQUE,
  zone_id        bigint NOT NULL REFERENCES dns_zones(id) ON DELETE CASCADE,
  -- The primary server accepting RFC 2136 updates: "192.0.2.53:53" or "[2001:db8::53]:53".
  server         text NOT NULL,
  tsig_name      text,
  tsig_algorithm text NOT NULL DEFAULT 'hmac-sha256' CHECK (tsig_algorithm IN ('hmac-sha256', 'hmac-sha512', 'hmac-sha1')),
  -- base64; never shown by the API.
  tsig_secret    text,
  enabled        boolean NOT NULL DEFAULT true,
  -- What was last pushed ([name, type, data] triples), to delete what disappears.
  pushed         jsonb NOT NULL DEFAULT '[]',
  pushed_hash    text NOT NULL DEFAULT '',
  last_push_at   timestamptz,
  last_error     text,
  version        integer NOT NULL DEFAULT 1,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  CHECK ((tsig_name IS NULL) = (tsig_secret IS NULL))
);
