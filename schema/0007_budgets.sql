-- 0007_budgets: budgets per scope and period, and the alerts they raised.
--
-- A budget's scope is any combination of tenant, project, agent, provider and
-- model; a NULL part means all. Spend is summed from cost_rollup_hourly over
-- the calendar period in UTC (weeks start Monday) by the collector's SQL
-- (collector/budget.c); nothing here caches it.
--
-- budget_alerts holds one row per (budget, period start, threshold, kind).
-- The row is the claim: a collector that evaluates a budget inserts it with
-- ON CONFLICT DO NOTHING, and only the one whose insert returned the row logs
-- and delivers it, so any number of replicas and restarts raise each alert
-- once. kind 'resolved' is the one budget.resolved event for a threshold that
-- a raised limit un-crossed. Delivery state lives here too, so retries survive
-- restarts: 'pending' rows whose next_attempt_at has come are taken with
-- FOR UPDATE SKIP LOCKED and leased by moving next_attempt_at ahead.
-- body is the exact JSON that is signed and sent, fixed when the row is
-- claimed so every retry sends the same bytes.

CREATE TABLE budgets (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    tenant_id      text,
    project        text,
    agent_id       text,
    provider       text,
    model_id       text,
    period         text NOT NULL CHECK (period IN ('day', 'week', 'month')),
    limit_usd      numeric NOT NULL CHECK (limit_usd > 0),
    thresholds     integer[] NOT NULL DEFAULT '{50,80,100}',
    webhook_url    text,
    webhook_secret text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL))
);

CREATE TABLE budget_alerts (
    id              bigserial PRIMARY KEY,
    budget_id       bigint NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
    period_start    timestamptz NOT NULL,
    threshold       integer NOT NULL,
    kind            text NOT NULL DEFAULT 'threshold' CHECK (kind IN ('threshold', 'resolved')),
    spent_usd       numeric NOT NULL,
    percent         numeric NOT NULL,
    body            text NOT NULL,
    -- none: the budget has no webhook; pending: to deliver at next_attempt_at;
    -- delivered: a 2xx came back; failed: no 2xx within budget_retry_for_s.
    state           text NOT NULL CHECK (state IN ('none', 'pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (budget_id, period_start, threshold, kind)
);
CREATE INDEX budget_alerts_due ON budget_alerts (next_attempt_at) WHERE state = 'pending';
