-- 0005_scale: the rollup's unique key leads with tenant_id, the column a
-- distributed PostgreSQL (Citus) would shard cost_rollup_hourly by, so the
-- move is only DDL later (README "Scaling out"). Free today: the key with
-- tenant_id first also serves the tenant-scoped reads the (tenant_id, hour)
-- index served, and an index on (hour) serves the all-tenant reads the old
-- key's leading hour served, so the table keeps two indexes, as before. The
-- ingest upsert names the key's columns, not the index, so it is unchanged.
-- Upgrades in place: the rows stay, the indexes are rebuilt (the rollup holds
-- one row per hour and group, far fewer than cost_rows).

CREATE UNIQUE INDEX cost_rollup_hourly_key_tenant_first ON cost_rollup_hourly
    (tenant_id, hour, project, agent_id, modality, provider, model_id) NULLS NOT DISTINCT;
DROP INDEX cost_rollup_hourly_key;
DROP INDEX cost_rollup_hourly_tenant;
ALTER INDEX cost_rollup_hourly_key_tenant_first RENAME TO cost_rollup_hourly_key;
CREATE INDEX cost_rollup_hourly_hour ON cost_rollup_hourly (hour);
