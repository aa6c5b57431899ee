-- The schedulers of every cluster: one row per registration (process start).
--
-- A row is *active* when state = 'active' AND lease_expires_at > now(), with now()
-- the database's clock: a row whose lease ran out is inactive by definition, so no
-- cleanup job has to run for correctness. The partial unique index below allows at
-- most one row flagged 'active' per (cluster_id, name); registration, renewal and
-- offlining never set a row back to 'active', so a name's history is a chain of
-- ended rows and at most one live one.
CREATE TABLE schedulers (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id       text        NOT NULL CHECK (cluster_id <> ''),
    name             text        NOT NULL CHECK (name <> ''),
    boot_id          text        NOT NULL,
    -- The peers' WebSocket URL and the admin API's URL, as other machines reach them.
    url              text        NOT NULL,
    admin_url        text,
    address          text        NOT NULL,
    port             integer     NOT NULL CHECK (port BETWEEN 0 AND 65535),
    admin_port       integer     CHECK (admin_port BETWEEN 0 AND 65535),
    state            text        NOT NULL DEFAULT 'active'
                     CHECK (state IN ('active', 'offline', 'superseded', 'expired')),
    lease_seconds    double precision NOT NULL CHECK (lease_seconds > 0),
    registered_at    timestamptz NOT NULL DEFAULT now(),
    renewed_at       timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz NOT NULL,
    ended_at         timestamptz,
    -- The registration that took this name over, when state = 'superseded'.
    superseded_by    bigint REFERENCES schedulers (id) ON DELETE SET NULL,
    CHECK ((state = 'active') = (ended_at IS NULL))
);

CREATE UNIQUE INDEX schedulers_one_active_per_name
    ON schedulers (cluster_id, name) WHERE state = 'active';

CREATE INDEX schedulers_active_by_cluster
    ON schedulers (cluster_id, lease_expires_at) WHERE state = 'active';
