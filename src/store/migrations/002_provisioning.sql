-- The provisioning plane (DESIGN.md §3): DHCP subnets, reservations and leases; bootenvs;
-- the MAC addresses that identify a node on the network.

CREATE TABLE node_macs (
  mac     macaddr PRIMARY KEY,
  node_id bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE
);
CREATE INDEX node_macs_node ON node_macs (node_id);

CREATE TABLE subnets (
  id             bigserial PRIMARY KEY,
  uuid           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name           text NOT NULL UNIQUE,
  cidr           cidr NOT NULL,
  -- The server's own address on a directly attached segment; NULL for subnets reached by relays.
  server_address inet,
  -- proxyDHCP: answer PXE clients with boot information only, never with an address.
  proxy          boolean NOT NULL DEFAULT false,
  -- [{"first": "10.0.0.100", "last": "10.0.0.200"}]
  pools          jsonb NOT NULL DEFAULT '[]',
  routers        inet[] NOT NULL DEFAULT '{}',
  dns            inet[] NOT NULL DEFAULT '{}',
  ntp            inet[] NOT NULL DEFAULT '{}',
  domain         text,
  lease_time_s   integer NOT NULL DEFAULT 3600 CHECK (lease_time_s >= 60),
  offer_hold_s   integer NOT NULL DEFAULT 10 CHECK (offer_hold_s > 0),
  probe          boolean NOT NULL DEFAULT true,
  probe_timeout_ms integer NOT NULL DEFAULT 300 CHECK (probe_timeout_ms BETWEEN 10 AND 5000),
  -- Extra options: name or code -> value; string values are Liquid templates rendered per request.
  options        jsonb NOT NULL DEFAULT '{}',
  enabled        boolean NOT NULL DEFAULT true,
  version        integer NOT NULL DEFAULT 1,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reservations (
  id         bigserial PRIMARY KEY,
  uuid       uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  mac        macaddr NOT NULL UNIQUE,
  subnet_id  bigint NOT NULL REFERENCES subnets(id) ON DELETE CASCADE,
  address    inet NOT NULL,
  hostname   text,
  options    jsonb NOT NULL DEFAULT '{}',
  node_id    bigint REFERENCES nodes(id) ON DELETE CASCADE,
  version    integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subnet_id, address)
);

-- One row per address ever handed out. 'offered' rows are short holds; 'declined' rows keep an
-- address out of use until they expire.
CREATE TABLE leases (
  id         bigserial PRIMARY KEY,
  subnet_id  bigint NOT NULL REFERENCES subnets(id) ON DELETE CASCADE,
  address    inet NOT NULL UNIQUE,
  mac        macaddr,
  client_id  text,
  hostname   text,
  state      text NOT NULL CHECK (state IN ('offered', 'bound', 'released', 'declined', 'expired')),
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leases_mac ON leases (mac);
CREATE INDEX leases_subnet_expiry ON leases (subnet_id, expires_at);

CREATE TABLE bootenvs (
  id              bigserial PRIMARY KEY,
  uuid            uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name            text NOT NULL UNIQUE,
  description     text NOT NULL DEFAULT '',
  -- false: a node in this bootenv boots from its disk; DHCP gives it no boot file.
  netboot         boolean NOT NULL DEFAULT true,
  kernel          text,
  initrds         text[] NOT NULL DEFAULT '{}',
  -- Liquid template of the kernel command line.
  boot_params     text NOT NULL DEFAULT '',
  -- [{"path": "ipxe", "contents": "<Liquid template>"}]: per-node files served under the node's path.
  templates       jsonb NOT NULL DEFAULT '[]',
  required_params text[] NOT NULL DEFAULT '{}',
  content_pack    text,
  version         integer NOT NULL DEFAULT 1,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
