-- 0024_rate_pick_index: the rate card's pick for a whole batch in one call,
-- by equality lookups rather than every key compared with every rule, and
-- planned once per connection rather than once per batch.
--
-- Ingest (collector/rate_card.c) hands vgc_rate_card_picks the batch's
-- distinct (tenant, modality, provider, model) as four arrays and joins its
-- answer back to the rows. The resolution is the one of vgc_rate_card_pick
-- (0014, 0019): of the rules whose every set scope column matches, the single
-- most specific (tenant > plan > global; model > provider > modality-only;
-- ties: the rule created or changed last). Only the way the matching rules
-- are found differs: the rules are split four ways by their first set column
-- of tenant, plan and provider, so that three of the four joins are on one
-- equality (hashed, or a lookup in rate_card_rules_scope, whose leading
-- columns are tenant_id and plan); the fourth holds only the rules scoped by
-- modality or model alone, a handful. The four parts are every rule exactly
-- once, and each applies the full match, so the candidates are the same.
--
-- It reads the rules in the calling statement's snapshot, like any STABLE
-- function, so nothing is cached across batches: a change to the card is
-- honoured by the next batch. PL/pgSQL keeps the query's plan for the
-- session; the plan holds no data.
--
-- ROWS 100: about a batch's distinct keys. With the default (1000) the
-- planner joined the picks back to the rows by sorting the whole batch for a
-- merge join instead of hashing the few picks, which cost more than the pick.

CREATE OR REPLACE FUNCTION vgc_rate_card_picks(p_tenants text[], p_modalities text[],
        p_providers text[], p_models text[])
RETURNS TABLE (k_tenant text, k_modality text, k_provider text, k_model text, rule_id bigint,
               kind text, markup numeric, basis text, fixed numeric, unit text, token text)
LANGUAGE plpgsql STABLE ROWS 100 AS $$
#variable_conflict use_column
BEGIN
    -- A card with no rules (the default markup for every row) picks nothing.
    IF NOT EXISTS (SELECT FROM rate_card_rules) THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH k AS MATERIALIZED (
        SELECT u.t AS kt, u.m AS km, u.p AS kp, u.mo AS kmo, tp.plan AS kpl,
               vgc_model_key(u.p, u.mo) AS kmk
        FROM unnest(p_tenants, p_modalities, p_providers, p_models) u(t, m, p, mo)
        LEFT JOIN tenant_plans tp ON tp.tenant_id = u.t),
    c AS (
        SELECT k.kt, k.km, k.kp, k.kmo, r.* FROM k JOIN rate_card_rules r
          ON r.tenant_id = k.kt
         AND (r.plan IS NULL OR r.plan = k.kpl) AND (r.modality IS NULL OR r.modality = k.km)
         AND (r.provider IS NULL OR r.provider = k.kp)
         AND (r.model IS NULL OR r.model = k.kmo OR r.model = k.kmk)
        UNION ALL
        SELECT k.kt, k.km, k.kp, k.kmo, r.* FROM k JOIN rate_card_rules r
          ON r.tenant_id IS NULL AND r.plan = k.kpl
         AND (r.modality IS NULL OR r.modality = k.km)
         AND (r.provider IS NULL OR r.provider = k.kp)
         AND (r.model IS NULL OR r.model = k.kmo OR r.model = k.kmk)
        UNION ALL
        SELECT k.kt, k.km, k.kp, k.kmo, r.* FROM k JOIN rate_card_rules r
          ON r.tenant_id IS NULL AND r.plan IS NULL AND r.provider = k.kp
         AND (r.modality IS NULL OR r.modality = k.km)
         AND (r.model IS NULL OR r.model = k.kmo OR r.model = k.kmk)
        UNION ALL
        SELECT k.kt, k.km, k.kp, k.kmo, r.* FROM k JOIN rate_card_rules r
          ON r.tenant_id IS NULL AND r.plan IS NULL AND r.provider IS NULL
         AND (r.modality IS NULL OR r.modality = k.km)
         AND (r.model IS NULL OR r.model = k.kmo OR r.model = k.kmk))
    SELECT DISTINCT ON (c.kt, c.km, c.kp, c.kmo) c.kt, c.km, c.kp, c.kmo, c.rule_id, c.kind,
           c.markup, c.basis, c.fixed, c.unit,
           CASE WHEN c.kind = 'cost_plus' THEN 'cost_plus:' || trim_scale(c.markup)::text
                ELSE 'fixed:' || trim_scale(c.fixed)::text || '/' || c.unit END
    FROM c
    ORDER BY c.kt, c.km, c.kp, c.kmo, c.tenant_id IS NOT NULL DESC, c.plan IS NOT NULL DESC,
             c.model IS NOT NULL DESC, c.provider IS NOT NULL DESC, c.changed_seq DESC;
END $$;
