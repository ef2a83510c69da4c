-- 0009_budget_tenancy: budget names per tenant, alerts that can fire again
-- after a resolve, deliveries that only exist for budgets with a webhook, and
-- the tenants whose spend changed since the budgets were last evaluated.
--
-- Names: a budget is (tenant, name); two tenants may both have "month", and
-- no answer tells one tenant what names another uses. The tenant-less budgets
-- (every tenant's spend) share one namespace of their own.
ALTER TABLE budgets DROP CONSTRAINT budgets_name_key;
CREATE UNIQUE INDEX budgets_tenant_name ON budgets (tenant_id, name) NULLS NOT DISTINCT;

-- Alerts: per (budget, period, threshold) the claims form a sequence
-- threshold, resolved, threshold, ... numbered by seq (even: threshold, odd:
-- resolved). A collector claims seq = the last one + 1, so a threshold
-- crossed again after a raised limit was lowered (or spend caught up with it)
-- alerts again, and the unique key still lets one replica win each claim.
-- Existing rows already are seq 0 (threshold) and 1 (resolved).
ALTER TABLE budget_alerts ADD COLUMN seq integer NOT NULL DEFAULT 0;
UPDATE budget_alerts SET seq = 1 WHERE kind = 'resolved';
ALTER TABLE budget_alerts DROP CONSTRAINT budget_alerts_budget_id_period_start_threshold_kind_key;
ALTER TABLE budget_alerts ADD CONSTRAINT budget_alerts_claim
    UNIQUE (budget_id, period_start, threshold, seq);
ALTER TABLE budget_alerts ADD CONSTRAINT budget_alerts_seq_kind
    CHECK ((seq % 2 = 0) = (kind = 'threshold'));

-- A delivery is pending only while its budget has a webhook: removing the
-- webhook settles the budget's pending alerts as 'none', so they can never sit
-- at the head of the delivery queue for every other tenant.
CREATE FUNCTION vgc_budget_settle_unhooked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE budget_alerts SET state = 'none'
    WHERE budget_id = NEW.id AND state = 'pending';
    RETURN NULL;
END $$;
CREATE TRIGGER budgets_settle_unhooked AFTER UPDATE OF webhook_url ON budgets
    FOR EACH ROW WHEN (NEW.webhook_url IS NULL AND OLD.webhook_url IS NOT NULL)
    EXECUTE FUNCTION vgc_budget_settle_unhooked();
UPDATE budget_alerts a SET state = 'none'
FROM budgets b WHERE b.id = a.budget_id AND a.state = 'pending' AND b.webhook_url IS NULL;

-- Dirty tenants: each statement that writes cost_rollup_hourly stamps the
-- tenants it touched with its transaction id (nothing at all while no budget
-- exists). An evaluation notes the oldest transaction still running when it
-- looks (its snapshot's xmin); the next one evaluates only the budgets of
-- tenants stamped by a transaction at or after that xmin (every write it may
-- not have seen), and the tenant-less budgets, so evaluation costs follow the
-- budgets that saw new rows, not every budget there is.
--
-- Writers never wait for each other here: a tenant's row locked by another
-- writer is skipped, and the skipping writer appends its stamp to
-- budget_dirty_more instead (evaluations read both; rows there older than a
-- day are dropped by them). One row per tenant in budget_dirty, never deleted.
-- tenant is '' for rows without a tenant ('' is never a tenant id), so every
-- lookup here is a plain equality on the key.
CREATE TABLE budget_dirty (
    tenant    text PRIMARY KEY,
    xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    marked_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE budget_dirty_more (
    tenant    text NOT NULL,
    xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    marked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX budget_dirty_more_xid ON budget_dirty_more (xid);

CREATE FUNCTION vgc_budget_mark_dirty() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    me xid8;
    ts text[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM budgets) THEN
        RETURN NULL;
    END IF;
    me := pg_current_xact_id();
    SELECT array_agg(DISTINCT coalesce(tenant_id, '')) INTO ts FROM changed;
    -- Only tenants without a row: a conflict check on a row another writer
    -- holds would wait for that writer.
    INSERT INTO budget_dirty (tenant)
    SELECT t FROM unnest(ts) t
    WHERE NOT EXISTS (SELECT 1 FROM budget_dirty x WHERE x.tenant = t)
    ORDER BY 1 ON CONFLICT DO NOTHING;
    WITH took AS (UPDATE budget_dirty d SET xid = me, marked_at = now()
                  WHERE d.tenant IN (SELECT x.tenant FROM budget_dirty x
                                     WHERE x.tenant = ANY (ts) AND x.xid <> me
                                     ORDER BY 1 FOR UPDATE SKIP LOCKED)
                  RETURNING d.tenant)
    INSERT INTO budget_dirty_more (tenant)
    SELECT t FROM unnest(ts) t
    WHERE NOT EXISTS (SELECT 1 FROM took WHERE took.tenant = t)
      AND NOT EXISTS (SELECT 1 FROM budget_dirty x WHERE x.tenant = t AND x.xid = me);
    RETURN NULL;
END $$;
CREATE TRIGGER cost_rollup_hourly_budget_insert AFTER INSERT ON cost_rollup_hourly
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vgc_budget_mark_dirty();
CREATE TRIGGER cost_rollup_hourly_budget_update AFTER UPDATE ON cost_rollup_hourly
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vgc_budget_mark_dirty();
