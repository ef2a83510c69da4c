-- 0008_rollup_tenant: a narrow daily summary per (day, tenant, project),
-- and per hour for summarised days, kept in step with cost_rollup_daily by the
-- database itself.
--
-- The company-wide answers (group_by=tenant or project, filtered at most by
-- tenant and project: finance's month-end report, the dashboard's overview)
-- need neither agent, modality, provider nor model, yet over cost_rollup_daily
-- they sum every such group: 450 rows per day for 50 tenants, where the answer
-- has 50. cost_rollup_tenant_daily holds those sums, about one row per
-- (day, tenant); collector/rollup_sql.c reads it instead of cost_rollup_daily
-- when a query's group_by and filters are all among tenant and project.
--
-- Its rows for a day are always the sums of cost_rollup_daily's rows of that
-- day: statement triggers on cost_rollup_daily recompute the days a statement
-- touched, in the writer's transaction. So it follows whoever writes the daily
-- table (the summariser of any collector version, an operator), and readers
-- apply the same rule as to cost_rollup_daily: a day is read from it only
-- when it is not listed in vgc_rollup_dirty_days (schema/0004_rollup_daily.sql).
-- Ingest never writes cost_rollup_daily, so ingest does no more work.

CREATE TABLE cost_rollup_tenant_daily (
    day                timestamptz NOT NULL,  -- 00:00 UTC
    tenant_id          text,
    project            text NOT NULL,
    requests           bigint NOT NULL DEFAULT 0,
    errors             bigint NOT NULL DEFAULT 0,
    fallbacks          bigint NOT NULL DEFAULT 0,
    cost_usd           numeric NOT NULL DEFAULT 0,
    rated_price_usd    numeric NOT NULL DEFAULT 0,
    input_units        numeric NOT NULL DEFAULT 0,
    output_units       numeric NOT NULL DEFAULT 0,
    cached_input_units numeric NOT NULL DEFAULT 0
);
-- Day first: the reads it serves take a range of days for every tenant.
CREATE UNIQUE INDEX cost_rollup_tenant_daily_key ON cost_rollup_tenant_daily
    (day, tenant_id, project) NULLS NOT DISTINCT;

-- The same sums per hour, for the hours of the days cost_rollup_daily holds:
-- a range's partial days at either end (from and to are whole hours, not whole
-- days) are read from here when their day is not listed, about 50 rows an
-- hour for 50 tenants where cost_rollup_hourly has 450.
CREATE TABLE cost_rollup_tenant_hourly (LIKE cost_rollup_tenant_daily INCLUDING DEFAULTS);
ALTER TABLE cost_rollup_tenant_hourly RENAME COLUMN day TO hour;
CREATE UNIQUE INDEX cost_rollup_tenant_hourly_key ON cost_rollup_tenant_hourly
    (hour, tenant_id, project) NULLS NOT DISTINCT;

-- Rewrites the narrow rows of the given days: the daily ones from
-- cost_rollup_daily, the hourly ones from cost_rollup_hourly (in hour order,
-- so an hour's rows share pages). The summariser calls it (through the
-- triggers below) holding the day's lock exclusively, so the hours it reads
-- are the ones it summed.
CREATE FUNCTION vgc_rollup_tenant_refresh(days timestamptz[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM cost_rollup_tenant_daily WHERE day = ANY(days);
    INSERT INTO cost_rollup_tenant_daily (day, tenant_id, project, requests, errors, fallbacks,
        cost_usd, rated_price_usd, input_units, output_units, cached_input_units)
    SELECT day, tenant_id, project, sum(requests), sum(errors), sum(fallbacks), sum(cost_usd),
        sum(rated_price_usd), sum(input_units), sum(output_units), sum(cached_input_units)
    FROM cost_rollup_daily WHERE day = ANY(days) GROUP BY day, tenant_id, project;
    DELETE FROM cost_rollup_tenant_hourly t USING unnest(days) d(day)
    WHERE t.hour >= d.day AND t.hour < d.day + interval '24 hours';
    INSERT INTO cost_rollup_tenant_hourly (hour, tenant_id, project, requests, errors, fallbacks,
        cost_usd, rated_price_usd, input_units, output_units, cached_input_units)
    SELECT h.hour, h.tenant_id, h.project, sum(h.requests), sum(h.errors), sum(h.fallbacks),
        sum(h.cost_usd), sum(h.rated_price_usd), sum(h.input_units), sum(h.output_units),
        sum(h.cached_input_units)
    FROM unnest(days) d(day) JOIN cost_rollup_hourly h
        ON h.hour >= d.day AND h.hour < d.day + interval '24 hours'
    GROUP BY h.hour, h.tenant_id, h.project ORDER BY h.hour;
$$;

-- INSERT and DELETE on cost_rollup_daily (changed is the transition table).
CREATE FUNCTION vgc_rollup_tenant_follow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vgc_rollup_tenant_refresh(ARRAY(SELECT DISTINCT day FROM changed));
    RETURN NULL;
END $$;

-- UPDATE: the days of the old and of the new rows.
CREATE FUNCTION vgc_rollup_tenant_follow_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vgc_rollup_tenant_refresh(ARRAY(SELECT day FROM changed_old
                                            UNION SELECT day FROM changed));
    RETURN NULL;
END $$;

CREATE FUNCTION vgc_rollup_tenant_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cost_rollup_tenant_daily;
    DELETE FROM cost_rollup_tenant_hourly;
    RETURN NULL;
END $$;

CREATE TRIGGER cost_rollup_tenant_daily_insert AFTER INSERT ON cost_rollup_daily
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vgc_rollup_tenant_follow();
CREATE TRIGGER cost_rollup_tenant_daily_delete AFTER DELETE ON cost_rollup_daily
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vgc_rollup_tenant_follow();
CREATE TRIGGER cost_rollup_tenant_daily_update AFTER UPDATE ON cost_rollup_daily
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION vgc_rollup_tenant_follow_update();
CREATE TRIGGER cost_rollup_tenant_daily_truncate AFTER TRUNCATE ON cost_rollup_daily
    FOR EACH STATEMENT EXECUTE FUNCTION vgc_rollup_tenant_truncate();

-- An existing database: every day the daily table holds. CREATE TRIGGER above
-- holds a lock on cost_rollup_daily that writers wait for until this migration
-- commits (then their statements fire the triggers), and this statement sees
-- every row committed before it.
SELECT vgc_rollup_tenant_refresh(ARRAY(SELECT DISTINCT day FROM cost_rollup_daily));
