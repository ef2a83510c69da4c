-- 0026_rollup_fold_in_step: the hourly summariser keeps the daily and narrow
-- rollups in step, so a late row never sends its day back to its hours.
--
-- Before, the fold (0022) wrote cost_rollup_hourly alone, and the hourly
-- table's trigger (0004) listed every day it touched in vgc_rollup_dirty_days.
-- A listed day is answered from its hours (24 times the rows of its daily
-- summary, and the narrow summaries unused) until the daily summariser takes
-- it again, a settle time after the day has closed. Fleets replay: with a
-- fifth of the rows arriving late into the last five days, those days were
-- listed nearly all the time, and the all-tenant reads over a month were 3
-- times slower (measured by `make bench-rollup`).
--
-- Now the fold adds the same sums, in the same statement, to every rollup
-- table: the hours, the days (cost_rollup_daily), and the narrow summaries
-- per (day, tenant, project) and (hour, tenant, project). A day the fold
-- writes stays as it was: listed or not. So a day that is not listed keeps
-- its daily rows equal to its hours' sums at every commit, as readers need
-- (0004), with no recomputation; and the open day is never listed by ingest.
-- A listed day (written by anything else: an operator, a collector from
-- before this migration) is recomputed by the daily summariser, as before,
-- and the fold's additions to it are replaced then.
--
-- How the fold tells the triggers: vgc_rollup_fold_begin() sets the
-- transaction-local setting vgc.rollup_in_step, and the hourly table's
-- listing triggers and the daily table's narrow-refresh triggers do not fire
-- in a transaction that has it (their WHEN condition; the fold writes those
-- rows itself). Every other writer still fires them.
--
-- The race with the daily summariser: the summariser takes a day's advisory
-- lock exclusively before it reads the day's hours and rewrites its rows.
-- The fold takes the lock of every day it will write shared, in day order,
-- before its statement (the listing trigger took it after the writes, which
-- is too late for rows the fold writes to the daily table itself), and then
-- folds only deltas of those days. So the summariser reads a day's hours
-- either before a fold of the day began or after it committed, and a fold
-- adds to the daily rows either before the summariser rewrites them or
-- after.

CREATE FUNCTION vgc_rollup_in_step() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT coalesce(current_setting('vgc.rollup_in_step', true), '') = 'on' $$;

-- The fold's first statement, under the fold lock: locks the days of the
-- first lim waiting deltas shared, in day order, marks the transaction as
-- keeping the summaries in step, and returns the days. The fold then takes at
-- most lim deltas of these days only (a delta committed since may be of a day
-- not locked); there are at least lim of them unless fewer are waiting, so a
-- fold that takes fewer than lim has left none behind. Bounded by lim, not by
-- the backlog: a summariser catching up does not rescan what waits.
CREATE FUNCTION vgc_rollup_fold_begin(lim bigint) RETURNS timestamptz[]
LANGUAGE plpgsql AS $$
DECLARE
    d timestamptz;
    days timestamptz[];
BEGIN
    SELECT coalesce(array_agg(x ORDER BY x), '{}') INTO days FROM (
        SELECT DISTINCT date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS x
        FROM (SELECT hour FROM vgc_rollup_deltas LIMIT lim) w) t;
    FOREACH d IN ARRAY days LOOP
        PERFORM pg_advisory_xact_lock_shared(vgc_rollup_day_lock_class(),
                                             (extract(epoch FROM d) / 86400)::int);
    END LOOP;
    PERFORM set_config('vgc.rollup_in_step', 'on', true);
    RETURN days;
END $$;

-- The triggers that list the days the hours were written for (0004) and that
-- rewrite the narrow summaries of the days the daily table was written for
-- (0008) stand aside in the fold's transaction: the fold took the days' locks
-- and writes those rows itself. Replaced by the same triggers with a WHEN
-- condition; their functions are unchanged.
CREATE OR REPLACE TRIGGER cost_rollup_hourly_mark_insert AFTER INSERT ON cost_rollup_hourly
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    WHEN (NOT vgc_rollup_in_step()) EXECUTE FUNCTION vgc_rollup_mark_days();
CREATE OR REPLACE TRIGGER cost_rollup_hourly_mark_update AFTER UPDATE ON cost_rollup_hourly
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    WHEN (NOT vgc_rollup_in_step()) EXECUTE FUNCTION vgc_rollup_mark_days();
CREATE OR REPLACE TRIGGER cost_rollup_hourly_mark_delete AFTER DELETE ON cost_rollup_hourly
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    WHEN (NOT vgc_rollup_in_step()) EXECUTE FUNCTION vgc_rollup_mark_days();

CREATE OR REPLACE TRIGGER cost_rollup_tenant_daily_insert AFTER INSERT ON cost_rollup_daily
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    WHEN (NOT vgc_rollup_in_step()) EXECUTE FUNCTION vgc_rollup_tenant_follow();
CREATE OR REPLACE TRIGGER cost_rollup_tenant_daily_delete AFTER DELETE ON cost_rollup_daily
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    WHEN (NOT vgc_rollup_in_step()) EXECUTE FUNCTION vgc_rollup_tenant_follow();
CREATE OR REPLACE TRIGGER cost_rollup_tenant_daily_update AFTER UPDATE ON cost_rollup_daily
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed FOR EACH STATEMENT
    WHEN (NOT vgc_rollup_in_step()) EXECUTE FUNCTION vgc_rollup_tenant_follow_update();
