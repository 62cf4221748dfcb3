-- Networks and addresses (DESIGN.md §4, docs/networks.md): networks with their conduit, VLAN,
-- bridge and team settings; ranges of addresses; one router per network; allocations of addresses
-- to nodes. The DNS server reads network_allocations for A/AAAA/PTR records.

CREATE TABLE networks (
  id          bigserial PRIMARY KEY,
  uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]*$'),
  description text NOT NULL DEFAULT '',
  category    text NOT NULL CHECK (category ~ '^[a-z0-9][a-z0-9-]*$'),
  -- Conduit: the logical interface spec (`1g0`, `10g0,10g1`, `raw:eth3`), resolved per node.
  conduit     text NOT NULL,
  vlan        integer NOT NULL DEFAULT 0 CHECK (vlan BETWEEN 0 AND 4094),
  use_vlan    boolean NOT NULL DEFAULT false,
  use_bridge  boolean NOT NULL DEFAULT false,
  -- Linux bonding mode 0-6 (balance-rr .. balance-alb), used when use_team.
  team_mode   integer NOT NULL DEFAULT 5 CHECK (team_mode BETWEEN 0 AND 6),
  use_team    boolean NOT NULL DEFAULT false,
  -- false: Fulcrum allocates and names addresses but does not configure nodes' interfaces.
  configure   boolean NOT NULL DEFAULT true,
  -- NULL (no IPv6), 'auto' (cluster ULA /48 + network id) or an explicit /64.
  v6prefix    text,
  content_pack text,
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (NOT use_vlan OR vlan BETWEEN 1 AND 4094),
  -- The network id is the 16-bit subnet id of an auto IPv6 prefix.
  CHECK (id < 65536)
);

CREATE TABLE network_ranges (
  id                 bigserial PRIMARY KEY,
  uuid               uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  network_id         bigint NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  name               text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]*$'),
  -- Both carry the subnet's prefix length (10.0.0.10/24).
  first              inet NOT NULL,
  last               inet NOT NULL,
  -- Bound leases: static addresses of known nodes; anonymous leases: dynamic DHCP.
  allow_bound_leases boolean NOT NULL DEFAULT true,
  allow_anon_leases  boolean NOT NULL DEFAULT false,
  bound_lease_time   integer NOT NULL DEFAULT 2592000 CHECK (bound_lease_time >= 60),
  anon_lease_time    integer NOT NULL DEFAULT 60 CHECK (anon_lease_time >= 60),
  version            integer NOT NULL DEFAULT 1,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (network_id, name),
  CHECK (family(first) = family(last) AND masklen(first) = masklen(last) AND network(first) = network(last)),
  CHECK (host(first)::inet <= host(last)::inet)
);

CREATE TABLE network_routers (
  id         bigserial PRIMARY KEY,
  network_id bigint NOT NULL UNIQUE REFERENCES networks(id) ON DELETE CASCADE,
  address    inet NOT NULL,
  -- Lowest preference among a node's networks gives its default route.
  pref       integer NOT NULL DEFAULT 65536 CHECK (pref >= 0),
  version    integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE network_allocations (
  id         bigserial PRIMARY KEY,
  uuid       uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  node_id    bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  network_id bigint NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  -- NULL for a computed address (IPv6 from the network's v6prefix and the node's FQDN).
  range_id   bigint REFERENCES network_ranges(id) ON DELETE CASCADE,
  -- With the prefix length of its subnet (10.0.0.10/24, fd12:...:1/64).
  address    inet NOT NULL,
  version    integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Never one address twice in a network (the concurrency backstop; allocation also locks the range).
CREATE UNIQUE INDEX network_allocations_address ON network_allocations (network_id, host(address));
-- One address per family per node per network.
CREATE UNIQUE INDEX network_allocations_node ON network_allocations (node_id, network_id, family(address));
CREATE INDEX network_allocations_range ON network_allocations (range_id);

-- A node's admin address is reserved for every one of its MACs (docs/networks.md "DHCP sync"):
-- one address may then appear once per MAC of the same node, never for two nodes (or for a node
-- and a reservation made by hand).
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE reservations DROP CONSTRAINT reservations_subnet_id_address_key;
ALTER TABLE reservations ADD CONSTRAINT reservations_one_holder
  EXCLUDE USING gist (subnet_id WITH =, address WITH =, (COALESCE(node_id, -id)) WITH <>);

-- A deleted node leaves no lease behind: before its MACs and reservations cascade away, the leases
-- of its MACs and of its reserved addresses go too (whatever path deletes the node).
CREATE FUNCTION fulcrum_node_leases_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM leases WHERE mac IN (SELECT mac FROM node_macs WHERE node_id = OLD.id)
     OR address IN (SELECT address FROM reservations WHERE node_id = OLD.id);
  RETURN OLD;
END $$;
CREATE TRIGGER nodes_delete_leases BEFORE DELETE ON nodes FOR EACH ROW EXECUTE FUNCTION fulcrum_node_leases_delete();

-- A change of a node's MACs is an event (node.macs), whatever path made it (the node API, agent
-- registration): the networks module answers it by redoing the node's DHCP reservations.
CREATE FUNCTION fulcrum_node_macs_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO events (type, object_kind, object_id, node_id, payload)
  SELECT 'node.macs', 'node', c.node_id, c.node_id, '{}'::jsonb FROM (SELECT DISTINCT node_id FROM changed_rows) c
   WHERE EXISTS (SELECT 1 FROM nodes WHERE id = c.node_id);
  PERFORM pg_notify('fulcrum', '');
  RETURN NULL;
END $$;
CREATE TRIGGER node_macs_added AFTER INSERT ON node_macs REFERENCING NEW TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_node_macs_event();
CREATE TRIGGER node_macs_removed AFTER DELETE ON node_macs REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_node_macs_event();
