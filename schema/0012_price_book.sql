-- 0012_price_book: the price book (what each row cost us by our own prices),
-- the row's book cost and revision, and two rollup measures for them.
-- Every statement can run again on a database that has it (IF NOT EXISTS, OR
-- REPLACE), so it also completes rollup tables re-created by an older step.
--
-- price_book_revisions holds each import (collector/price_book.c): its id is
-- the SHA-256 of the canonical JSON of its feeds plus its effective date, so
-- importing the same content again finds the same revision and adds nothing.
-- price_book_rates holds every rate of every revision as the feed wrote it.
-- price_book_periods is derived from the headline rates (no plan,
-- from_quantity or voice_class): per (provider, model), the spans of time over
-- which every meter's rate is constant, each meter's rate being the one with
-- the latest effective_from not after the span's start (ties: the later
-- import). Ingest prices a batch with one range join to it, in the insert
-- statement itself.

CREATE TABLE IF NOT EXISTS price_book_revisions (
    revision       text PRIMARY KEY,     -- hex SHA-256
    effective_from timestamptz,          -- the import's own date, or NULL
    feeds          text NOT NULL,        -- the canonical JSON the id is taken over
    imported_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS price_book_rates (
    revision       text NOT NULL REFERENCES price_book_revisions ON DELETE CASCADE,
    provider       text NOT NULL,
    model_id       text NOT NULL,
    modality       text NOT NULL,
    meter          text NOT NULL,
    unit           text NOT NULL,
    amount         numeric NOT NULL CHECK (amount >= 0),  -- USD per one unit
    effective_from timestamptz NOT NULL,
    plan           text,
    from_quantity  numeric,
    voice_class    text,
    CHECK ((meter, unit) IN (('audio_input', 'minute'), ('audio_input', 'second'),
                             ('text_input', 'token'), ('text_input', 'character'),
                             ('cached_text_input', 'token'), ('text_output', 'token'),
                             ('request', 'request')))
);
CREATE INDEX IF NOT EXISTS price_book_rates_model ON price_book_rates (provider, model_id);

-- Rates per the unit a row counts in: audio per minute, text per token or per
-- character, one request. NULL: the model has no such headline rate. Each
-- span is stored twice, once per way a row may name the model (row_model:
-- "nova-3" and "deepgram/nova-3"), so ingest joins on plain columns.
CREATE TABLE IF NOT EXISTS price_book_periods (
    provider        text NOT NULL,
    row_model       text NOT NULL,
    model_id        text NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz NOT NULL,   -- 'infinity' for the current span
    audio_minute    numeric,
    text_token      numeric,
    text_character  numeric,
    cached_token    numeric,
    output_token    numeric,
    request         numeric,
    revision        text NOT NULL,          -- of the latest-effective rate in the span
    PRIMARY KEY (provider, row_model, valid_from)
);

-- Rewrites the periods of one provider from its headline rates.
CREATE OR REPLACE FUNCTION vgc_price_book_rebuild(p text) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM price_book_periods WHERE provider = p;
    WITH rates AS (
        SELECT r.*, v.imported_at,
               CASE WHEN r.meter = 'text_input' THEN r.meter || '/' || r.unit ELSE r.meter END
                   AS slot
        FROM price_book_rates r JOIN price_book_revisions v USING (revision)
        WHERE r.provider = p AND r.plan IS NULL AND r.from_quantity IS NULL
          AND r.voice_class IS NULL),
    starts AS (SELECT DISTINCT model_id, effective_from AS valid_from FROM rates),
    spans AS (
        SELECT model_id, valid_from,
               coalesce(lead(valid_from) OVER (PARTITION BY model_id ORDER BY valid_from),
                        'infinity') AS valid_to
        FROM starts),
    picked AS (
        SELECT DISTINCT ON (s.model_id, s.valid_from, r.slot)
               s.model_id, s.valid_from, s.valid_to, r.slot, r.unit, r.amount, r.revision,
               r.effective_from, r.imported_at
        FROM spans s JOIN rates r ON r.model_id = s.model_id AND r.effective_from <= s.valid_from
        ORDER BY s.model_id, s.valid_from, r.slot, r.effective_from DESC, r.imported_at DESC)
    INSERT INTO price_book_periods (provider, row_model, model_id, valid_from, valid_to,
        audio_minute, text_token, text_character, cached_token, output_token, request, revision)
    SELECT p, f.row_model, model_id, valid_from, min(valid_to),
           min(CASE WHEN unit = 'second' THEN amount * 60 ELSE amount END)
               FILTER (WHERE slot = 'audio_input'),
           min(amount) FILTER (WHERE slot = 'text_input/token'),
           min(amount) FILTER (WHERE slot = 'text_input/character'),
           min(amount) FILTER (WHERE slot = 'cached_text_input'),
           min(amount) FILTER (WHERE slot = 'text_output'),
           min(amount) FILTER (WHERE slot = 'request'),
           (array_agg(revision ORDER BY effective_from DESC, imported_at DESC))[1]
    FROM picked CROSS JOIN LATERAL (VALUES (model_id), (p || '/' || model_id)) f(row_model)
    GROUP BY f.row_model, model_id, valid_from;
$$;

-- The row's cost by the book (NULL: unpriced) and the revision that priced it.
-- Set by the collector on ingest; rows stored before this migration are
-- unpriced.
ALTER TABLE cost_rows ADD COLUMN IF NOT EXISTS book_cost_usd numeric, ADD COLUMN IF NOT EXISTS book_revision text;

-- Two measures for every rollup table: the book cost of the priced rows, and
-- how many rows were priced (unpriced = requests - priced_rows, so the rows
-- stored before this migration need no update: they are all unpriced).
ALTER TABLE cost_rollup_hourly ADD COLUMN IF NOT EXISTS book_cost_usd numeric NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS priced_rows bigint NOT NULL DEFAULT 0;
ALTER TABLE cost_rollup_daily ADD COLUMN IF NOT EXISTS book_cost_usd numeric NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS priced_rows bigint NOT NULL DEFAULT 0;
ALTER TABLE cost_rollup_tenant_daily ADD COLUMN IF NOT EXISTS book_cost_usd numeric NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS priced_rows bigint NOT NULL DEFAULT 0;
ALTER TABLE cost_rollup_tenant_hourly ADD COLUMN IF NOT EXISTS book_cost_usd numeric NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS priced_rows bigint NOT NULL DEFAULT 0;

-- The narrow summaries' refresh (0008) listed the measures by hand; it now
-- sums every column of cost_rollup_tenant_daily after its keys, so a measure
-- added to the rollup tables (collector/rollup_shape.c) needs no new function.
CREATE OR REPLACE FUNCTION vgc_rollup_tenant_refresh(days timestamptz[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cols text;
    sums text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
           string_agg(format('sum(%I)', attname), ', ' ORDER BY attnum)
      INTO cols, sums
      FROM pg_attribute
     WHERE attrelid = 'cost_rollup_tenant_daily'::regclass AND attnum > 0
       AND NOT attisdropped AND attname NOT IN ('day', 'tenant_id', 'project');
    DELETE FROM cost_rollup_tenant_daily WHERE day = ANY(days);
    EXECUTE format('INSERT INTO cost_rollup_tenant_daily (day, tenant_id, project, %s)'
                   ' SELECT day, tenant_id, project, %s FROM cost_rollup_daily'
                   ' WHERE day = ANY($1) GROUP BY day, tenant_id, project', cols, sums)
        USING days;
    DELETE FROM cost_rollup_tenant_hourly t USING unnest(days) d(day)
    WHERE t.hour >= d.day AND t.hour < d.day + interval '24 hours';
    EXECUTE format('INSERT INTO cost_rollup_tenant_hourly (hour, tenant_id, project, %s)'
                   ' SELECT h.hour, h.tenant_id, h.project, %s'
                   ' FROM unnest($1) d(day) JOIN cost_rollup_hourly h'
                   '  ON h.hour >= d.day AND h.hour < d.day + interval ''24 hours'''
                   ' GROUP BY h.hour, h.tenant_id, h.project ORDER BY h.hour', cols, sums)
        USING days;
END $$;
