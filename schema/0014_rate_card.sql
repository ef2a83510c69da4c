-- 0014_rate_card: the rate card (what we bill), VoiceGateway's contract: a
-- default markup and ordered rules, and the plan each tenant is on, with the
-- resolution of the one rule that applies to a row and the price it gives.
--
-- This migration holds the card and its rules in SQL functions; ingest does
-- not apply them yet (rated_price_usd is still the worker's).
--
-- Resolution: of the rules whose every set scope column matches the row, the
-- single most specific: tenant > plan > global, and within that
-- model > provider > modality-only; among ties the rule created or changed
-- last (changed_seq). No match: cost_plus at the default markup.

CREATE TABLE IF NOT EXISTS rate_card (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    default_markup numeric NOT NULL DEFAULT 1 CHECK (default_markup >= 0),
    revision       bigint NOT NULL DEFAULT 1   -- bumped by every change to the card
);
INSERT INTO rate_card DEFAULT VALUES ON CONFLICT DO NOTHING;

CREATE SEQUENCE IF NOT EXISTS rate_card_changes;

CREATE TABLE IF NOT EXISTS rate_card_rules (
    rule_id     bigserial PRIMARY KEY,
    tenant_id   text,
    plan        text,
    modality    text CHECK (modality IN ('stt', 'llm', 'tts')),
    provider    text,
    model       text,          -- as the book names it, without "provider/"
    kind        text NOT NULL CHECK (kind IN ('cost_plus', 'fixed')),
    markup      numeric CHECK (markup >= 0),
    basis       text NOT NULL DEFAULT 'recorded' CHECK (basis IN ('recorded', 'book')),
    fixed       numeric CHECK (fixed >= 0),
    unit        text CHECK (unit IN ('minute', 'second', 'char', '1k_char', 'token',
                                     '1k_token', '1m_token', 'request')),
    changed_seq bigint NOT NULL DEFAULT nextval('rate_card_changes'),
    CHECK ((kind = 'cost_plus' AND markup IS NOT NULL AND fixed IS NULL AND unit IS NULL)
        OR (kind = 'fixed' AND fixed IS NOT NULL AND unit IS NOT NULL AND markup IS NULL
            AND basis = 'recorded'))
);
-- One rule per scope: a write to a scope replaces its rule.
CREATE UNIQUE INDEX IF NOT EXISTS rate_card_rules_scope ON rate_card_rules
    (tenant_id, plan, modality, provider, model) NULLS NOT DISTINCT;

CREATE TABLE IF NOT EXISTS tenant_plans (
    tenant_id text PRIMARY KEY,
    plan      text NOT NULL
);

-- The model a row or a rule names, as the book names it: without "provider/".
CREATE OR REPLACE FUNCTION vgc_model_key(provider text, model text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN provider IS NOT NULL AND starts_with(model, provider || '/')
                THEN substr(model, length(provider) + 2) ELSE model END
$$;

-- A decimal in its shortest form: 2 (not 2.0), 0.00005 (not 5e-05).
CREATE OR REPLACE FUNCTION vgc_decimal_text(v numeric) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT trim_scale(v)::text $$;

-- Exact money: more than 12 fractional digits are rounded half-even to 12
-- (round() on numeric rounds halves away from zero; the one case where the two
-- differ, exactly half after an even 12th digit, is truncated instead).
CREATE OR REPLACE FUNCTION vgc_money_round(v numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN scale(v) <= 12 THEN v
                WHEN mod(abs(v) * 1e13, 20) = 5 THEN trunc(v, 12)
                ELSE round(v, 12) END
$$;

-- The rule that applies to a row of this tenant, modality, provider and model
-- (NULL: none, so the default markup).
CREATE OR REPLACE FUNCTION vgc_rate_card_pick(p_tenant text, p_modality text, p_provider text,
                                              p_model text) RETURNS rate_card_rules
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM rate_card_rules r
    LEFT JOIN tenant_plans tp ON tp.tenant_id = p_tenant
    WHERE (r.tenant_id IS NULL OR r.tenant_id = p_tenant)
      AND (r.plan IS NULL OR r.plan = tp.plan)
      AND (r.modality IS NULL OR r.modality = p_modality)
      AND (r.provider IS NULL OR r.provider = p_provider)
      AND (r.model IS NULL OR r.model = vgc_model_key(p_provider, p_model))
    ORDER BY r.tenant_id IS NOT NULL DESC, r.plan IS NOT NULL DESC,
             r.model IS NOT NULL DESC, r.provider IS NOT NULL DESC, r.changed_seq DESC
    LIMIT 1
$$;

-- A rule's token, VoiceGateway's: cost_plus:1.3, fixed:0.006/minute; with
-- the default markup for no rule: default:1.
CREATE OR REPLACE FUNCTION vgc_rate_card_token(r rate_card_rules, default_markup numeric)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN r.rule_id IS NULL THEN 'default:' || vgc_decimal_text(default_markup)
                WHEN r.kind = 'cost_plus' THEN 'cost_plus:' || vgc_decimal_text(r.markup)
                ELSE 'fixed:' || vgc_decimal_text(r.fixed) || '/' || r.unit END
$$;

-- The billable quantity of a row in a fixed rule's unit: STT minutes, TTS
-- characters, LLM input + output tokens, 1 per request. NULL when the unit
-- does not measure the row's modality (a per-minute rule on an LLM row).
CREATE OR REPLACE FUNCTION vgc_rate_card_quantity(unit text, modality text, input_units numeric,
                                                  output_units numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN unit = 'request' THEN 1
        WHEN modality = 'stt' AND unit = 'minute' THEN input_units
        WHEN modality = 'stt' AND unit = 'second' THEN input_units * 60
        WHEN modality = 'tts' AND unit = 'char' THEN input_units
        WHEN modality = 'tts' AND unit = '1k_char' THEN input_units / 1000
        WHEN modality = 'llm' AND unit = 'token' THEN input_units + output_units
        WHEN modality = 'llm' AND unit = '1k_token' THEN (input_units + output_units) / 1000
        WHEN modality = 'llm' AND unit = '1m_token' THEN (input_units + output_units) / 1000000
    END
$$;

-- A row's rated price and rule token by the current card. An unrated row (a
-- basis book rule on an unpriced row, or a fixed unit that does not measure
-- the row) gets a NULL price and the token unrated:<why>, never 0.
CREATE OR REPLACE FUNCTION vgc_rate_card_rate(p_tenant text, p_modality text, p_provider text,
        p_model text, p_cost numeric, p_book numeric, p_input numeric, p_output numeric,
        OUT price numeric, OUT rule text, OUT rule_id bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r rate_card_rules;
    dm numeric;
    q numeric;
BEGIN
    SELECT default_markup INTO dm FROM rate_card;
    r := vgc_rate_card_pick(p_tenant, p_modality, p_provider, p_model);
    rule_id := r.rule_id;
    rule := vgc_rate_card_token(r, dm);
    IF r.rule_id IS NULL THEN
        price := vgc_money_round(p_cost * dm);
    ELSIF r.kind = 'cost_plus' AND r.basis = 'book' THEN
        IF p_book IS NULL THEN
            rule := 'unrated:no_price';
        ELSE
            price := vgc_money_round(p_book * r.markup);
        END IF;
    ELSIF r.kind = 'cost_plus' THEN
        price := vgc_money_round(p_cost * r.markup);
    ELSE
        q := vgc_rate_card_quantity(r.unit, p_modality, p_input, p_output);
        IF q IS NULL THEN
            rule := 'unrated:unit';
        ELSE
            price := vgc_money_round(r.fixed * q);
        END IF;
    END IF;
END $$;

-- Every change to the rules or plans is a new revision of the card.
CREATE OR REPLACE FUNCTION vgc_rate_card_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rate_card SET revision = revision + 1;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS rate_card_rules_bump ON rate_card_rules;
CREATE TRIGGER rate_card_rules_bump AFTER INSERT OR UPDATE OR DELETE ON rate_card_rules
    FOR EACH STATEMENT EXECUTE FUNCTION vgc_rate_card_bump();
DROP TRIGGER IF EXISTS tenant_plans_bump ON tenant_plans;
CREATE TRIGGER tenant_plans_bump AFTER INSERT OR UPDATE OR DELETE ON tenant_plans
    FOR EACH STATEMENT EXECUTE FUNCTION vgc_rate_card_bump();

-- Each write to a rule: its model as the book names it (deepgram/nova-3 is
-- accepted for nova-3 beside provider deepgram), and it becomes the latest
-- change (it wins ties).
CREATE OR REPLACE FUNCTION vgc_rate_card_rule_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.model := vgc_model_key(NEW.provider, NEW.model);
    IF TG_OP = 'UPDATE' THEN
        NEW.changed_seq := nextval('rate_card_changes');
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS rate_card_rules_write ON rate_card_rules;
CREATE TRIGGER rate_card_rules_write BEFORE INSERT OR UPDATE ON rate_card_rules
    FOR EACH ROW EXECUTE FUNCTION vgc_rate_card_rule_write();
