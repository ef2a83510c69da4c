-- 0016_billing_periods: billing periods (UTC calendar months) that close once,
-- and the FOCUS export lines frozen at each close.
--
-- A month is open until a row is inserted here; closing is one transaction
-- (collector/periods.c) that takes the advisory lock below, finds the month
-- still open, freezes its export lines and records the close. So two
-- collectors closing at once record one close: the second waits for the lock
-- and then finds the month closed. Reopening deletes the month's row and its
-- lines; every close and reopen is kept in billing_period_events.
CREATE TABLE billing_periods (
    period      date PRIMARY KEY CHECK (extract(day FROM period) = 1),  -- the month's first day
    closed_at   timestamptz NOT NULL DEFAULT now(),
    closed_by   text NOT NULL,      -- the key's prefix, or "cli"
    forced      boolean NOT NULL DEFAULT false,
    completeness jsonb NOT NULL,    -- the evidence as it stood at the close
    billing_account text NOT NULL,  -- BillingAccountId/Name of its export, frozen
    -- The manifest of its whole (unscoped) export, computed at the close from
    -- the frozen lines, so the manifest is answered without rendering them.
    csv_sha256      text,
    csv_rows        bigint,
    billed_cost     numeric,
    usage_cost      numeric,
    correction_cost numeric
);

-- The FOCUS export of a closed month, line by line, as it was at the close:
-- its own days' usage (charge_class '') and the corrections it billed for
-- earlier closed months (charge_class 'Correction', charge_day in those
-- months). A closed month's export and manifest are read from here only, so
-- they never change. What has been billed for a day is the sum of the lines
-- with that charge_day across every billing period; the rollups minus that sum
-- is what the first open month bills as corrections.
CREATE TABLE billing_period_lines (
    billing_period date NOT NULL REFERENCES billing_periods (period) ON DELETE CASCADE,
    charge_day     timestamptz NOT NULL,   -- 00:00 UTC
    charge_class   text NOT NULL CHECK (charge_class IN ('', 'Correction')),
    tenant_id      text,
    project        text NOT NULL,
    agent_id       text,
    provider       text,
    model_id       text,
    modality       text NOT NULL,
    requests       bigint NOT NULL,
    cost_usd       numeric NOT NULL,
    list_cost_usd  numeric NOT NULL,
    quantity       numeric NOT NULL
);
CREATE INDEX billing_period_lines_period ON billing_period_lines (billing_period);
CREATE INDEX billing_period_lines_day ON billing_period_lines (charge_day);

-- Every close and reopen, who did it and when.
CREATE TABLE billing_period_events (
    id      bigserial PRIMARY KEY,
    period  date NOT NULL,
    action  text NOT NULL CHECK (action IN ('close', 'reopen')),
    at      timestamptz NOT NULL DEFAULT now(),
    by_whom text NOT NULL,
    forced  boolean NOT NULL DEFAULT false,
    detail  jsonb
);

-- Taken exclusively (transaction-scoped) by every close and reopen.
CREATE FUNCTION vgc_periods_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext('vgcollector.billing_periods')::bigint $$;
