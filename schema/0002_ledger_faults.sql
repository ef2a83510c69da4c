-- 0002_ledger_faults: the retention horizon, and a partition creator that
-- concurrent callers cannot make fail.
--
-- vgc_retention holds one row. dropped_before is the upper bound of the newest
-- month retention has dropped (NULL while nothing was dropped). Retention
-- raises it under FOR UPDATE in the same transaction as the drop; ingest reads
-- it FOR SHARE in its own transaction and refuses every row older than it.
-- Together they make "a resent row is never counted again" hold after the
-- row's id has left cost_row_ids with its month. Rollups for dropped hours are
-- kept as finance history: they stay in cost_rollup_hourly with no raw rows
-- behind them, and the ledger invariant covers the hours at or after the
-- horizon.

CREATE TABLE vgc_retention (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    dropped_before timestamptz
);
INSERT INTO vgc_retention (one, dropped_before) VALUES (true, NULL);

-- Creates the month partition holding `month` (any timestamp in it) unless it
-- exists, and returns its name. Returns NULL, creating nothing, for a month
-- retention has already dropped (before vgc_retention.dropped_before): such
-- rows are refused by ingest, and an empty partition for them would only be
-- dropped again. Several sessions may call it at once: the advisory lock
-- serialises creators, and a creator that still loses the race (the catalog
-- lookup can miss a table committed a moment ago) treats "already exists" as
-- success.
CREATE OR REPLACE FUNCTION vgc_ensure_partition(month timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'cost_rows_' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    IF lo < (SELECT dropped_before FROM vgc_retention) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('vgcollector.partitions'));
    IF to_regclass(name) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF cost_rows FOR VALUES FROM (%L) TO (%L)',
                           name, lo, hi);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            -- Another session created it between our check and our CREATE
            -- (unique_violation: both inserted its pg_type row at once).
            NULL;
        END;
    END IF;
    RETURN name;
END $$;
