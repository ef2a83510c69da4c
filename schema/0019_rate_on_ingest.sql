-- 0019_rate_on_ingest: the collector rates every row on ingest by the rate
-- card (collector/rate_card.c builds the SQL into the ingest statement): it
-- sets rated_price_usd and rate_rule, overwriting the worker's, and stores
-- the card revision that rated the row. An unrated row (a basis book rule on
-- an unpriced row) stores a NULL price, never 0. Rows stored before this
-- migration keep the worker's price and have no revision.
ALTER TABLE cost_rows ALTER COLUMN rated_price_usd DROP NOT NULL,
    ADD COLUMN IF NOT EXISTS rate_revision bigint;

-- The pick as ingest makes it (collector/rate_card.c): a rule's model may
-- also name the row's model_id whole (deepgram/nova-3 with no provider).
CREATE OR REPLACE FUNCTION vgc_rate_card_pick(p_tenant text, p_modality text, p_provider text,
                                              p_model text) RETURNS rate_card_rules
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM rate_card_rules r
    LEFT JOIN tenant_plans tp ON tp.tenant_id = p_tenant
    WHERE (r.tenant_id IS NULL OR r.tenant_id = p_tenant)
      AND (r.plan IS NULL OR r.plan = tp.plan)
      AND (r.modality IS NULL OR r.modality = p_modality)
      AND (r.provider IS NULL OR r.provider = p_provider)
      AND (r.model IS NULL OR r.model = p_model OR r.model = vgc_model_key(p_provider, p_model))
    ORDER BY r.tenant_id IS NOT NULL DESC, r.plan IS NOT NULL DESC,
             r.model IS NOT NULL DESC, r.provider IS NOT NULL DESC, r.changed_seq DESC
    LIMIT 1
$$;
