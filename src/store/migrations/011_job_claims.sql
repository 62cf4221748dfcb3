-- A job handed to an agent is claimed by that request's token; the agent confirms it before it
-- runs anything. A claim not confirmed within seconds (the bundle went to a request whose machine
-- had lost power, say) is released and another request of the node may take the job.
ALTER TABLE jobs ADD COLUMN claimed_by bigint;
ALTER TABLE jobs ADD COLUMN acked_at timestamptz;
