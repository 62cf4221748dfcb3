-- The agent (DESIGN.md §3): a job run on a node is claimed by that node's agent when it fetches it.
ALTER TABLE jobs ADD COLUMN claimed_at timestamptz;
CREATE INDEX jobs_claimable ON jobs (node_id) WHERE state = 'running' AND claimed_at IS NULL;
-- Machine identity found at registration, for finding a machine again.
ALTER TABLE nodes ADD COLUMN machine_uuid text;
CREATE UNIQUE INDEX nodes_machine_uuid ON nodes (machine_uuid) WHERE machine_uuid IS NOT NULL;
