-- The DHCP lease engine writes one lease row per binding under load (decision 0008). The
-- (subnet_id, expires_at) index cost about 3 µs of PostgreSQL CPU per row written (and a non-HOT
-- update on every renewal, as expires_at changes) while nothing read it: the engine reads a
-- subnet's leases by address range (the address index), and expiry is decided in memory.
-- Deleting a subnet (rare) now scans the leases table for its cascade.
DROP INDEX IF EXISTS leases_subnet_expiry;
