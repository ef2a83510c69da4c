-- 0021_billing_usage: what billing reads beyond the price book and the card:
-- how many rows carry a rated price (so usage can say how many do not), and
-- re-rating runs with their adjustments, appended and never changed.
--
-- rated_rows: a rollup measure, count(rated_price_usd). Every row stored
-- before this migration has a rated price (the column was NOT NULL), so the
-- existing rollup rows get rated_rows = requests, exactly.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['cost_rollup_hourly', 'cost_rollup_daily',
                             'cost_rollup_tenant_hourly', 'cost_rollup_tenant_daily'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = t::regclass AND attname = 'rated_rows'
                          AND NOT attisdropped) THEN
            EXECUTE format('ALTER TABLE %I ADD COLUMN rated_rows bigint NOT NULL DEFAULT 0', t);
            EXECUTE format('UPDATE %I SET rated_rows = requests', t);
        END IF;
    END LOOP;
END $$;

-- One re-rating: what it covered, who ran it (a key's prefix, or "cli"), why,
-- and whether it only looked (dry_run: no adjustments). idempotency_key makes
-- a repeated commit answer the first run instead of adding again.
CREATE TABLE IF NOT EXISTS billing_rerate_runs (
    run_id          bigserial PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    range_from      timestamptz NOT NULL,
    range_to        timestamptz NOT NULL,
    tenant_id       text,                  -- NULL: every tenant
    dry_run         boolean NOT NULL,
    ran_by          text NOT NULL,
    reason          text,
    idempotency_key text UNIQUE,
    rows            bigint NOT NULL,       -- the rows the current card rates
    delta_usd       numeric NOT NULL,      -- their (card price - stored price), summed
    answer          text NOT NULL,         -- the JSON answered, answered again on a repeat
    CHECK (range_from < range_to)
);

-- What a committed run adds to the bill: per (tenant, UTC day, project,
-- provider, model), the sum over its rows of the current card's price minus
-- the stored rated price. The rows themselves are never changed.
CREATE TABLE IF NOT EXISTS billing_adjustments (
    run_id    bigint NOT NULL REFERENCES billing_rerate_runs,
    tenant_id text,
    day       date NOT NULL,
    project   text NOT NULL,
    provider  text,
    model_id  text,
    rows      bigint NOT NULL,
    delta_usd numeric NOT NULL
);
CREATE INDEX IF NOT EXISTS billing_adjustments_day ON billing_adjustments (day, tenant_id);

-- Append-only: adjustments and runs are history.
CREATE OR REPLACE FUNCTION vgc_billing_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
DROP TRIGGER IF EXISTS billing_adjustments_append_only ON billing_adjustments;
CREATE TRIGGER billing_adjustments_append_only BEFORE UPDATE OR DELETE ON billing_adjustments
    FOR EACH ROW EXECUTE FUNCTION vgc_billing_append_only();
DROP TRIGGER IF EXISTS billing_rerate_runs_append_only ON billing_rerate_runs;
CREATE TRIGGER billing_rerate_runs_append_only BEFORE UPDATE OR DELETE ON billing_rerate_runs
    FOR EACH ROW EXECUTE FUNCTION vgc_billing_append_only();
