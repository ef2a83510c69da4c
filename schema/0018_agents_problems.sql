-- 0018_agents_problems: the roster's rare states found through indexes.
--
-- A page of GET /v1/agents filtered on delivery dropping or rejecting (the
-- dashboard's fleet view asks for them first) had to walk the whole roster:
-- both states are derived when read. Every dropping worker has
-- dropped_grew_at set, and every rejecting one rejected_grew_at, so these
-- partial indexes hold just the workers that ever dropped or were refused
-- rows, and the listing restates its filter as "IS NOT NULL" for them
-- (collector/agents_store.c). Offline pages use agents_last_seen.

CREATE INDEX agents_dropped ON agents (dropped_grew_at) WHERE dropped_grew_at IS NOT NULL;
CREATE INDEX agents_rejected ON agents (rejected_grew_at) WHERE rejected_grew_at IS NOT NULL;
