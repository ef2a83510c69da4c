-- 0022_rollup_deltas: the hourly rollup kept outside the ingest transaction.
--
-- Before, every ingest transaction upserted its share of cost_rollup_hourly:
-- a third indexed write per row (after the id claim and the row), and a row
-- lock on each hot (hour, group) that concurrent batches queued on. Now the
-- ingest transaction appends its batch's sums, one row per (hour, group) of
-- the batch, to vgc_rollup_deltas: a heap with no index, no conflict check
-- and no lock taken on anything another batch touches. It commits with the
-- rows it sums, so a batch's deltas exist exactly when its rows do.
--
-- The summariser (collector/rollup_fold.c, a task of every `serve`, and
-- `vgcollector rollup-fold`) moves the deltas into cost_rollup_hourly: one
-- statement deletes the deltas it takes and upserts their sums, so a delta is
-- in the hourly table or in vgc_rollup_deltas at every commit, never both and
-- never neither. A transaction advisory lock lets one summariser fold at a
-- time (others skip the pass); a killed summariser's transaction rolls back
-- and leaves its deltas for the next pass.
--
-- Why deltas and not a numeric watermark over an ingest sequence: sequence
-- numbers are taken in one order and committed in another, so a batch can
-- commit behind a watermark already advanced past it. A delta is visible
-- exactly when its batch has committed, whatever its number, so "what is not
-- yet folded" is simply the rows of this table.
--
-- Readers add the deltas to what the rollup tables answer: the rollup tables
-- (hourly, daily, the tenant summaries) agree with each other over the folded
-- rows at every commit, and the deltas are the rest, so an answer is the
-- tables' answer plus the deltas' sums over the same range and filters (one
-- more branch of the read's statement, collector/rollup_sql.c). Simple sums
-- over hours read the view vgc_rollup_hourly_live (the hours and the deltas;
-- the reader's own GROUP BY adds them up). One statement, one snapshot: every
-- answer equals SQL over cost_rows whatever the summariser is doing. A
-- summariser that lags makes the deltas longer and reads slower, never wrong.
--
-- Adding a rollup measure: its column goes into vgc_rollup_deltas too, and
-- the view is created again with it (tests/test_schema.py checks).

CREATE TABLE vgc_rollup_deltas (LIKE cost_rollup_hourly INCLUDING DEFAULTS);
ALTER TABLE vgc_rollup_deltas ADD COLUMN stored_at timestamptz NOT NULL DEFAULT now();
-- Every row is deleted within a second or so of its insert: vacuum it by
-- dead rows, not by a share of a table that is nearly always empty.
ALTER TABLE vgc_rollup_deltas SET (autovacuum_vacuum_scale_factor = 0,
                                   autovacuum_vacuum_threshold = 5000,
                                   autovacuum_vacuum_insert_scale_factor = 0,
                                   autovacuum_vacuum_insert_threshold = 5000);

CREATE VIEW vgc_rollup_hourly_live AS
SELECT hour, project, agent_id, tenant_id, modality, provider, model_id,
       requests, errors, fallbacks, cost_usd, rated_price_usd, input_units,
       output_units, cached_input_units, book_cost_usd, priced_rows, rated_rows
FROM cost_rollup_hourly
UNION ALL
SELECT hour, project, agent_id, tenant_id, modality, provider, model_id,
       requests, errors, fallbacks, cost_usd, rated_price_usd, input_units,
       output_units, cached_input_units, book_cost_usd, priced_rows, rated_rows
FROM vgc_rollup_deltas;

-- The summariser's lock: one fold at a time across every collector.
CREATE FUNCTION vgc_rollup_fold_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext('vgcollector.rollup_fold')::bigint $$;

-- TRUNCATE of the hours forgets the rollup: the deltas not yet folded with it.
CREATE OR REPLACE FUNCTION vgc_rollup_truncate_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cost_rollup_daily;
    DELETE FROM vgc_rollup_dirty_days;
    DELETE FROM vgc_rollup_deltas;
    RETURN NULL;
END $$;
