-- The DHCP server keeps subnets, reservations, the boot facts of known MACs and the leases of the
-- subnets it serves in memory (docs/decisions/0008-dhcp-lease-engine.md). A change made anywhere
-- else is announced on the channel `fulcrum_dhcp` with the table's name as payload, and the
-- server reloads that part. NOTIFY is delivered on commit and folds duplicates within a
-- transaction, so a statement-level trigger costs one notification per changed table per commit.
-- The DHCP server's own lease writes (INSERT/UPDATE) do not notify: only deletions come from elsewhere.
CREATE FUNCTION fulcrum_dhcp_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('fulcrum_dhcp', TG_TABLE_NAME);
  RETURN NULL;
END $$;

CREATE TRIGGER subnets_dhcp_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON subnets
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_dhcp_changed();
CREATE TRIGGER reservations_dhcp_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reservations
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_dhcp_changed();
CREATE TRIGGER node_macs_dhcp_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON node_macs
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_dhcp_changed();
CREATE TRIGGER nodes_dhcp_changed AFTER UPDATE OF bootenv OR DELETE ON nodes
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_dhcp_changed();
CREATE TRIGGER bootenvs_dhcp_changed AFTER INSERT OR UPDATE OF name, netboot OR DELETE ON bootenvs
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_dhcp_changed();

-- Deleted leases (the API, a deleted node's trigger) name their addresses, so the server re-reads
-- only those; more than 200 in one statement, or a TRUNCATE, make it re-read its subnets whole.
CREATE FUNCTION fulcrum_dhcp_leases_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  list text;
BEGIN
  SELECT count(*), string_agg(host(address), ',') INTO n, list FROM (SELECT address FROM gone LIMIT 201) g;
  IF n = 0 THEN RETURN NULL; END IF;
  PERFORM pg_notify('fulcrum_dhcp', CASE WHEN n > 200 THEN 'leases' ELSE 'leases:' || list END);
  RETURN NULL;
END $$;
CREATE TRIGGER leases_dhcp_deleted AFTER DELETE ON leases REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_dhcp_leases_deleted();
CREATE TRIGGER leases_dhcp_truncated AFTER TRUNCATE ON leases
  FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_dhcp_changed();
