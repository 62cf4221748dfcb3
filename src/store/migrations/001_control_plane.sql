-- The control plane: the orchestration model (DESIGN.md §2), the annealer's jobs,
-- the event outbox, users and tokens. Names follow the glossary in STYLE.md.

CREATE TABLE settings (
  key   text PRIMARY KEY,
  value jsonb NOT NULL
);

CREATE TABLE deployments (
  id          bigserial PRIMARY KEY,
  uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  parent_id   bigint REFERENCES deployments(id),
  system      boolean NOT NULL DEFAULT false,
  state       text NOT NULL DEFAULT 'proposed' CHECK (state IN ('proposed', 'committed')),
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (system OR parent_id IS NOT NULL)
);
-- Exactly one root: the system deployment.
CREATE UNIQUE INDEX deployments_one_system ON deployments ((true)) WHERE system;

CREATE TABLE nodes (
  id            bigserial PRIMARY KEY,
  uuid          uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name          text NOT NULL UNIQUE CHECK (name = lower(name)),
  description   text NOT NULL DEFAULT '',
  alive         boolean NOT NULL DEFAULT false,
  available     boolean NOT NULL DEFAULT true,
  bootenv       text NOT NULL DEFAULT 'discovery',
  provider      text NOT NULL DEFAULT 'metal',
  deployment_id bigint NOT NULL REFERENCES deployments(id),
  admin         boolean NOT NULL DEFAULT false,
  -- The per-deployment pseudo-node that carries service roles.
  service       boolean NOT NULL DEFAULT false,
  inventory     jsonb NOT NULL DEFAULT '{}',
  hints         jsonb NOT NULL DEFAULT '{}',
  version       integer NOT NULL DEFAULT 1,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_deployment ON nodes (deployment_id);

CREATE TABLE roles (
  id            bigserial PRIMARY KEY,
  uuid          uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name          text NOT NULL UNIQUE,
  description   text NOT NULL DEFAULT '',
  content_pack  text,
  jig           text NOT NULL DEFAULT 'noop',
  jig_config    jsonb NOT NULL DEFAULT '{}',
  requires      text[] NOT NULL DEFAULT '{}',
  wants_attribs text[] NOT NULL DEFAULT '{}',
  preceeds      text[] NOT NULL DEFAULT '{}',
  provides      text[] NOT NULL DEFAULT '{}',
  conflicts     text[] NOT NULL DEFAULT '{}',
  flags         text[] NOT NULL DEFAULT '{}',
  template      jsonb NOT NULL DEFAULT '{}',
  cohort        integer NOT NULL DEFAULT 0,
  timeout_s     integer NOT NULL DEFAULT 1800 CHECK (timeout_s > 0),
  retry_count   integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  retry_backoff_s integer NOT NULL DEFAULT 30 CHECK (retry_backoff_s >= 0),
  version       integer NOT NULL DEFAULT 1,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE attribs (
  id          bigserial PRIMARY KEY,
  uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  -- NULL: a node-scoped attrib; otherwise the role that owns (provides) it.
  role_id     bigint REFERENCES roles(id) ON DELETE CASCADE,
  map         text NOT NULL,
  schema      jsonb NOT NULL DEFAULT '{}',
  secret      boolean NOT NULL DEFAULT false,
  content_pack text,
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE profiles (
  id          bigserial PRIMARY KEY,
  uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  -- attrib name -> value
  values      jsonb NOT NULL DEFAULT '{}',
  content_pack text,
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE node_profiles (
  node_id    bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  profile_id bigint NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
  position   integer NOT NULL DEFAULT 0,
  PRIMARY KEY (node_id, profile_id)
);

CREATE TABLE deployment_roles (
  id             bigserial PRIMARY KEY,
  uuid           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  deployment_id  bigint NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
  role_id        bigint NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
  proposed_data  jsonb NOT NULL DEFAULT '{}',
  committed_data jsonb NOT NULL DEFAULT '{}',
  wall           jsonb NOT NULL DEFAULT '{}',
  version        integer NOT NULL DEFAULT 1,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (deployment_id, role_id)
);

CREATE TABLE noderoles (
  id             bigserial PRIMARY KEY,
  uuid           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  node_id        bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  role_id        bigint NOT NULL REFERENCES roles(id),
  deployment_id  bigint NOT NULL REFERENCES deployments(id),
  state          text NOT NULL DEFAULT 'PROPOSED'
                 CHECK (state IN ('PROPOSED', 'TODO', 'TRANSITION', 'ACTIVE', 'ERROR', 'BLOCKED')),
  -- Why a BLOCKED noderole waits: {"kind": "parent-not-active"|"error", "noderole": id}.
  blocked_by     jsonb,
  cohort         integer NOT NULL DEFAULT 0,
  proposed_data  jsonb NOT NULL DEFAULT '{}',
  committed_data jsonb NOT NULL DEFAULT '{}',
  sys_data       jsonb NOT NULL DEFAULT '{}',
  wall           jsonb NOT NULL DEFAULT '{}',
  run_count      integer NOT NULL DEFAULT 0,
  runlog         text NOT NULL DEFAULT '',
  -- consecutive failed runs, for automatic retry with backoff
  failures       integer NOT NULL DEFAULT 0,
  retry_at       timestamptz,
  version        integer NOT NULL DEFAULT 1,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (node_id, role_id)
);
CREATE INDEX noderoles_deployment ON noderoles (deployment_id);
CREATE INDEX noderoles_role ON noderoles (role_id);
CREATE INDEX noderoles_todo ON noderoles (cohort, id) WHERE state = 'TODO';
CREATE INDEX noderoles_retry ON noderoles (retry_at) WHERE retry_at IS NOT NULL;

-- Edges of the noderole graph. 'hard' edges come from requires/wants-attribs
-- (the child waits for the parent); 'soft' edges from preceeds (ordering only).
CREATE TABLE noderole_edges (
  parent_id bigint NOT NULL REFERENCES noderoles(id) ON DELETE CASCADE,
  child_id  bigint NOT NULL REFERENCES noderoles(id) ON DELETE CASCADE,
  kind      text NOT NULL CHECK (kind IN ('hard', 'soft')),
  PRIMARY KEY (parent_id, child_id),
  CHECK (parent_id <> child_id)
);
CREATE INDEX noderole_edges_child ON noderole_edges (child_id);

CREATE TABLE replicas (
  id           text PRIMARY KEY,
  hostname     text NOT NULL,
  pid          integer NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- One row per run of a noderole. The partial unique index is rule 2 of the
-- annealer: at most one running job per node, whatever replica started it.
CREATE TABLE jobs (
  id           bigserial PRIMARY KEY,
  noderole_id  bigint NOT NULL REFERENCES noderoles(id) ON DELETE CASCADE,
  node_id      bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  deployment_id bigint NOT NULL,
  role_id      bigint NOT NULL,
  jig          text NOT NULL,
  state        text NOT NULL DEFAULT 'running'
               CHECK (state IN ('running', 'succeeded', 'failed', 'skipped', 'cancelled')),
  input        jsonb NOT NULL DEFAULT '{}',
  output       jsonb,
  log          text NOT NULL DEFAULT '',
  message      text,
  owner        text,
  async        boolean NOT NULL DEFAULT false,
  started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at  timestamptz,
  deadline_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX jobs_one_running_per_node ON jobs (node_id) WHERE state = 'running';
CREATE INDEX jobs_running ON jobs (deadline_at) WHERE state = 'running';
CREATE INDEX jobs_noderole ON jobs (noderole_id);

-- The outbox: every change is an event written in the changing transaction.
-- txid lets readers consume exactly the events of finished transactions.
CREATE TABLE events (
  id            bigserial PRIMARY KEY,
  txid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
  type          text NOT NULL,
  object_kind   text NOT NULL,
  object_id     bigint,
  deployment_id bigint,
  node_id       bigint,
  payload       jsonb NOT NULL DEFAULT '{}',
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_txid ON events (txid, id);

-- Where a leader-only consumer (role hooks, webhooks) has read the event stream up to.
CREATE TABLE event_cursors (
  name text PRIMARY KEY,
  txid xid8 NOT NULL
);

CREATE TABLE users (
  id            bigserial PRIMARY KEY,
  uuid          uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name          text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  capabilities  text[] NOT NULL DEFAULT '{}',
  version       integer NOT NULL DEFAULT 1,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tokens (
  id           bigserial PRIMARY KEY,
  user_id      bigint REFERENCES users(id) ON DELETE CASCADE,
  node_id      bigint REFERENCES nodes(id) ON DELETE CASCADE,
  name         text NOT NULL DEFAULT '',
  -- sha256 of the token; the token itself is shown once and never stored
  hash         text NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  CHECK ((user_id IS NULL) <> (node_id IS NULL))
);

CREATE TABLE webhooks (
  id          bigserial PRIMARY KEY,
  uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE,
  url         text NOT NULL,
  secret      text NOT NULL,
  types       text[] NOT NULL DEFAULT '{}',
  active      boolean NOT NULL DEFAULT true,
  max_attempts integer NOT NULL DEFAULT 8,
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
  id              bigserial PRIMARY KEY,
  webhook_id      bigint NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  event_id        bigint NOT NULL REFERENCES events(id) ON DELETE CASCADE,
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

CREATE TABLE content_packs (
  name        text PRIMARY KEY,
  version     text NOT NULL,
  description text NOT NULL DEFAULT '',
  digest      text NOT NULL,
  manifest    jsonb NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now()
);
