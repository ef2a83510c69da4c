-- 0006_agents: the fleet roster. One row per worker, keyed by (tenant_id,
-- agent_id) with NULL tenant a group of its own, upserted by every
-- POST /v1/agents/heartbeat. It never touches cost_rows.
--
-- last_seen is the database's clock at receipt, so every replica stamps with
-- the same clock; the client's ts is kept in client_ts and decides nothing.
-- Whether a worker is offline is derived when read (last_seen older than
-- agent_ttl_s), never stored. sink_* are the last beat's libvgsink counters
-- (NULL: the beat carried none). The upsert compares them with the stored
-- ones in the same statement and keeps when dropped and rejected last grew,
-- and whether rows sat queued across two beats with nothing sent: the
-- delivery state is read from those (see collector/agents_store.c).

CREATE TABLE agents (
    tenant_id         text,
    agent_id          text NOT NULL CHECK (char_length(agent_id) BETWEEN 1 AND 128),
    agent_name        text,
    project           text,
    status            text CHECK (status IN ('idle', 'busy')),
    active_sessions   integer CHECK (active_sessions >= 0),
    version           text,
    region            text,
    host              text,
    started_at        timestamptz,
    client_ts         timestamptz,
    first_seen        timestamptz NOT NULL DEFAULT now(),
    last_seen         timestamptz NOT NULL,
    sink_recorded     bigint,
    sink_sent         bigint,
    sink_dropped      bigint,
    sink_rejected     bigint,
    sink_queued       bigint,
    sink_spooled_rows bigint,
    sink_spool_bytes  bigint,
    sink_last_error   text,
    dropped_grew_at   timestamptz, -- last beat at which sink_dropped grew
    rejected_grew_at  timestamptz, -- last beat at which sink_rejected grew
    sink_stalled      boolean NOT NULL DEFAULT false, -- queued at this beat and
                                   -- the one before, with nothing sent between
    CONSTRAINT agents_identity UNIQUE NULLS NOT DISTINCT (tenant_id, agent_id)
);
CREATE INDEX agents_last_seen ON agents (last_seen);
