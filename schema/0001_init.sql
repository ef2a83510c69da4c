-- 0001_init: cost rows, the hourly rollup, API keys, dead letters and turns.
--
-- Dedup by id across partitions: a unique index on the partitioned cost_rows
-- must include the partition key (ts), so it cannot make `id` unique on its
-- own. The unpartitioned cost_row_ids table holds every stored id as its
-- primary key. Ingest inserts ids there first (ON CONFLICT DO NOTHING
-- RETURNING id) and only the ids it gets back go into cost_rows and the
-- rollup, in the same transaction. A resent row therefore always conflicts
-- in cost_row_ids and counts as a duplicate, whatever its timestamp says.
-- Retention deletes the ids of dropped months (rows that old are refused by
-- max_row_age_days anyway, so they can never come back).

CREATE TABLE cost_row_ids (
    id text PRIMARY KEY,
    ts timestamptz NOT NULL
);

CREATE TABLE cost_rows (
    id                 text NOT NULL,
    ts                 timestamptz NOT NULL,
    modality           text NOT NULL CHECK (modality IN ('stt', 'llm', 'tts')),
    model_id           text,
    provider           text,
    project            text NOT NULL,
    input_units        numeric NOT NULL DEFAULT 0,
    output_units       numeric NOT NULL DEFAULT 0,
    cached_input_units numeric NOT NULL DEFAULT 0,
    cost_usd           numeric NOT NULL DEFAULT 0,
    rated_price_usd    numeric NOT NULL DEFAULT 0,
    pricing_source     text,
    rate_rule          text,
    ttfb_ms            double precision,
    total_latency_ms   double precision,
    status             text NOT NULL DEFAULT 'success'
                       CHECK (status IN ('success', 'error', 'fallback')),
    fallback_from      text,
    error_message      text,
    metadata           jsonb,
    session_id         text,
    agent_id           text,
    tenant_id          text,
    revision           text,
    turn_index         integer,
    key_id             bigint,
    received_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ts, id)
) PARTITION BY RANGE (ts);

-- Creates the month partition holding `month` (any timestamp in it) unless it
-- exists. Several collectors may call it at once: the advisory lock makes the
-- check-then-create atomic. Returns the partition's name.
CREATE FUNCTION vgc_ensure_partition(month timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'cost_rows_' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('vgcollector.partitions'));
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF cost_rows FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
    END IF;
    RETURN name;
END $$;

CREATE TABLE cost_rollup_hourly (
    hour               timestamptz NOT NULL,
    project            text NOT NULL,
    agent_id           text,
    tenant_id          text,
    modality           text NOT NULL,
    provider           text,
    model_id           text,
    requests           bigint NOT NULL DEFAULT 0,
    errors             bigint NOT NULL DEFAULT 0,
    fallbacks          bigint NOT NULL DEFAULT 0,
    cost_usd           numeric NOT NULL DEFAULT 0,
    rated_price_usd    numeric NOT NULL DEFAULT 0,
    input_units        numeric NOT NULL DEFAULT 0,
    output_units       numeric NOT NULL DEFAULT 0,
    cached_input_units numeric NOT NULL DEFAULT 0
);
-- NULL agent, tenant, provider or model is a group of its own.
CREATE UNIQUE INDEX cost_rollup_hourly_key ON cost_rollup_hourly
    (hour, project, agent_id, tenant_id, modality, provider, model_id) NULLS NOT DISTINCT;
CREATE INDEX cost_rollup_hourly_tenant ON cost_rollup_hourly (tenant_id, hour);

CREATE TABLE api_keys (
    id           bigserial PRIMARY KEY,
    digest       bytea NOT NULL UNIQUE CHECK (length(digest) = 32), -- SHA-256 of the key
    prefix       text NOT NULL,                                     -- shown by `keys list`
    role         text NOT NULL CHECK (role IN ('ingest', 'read', 'admin')),
    project      text,
    tenant_id    text,
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_prefix ON api_keys (prefix);

-- Every running collector LISTENs on vgc_keys and reloads its key cache, so a
-- key created or revoked (by the CLI or by hand in SQL) takes effect at once.
CREATE FUNCTION vgc_keys_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vgc_keys', TG_OP);
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_notify
    AFTER INSERT OR DELETE OR UPDATE OF digest, role, project, tenant_id, revoked_at
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION vgc_keys_notify();

-- Dead letters: rows the collector refused, kept so nothing is lost.
CREATE TABLE ingest_rejects (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    key_id      bigint,
    row_index   integer,
    reason      text NOT NULL,
    raw         text NOT NULL
);

-- POST /v1/ingest/turns: each pushed object as jsonb.
CREATE TABLE ingest_turns (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    key_id      bigint,
    project     text,
    tenant_id   text,
    payload     jsonb NOT NULL
);
