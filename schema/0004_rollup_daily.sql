-- 0004_rollup_daily: a daily rollup for closed days, filled outside ingest.
--
-- cost_rollup_daily holds, per UTC day, the sums of cost_rollup_hourly over
-- that day's 24 hours. Ingest never writes it: the summariser
-- (collector/rollup_daily.c, a background pass in `serve` and
-- `vgcollector rollup-daily`) fills it one closed day at a time.
--
-- vgc_rollup_dirty_days lists the days whose daily rows may not equal their
-- hours: every day any statement has written hours of and that has not been
-- summarised since (today is always in it). A statement-level trigger on
-- cost_rollup_hourly adds the days it touched (ON CONFLICT DO NOTHING: no row
-- lock, so concurrent ingests do not queue on it). Readers answer a day from
-- cost_rollup_daily only when it is not listed, in the same statement (one
-- snapshot), so a late row is in the very next answer.
--
-- The race between a writer and the summariser is closed with a transaction
-- advisory lock per day (pgbouncer-safe): the trigger takes it shared for
-- each day it touched, the summariser takes it exclusively. So the summariser
-- waits for every writer of the day to commit before it reads the day's hours
-- (and removes the day from the list), and a writer that comes later waits
-- for the summariser's commit and then lists the day again.
--
-- Retention keeps daily rows with their hours (finance history), as it keeps
-- cost_rollup_hourly.

CREATE TABLE cost_rollup_daily (
    day                timestamptz NOT NULL,  -- 00:00 UTC
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
-- Tenant first (the Citus distribution key); day for the all-tenant answers.
CREATE UNIQUE INDEX cost_rollup_daily_key ON cost_rollup_daily
    (tenant_id, day, project, agent_id, modality, provider, model_id) NULLS NOT DISTINCT;
CREATE INDEX cost_rollup_daily_day ON cost_rollup_daily (day);

CREATE TABLE vgc_rollup_dirty_days (
    day timestamptz PRIMARY KEY  -- 00:00 UTC
);

-- Named in the reads over daily and hourly to keep their plans serial: the
-- planner counts a parallel-unsafe function anywhere in a query. Those reads
-- sum thousands of rows, and starting parallel workers cost 200 ms of a 10 ms
-- answer on a busy 2-core host (measured). Immutable, so it folds to true.
CREATE FUNCTION vgc_rollup_serial() RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL UNSAFE AS $$ SELECT true $$;

-- The advisory lock of one UTC day: (class, day number since 1970).
CREATE FUNCTION vgc_rollup_day_lock_class() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext('vgcollector.rollup_daily') $$;

-- Statement trigger on cost_rollup_hourly (changed is the transition table):
-- locks each touched day shared, in day order, and lists it as dirty.
CREATE FUNCTION vgc_rollup_mark_days() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d timestamptz;
    days timestamptz[];
BEGIN
    SELECT array_agg(x ORDER BY x) INTO days FROM (
        SELECT DISTINCT date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS x
        FROM changed) t;
    IF days IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH d IN ARRAY days LOOP
        PERFORM pg_advisory_xact_lock_shared(vgc_rollup_day_lock_class(),
                                             (extract(epoch FROM d) / 86400)::int);
    END LOOP;
    INSERT INTO vgc_rollup_dirty_days (day) SELECT unnest(days) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER cost_rollup_hourly_mark_insert AFTER INSERT ON cost_rollup_hourly
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vgc_rollup_mark_days();
CREATE TRIGGER cost_rollup_hourly_mark_update AFTER UPDATE ON cost_rollup_hourly
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vgc_rollup_mark_days();
CREATE TRIGGER cost_rollup_hourly_mark_delete AFTER DELETE ON cost_rollup_hourly
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vgc_rollup_mark_days();

-- TRUNCATE of the hours empties the days too (it has no transition table).
CREATE FUNCTION vgc_rollup_truncate_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cost_rollup_daily;
    DELETE FROM vgc_rollup_dirty_days;
    RETURN NULL;
END $$;
CREATE TRIGGER cost_rollup_hourly_truncate AFTER TRUNCATE ON cost_rollup_hourly
    FOR EACH STATEMENT EXECUTE FUNCTION vgc_rollup_truncate_days();

-- An existing database: every day with hours is dirty until summarised.
INSERT INTO vgc_rollup_dirty_days (day)
SELECT DISTINCT date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
FROM cost_rollup_hourly;
