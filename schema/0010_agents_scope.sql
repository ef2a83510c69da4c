-- 0010_agents_scope: a worker's identity holds its scope, the roster pages
-- in one stable order, and each tenant's worker count is kept for its quota.
--
-- Identity. A worker was (tenant_id, agent_id): a key scoped to project pX
-- beating the agent_id of a worker of project pY took that row over (moved it
-- to pX and wiped its host and sink counters). A worker is now
-- (tenant_id, project, agent_id): a project-scoped key writes project = its
-- scope, so it can only ever create or update rows inside that scope, and the
-- pY worker is never touched. Nothing is refused, so no beat is lost.
--
-- One index is both the identity and the page order of GET /v1/agents: each
-- nullable part is written as coalesce('+' || col, ''), which is '' for NULL
-- and never '' otherwise, so the key has no NULLs (NULL tenant first, as
-- before), is unique, and a keyset cursor compares it with a plain row
-- comparison the index answers.
--
-- Quota. agents_tenant_counts holds each tenant's number of rows in agents
-- (tenant_id NULL: the workers without one), kept by statement triggers in
-- the writer's transaction, so it follows every writer (the heartbeat, the
-- retention pass, an operator's SQL). A heartbeat creating a worker locks its
-- tenant's row and checks agents_max_per_tenant there
-- (collector/agents_store.c). tenant_id of a stored worker never changes.

ALTER TABLE agents DROP CONSTRAINT agents_identity;
CREATE UNIQUE INDEX agents_identity ON agents
    ((coalesce('+' || tenant_id, '')), agent_id, (coalesce('+' || project, '')));

CREATE TABLE agents_tenant_counts (
    tenant_id text,
    workers   bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX agents_tenant_counts_key ON agents_tenant_counts
    ((coalesce('+' || tenant_id, '')));
INSERT INTO agents_tenant_counts (tenant_id, workers)
    SELECT tenant_id, count(*) FROM agents GROUP BY tenant_id;

CREATE FUNCTION agents_count_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agents_tenant_counts AS c (tenant_id, workers)
        SELECT tenant_id, count(*) FROM agents_new GROUP BY tenant_id
        ON CONFLICT ((coalesce('+' || tenant_id, '')))
        DO UPDATE SET workers = c.workers + EXCLUDED.workers;
    RETURN NULL;
END $$;

CREATE FUNCTION agents_count_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agents_tenant_counts c SET workers = c.workers - d.n
        FROM (SELECT tenant_id, count(*) AS n FROM agents_old GROUP BY tenant_id) d
        WHERE coalesce('+' || c.tenant_id, '') = coalesce('+' || d.tenant_id, '');
    RETURN NULL;
END $$;

CREATE TRIGGER agents_count_insert AFTER INSERT ON agents
    REFERENCING NEW TABLE AS agents_new
    FOR EACH STATEMENT EXECUTE FUNCTION agents_count_insert();
CREATE TRIGGER agents_count_delete AFTER DELETE ON agents
    REFERENCING OLD TABLE AS agents_old
    FOR EACH STATEMENT EXECUTE FUNCTION agents_count_delete();

CREATE FUNCTION agents_count_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM agents_tenant_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER agents_count_truncate AFTER TRUNCATE ON agents
    FOR EACH STATEMENT EXECUTE FUNCTION agents_count_truncate();
