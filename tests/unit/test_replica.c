/* replica.c without a standby: read_db empty is "off" everywhere it shows. */
#include <string.h>

#include "buf.h"
#include "replica.h"
#include "unit.h"

UNIT_TEST(replica_without_read_db_is_off_with_unknown_lag)
{
	char err[128];
	struct replica *r = replica_new(NULL, "", "", NULL, 2, 8, 1, 30, err, sizeof(err));
	struct buf b;

	CHECK(r != NULL);
	CHECK(replica_state(r) == REPLICA_OFF);
	CHECK(replica_lag_s(r) < 0);
	CHECK(replica_idle(r));
	buf_init(&b, 0);
	replica_status_json(r, &b);
	CHECK_MSG(b.data && strcmp(b.data, "{\"state\":\"off\",\"lag_s\":null,\"max_lag_s\":30}") ==
				    0,
		  "status: %s", b.data ? b.data : "(null)");
	buf_reset(&b);
	replica_metrics_render(r, &b);
	CHECK(b.data && strstr(b.data, "\nvgcollector_replica_up 0\n"));
	CHECK(b.data && strstr(b.data, "\nvgcollector_replica_lag_seconds NaN\n"));
	CHECK(b.data && strstr(b.data, "\nvgcollector_replica_reads_fallback_total 0\n"));
	buf_release(&b);
	replica_free(r);
}

UNIT_TEST(replica_state_names_are_the_readyz_words)
{
	CHECK(strcmp(replica_state_name(REPLICA_OFF), "off") == 0);
	CHECK(strcmp(replica_state_name(REPLICA_UNKNOWN), "unknown") == 0);
	CHECK(strcmp(replica_state_name(REPLICA_OK), "ok") == 0);
	CHECK(strcmp(replica_state_name(REPLICA_LAGGING), "lagging") == 0);
	CHECK(strcmp(replica_state_name(REPLICA_DOWN), "down") == 0);
}
