/* Reads on a hot standby (read_db): a second worker pool on the standby, and a
 * tracker thread that probes it every REPLICA_PROBE_MS and decides whether
 * reads may go there. The loop only reads the tracker's atomics. */
#include "replica.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "db.h"
#include "log.h"
#include "pool.h"

/* Fast enough that a standby going away sends reads to the primary within a
 * second; one tiny query on each side per probe. */
#define REPLICA_PROBE_MS 500
#define REPLICA_PROBE_CONNECT_S 2
/* A standby behind a migration fails every read naming what it lacks until
 * it replays it: one warning a minute says so without flooding the log. */
#define REPLICA_SCHEMA_WARN_MS 60000

/* A read whose statement fails on the standby with one of these SQLSTATEs
 * names something the standby lacks: during a rolling migration, what the
 * primary has and the standby has not replayed yet. The read runs once more
 * on the primary, which has it (or answers the usual 500 if it lacks it too). */
static const struct replica_schema_miss {
	const char *sqlstate, *name;
} replica_schema_misses[] = {
	{ "42P01", "undefined_table" },
	{ "42883", "undefined_function" },
	{ "42703", "undefined_column" },
};
#define REPLICA_NSCHEMA_MISSES (sizeof(replica_schema_misses) / sizeof(replica_schema_misses[0]))

/* Lag is measured on the standby as now() - pg_last_xact_replay_timestamp().
 * On an idle primary that timestamp stops moving and the age grows though
 * nothing is missing, so the primary's WAL position is read first: a standby
 * that has replayed up to it is caught up, lag 0, however old its last
 * replayed transaction. $1 is NULL when the primary could not be asked. */
static const char replica_probe_sql[] =
	"SELECT pg_is_in_recovery(),"
	" coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false),"
	" extract(epoch FROM now() - pg_last_xact_replay_timestamp())";

struct replica {
	struct pool *pool; /* on read_db; NULL when off */
	char *read_conninfo, *primary_conninfo;
	int connect_timeout_s;
	_Atomic int max_lag_s;

	pthread_t thread;
	bool thread_started;
	int wake[2]; /* pipe: replica_free stops the thread */
	_Atomic bool stopping;

	/* Written by the tracker thread; a pool worker whose standby connection
	 * failed also clears up and sets reconnect (replica_read_failed). */
	_Atomic bool probed, up;
	_Atomic long long lag_us; /* -1: unknown (up, but nothing replayed yet) */
	_Atomic bool reconnect;	  /* the tracker drops its connection and makes a new one */
	_Atomic unsigned long long reads_retried; /* reads moved to the primary mid-way */

	/* Written on the loop; reads_fallback and the two below also by a read
	 * pool worker whose read the standby lacked the schema for
	 * (replica_read_failed). Atomics so /metrics reads a whole value. */
	_Atomic unsigned long long reads_replica, reads_primary, reads_fallback;
	_Atomic unsigned long long reads_schema[REPLICA_NSCHEMA_MISSES]; /* by row of the table */
	_Atomic long long schema_warn_next_ms; /* clock_monotonic ms of the next warning */
};

/* Probes once: the primary's WAL position, then the standby's replay state.
 * Keeps the two connections open between probes; a failed one is dropped. */
static void replica_probe(struct replica *r, PGconn **sconn, PGconn **pconn)
{
	char err[512], lsn[64] = "";
	const char *params[1] = { NULL };
	PGresult *res;
	long long lag_us = -1;

	if (!*pconn)
		*pconn = db_connect(r->primary_conninfo, REPLICA_PROBE_CONNECT_S, err, sizeof(err));
	if (*pconn) {
		res = PQexec(*pconn, "SELECT pg_current_wal_lsn()::text");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			snprintf(lsn, sizeof(lsn), "%s", PQgetvalue(res, 0, 0));
			params[0] = lsn;
		} else {
			PQfinish(*pconn);
			*pconn = NULL;
		}
		PQclear(res);
	}

	/* A read found the standby's connection broken: only a fresh one may
	 * say it is back (the tracker's own may predate a restart). */
	if (atomic_exchange(&r->reconnect, false) && *sconn) {
		PQfinish(*sconn);
		*sconn = NULL;
	}
	if (!*sconn)
		*sconn = db_connect(r->read_conninfo, REPLICA_PROBE_CONNECT_S, err, sizeof(err));
	if (!*sconn)
		goto down;
	res = PQexecParams(*sconn, replica_probe_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		db_result_error(*sconn, res, err, sizeof(err));
		PQclear(res);
		PQfinish(*sconn);
		*sconn = NULL;
		goto down;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0 || strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		lag_us = 0; /* a primary itself, or replayed up to the primary's position */
	} else if (!PQgetisnull(res, 0, 2)) {
		double age = atof(PQgetvalue(res, 0, 2));
		lag_us = age > 0 ? (long long)(age * 1e6) : 0;
	}
	PQclear(res);
	if (!atomic_load(&r->up) && atomic_load(&r->probed))
		log_info("read_db is reachable again");
	atomic_store(&r->lag_us, lag_us);
	atomic_store(&r->up, true);
	atomic_store(&r->probed, true);
	return;
down:
	if (atomic_load(&r->up) || !atomic_load(&r->probed))
		log_warn("read_db unreachable, reads go to the primary: %s", err);
	atomic_store(&r->up, false);
	atomic_store(&r->lag_us, -1);
	atomic_store(&r->probed, true);
}

static void *replica_thread(void *arg)
{
	struct replica *r = arg;
	PGconn *sconn = NULL, *pconn = NULL;

	while (!atomic_load(&r->stopping)) {
		struct pollfd pfd = { .fd = r->wake[0], .events = POLLIN };

		replica_probe(r, &sconn, &pconn);
		if (poll(&pfd, 1, REPLICA_PROBE_MS) < 0 && errno != EINTR)
			break;
	}
	if (sconn)
		PQfinish(sconn);
	if (pconn)
		PQfinish(pconn);
	return NULL;
}

/* A read's statement failed on the standby with sqlstate: true (and counted,
 * and warned about now and then) when the table says the standby lacks the
 * schema the read names. The standby stays in use: other reads work there. */
static bool replica_schema_missed(struct replica *r, const char *sqlstate, const char *msg)
{
	long long now, next;

	for (size_t i = 0; i < REPLICA_NSCHEMA_MISSES; i++) {
		if (strcmp(sqlstate, replica_schema_misses[i].sqlstate) != 0)
			continue;
		atomic_fetch_add(&r->reads_schema[i], 1);
		atomic_fetch_add(&r->reads_fallback, 1);
		now = (long long)(clock_monotonic() * 1000);
		next = atomic_load(&r->schema_warn_next_ms);
		if (now >= next && atomic_compare_exchange_strong(&r->schema_warn_next_ms, &next,
								  now + REPLICA_SCHEMA_WARN_MS))
			/* The database's first line: "ERROR:  relation ... does not exist". */
			log_warn("read_db failed a read with SQLSTATE %s (%s; %.*s): the standby "
				 "lags a migration the primary has; such reads run again on the "
				 "primary until it replays it (warned once a minute)",
				 replica_schema_misses[i].sqlstate, replica_schema_misses[i].name,
				 msg ? (int)strcspn(msg, "\n") : 0, msg ? msg : "");
		return true;
	}
	return false;
}

/* A read pool worker's thread: a read failed on the standby (sqlstate NULL:
 * its connection). True when it is to run again on the primary: after a
 * failed connection, and reads stay off the standby until the tracker has
 * connected to it afresh; after a statement the standby lacked the schema
 * for (replica_schema_missed). */
static bool replica_read_failed(void *arg, const char *sqlstate, const char *msg)
{
	struct replica *r = arg;

	if (sqlstate)
		return replica_schema_missed(r, sqlstate, msg);
	atomic_fetch_add(&r->reads_retried, 1);
	atomic_store(&r->reconnect, true);
	if (atomic_exchange(&r->up, false))
		log_warn("read_db connection failed during a read; retrying it on the primary, "
			 "reads go to the primary until read_db answers a new connection");
	atomic_store(&r->lag_us, -1);
	return true;
}

struct replica *replica_new(struct event_base *base, const char *read_conninfo,
			    const char *primary_conninfo, struct pool *primary, int pool_size,
			    int queue_max, int connect_timeout_s, int max_lag_s, char *err,
			    size_t errlen)
{
	struct replica *r = calloc(1, sizeof(*r));

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->wake[0] = r->wake[1] = -1;
	atomic_store(&r->max_lag_s, max_lag_s);
	atomic_store(&r->lag_us, -1);
	if (!read_conninfo[0])
		return r;
	r->read_conninfo = strdup(read_conninfo);
	r->primary_conninfo = strdup(primary_conninfo);
	if (!r->read_conninfo || !r->primary_conninfo) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (pipe2(r->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	r->pool =
		pool_new(base, read_conninfo, pool_size, queue_max, connect_timeout_s, err, errlen);
	if (!r->pool)
		goto fail;
	if (primary)
		pool_set_fallback(r->pool, primary, replica_read_failed, r);
	if (pthread_create(&r->thread, NULL, replica_thread, r) != 0) {
		snprintf(err, errlen, "cannot start the replica tracker thread");
		goto fail;
	}
	r->thread_started = true;
	return r;
fail:
	replica_free(r);
	return NULL;
}

void replica_free(struct replica *r)
{
	if (!r)
		return;
	if (r->thread_started) {
		atomic_store(&r->stopping, true);
		if (write(r->wake[1], "x", 1) < 0) {
			/* the pipe is full: the thread wakes anyway */
		}
		pthread_join(r->thread, NULL);
	}
	if (r->pool)
		pool_free(r->pool);
	if (r->wake[0] >= 0) {
		close(r->wake[0]);
		close(r->wake[1]);
	}
	free(r->read_conninfo);
	free(r->primary_conninfo);
	free(r);
}

void replica_set_max_lag(struct replica *r, int max_lag_s)
{
	if (r)
		atomic_store(&r->max_lag_s, max_lag_s);
}

void replica_set_queue_max(struct replica *r, int queue_max)
{
	if (r && r->pool)
		pool_set_queue_max(r->pool, queue_max);
}

enum replica_state replica_state(const struct replica *r)
{
	long long lag;

	if (!r || !r->pool)
		return REPLICA_OFF;
	if (!atomic_load(&r->probed))
		return REPLICA_UNKNOWN;
	if (!atomic_load(&r->up))
		return REPLICA_DOWN;
	lag = atomic_load(&r->lag_us);
	if (lag < 0 || lag > (long long)atomic_load(&r->max_lag_s) * 1000000)
		return REPLICA_LAGGING;
	return REPLICA_OK;
}

const char *replica_state_name(enum replica_state s)
{
	switch (s) {
	case REPLICA_OFF: return "off";
	case REPLICA_UNKNOWN: return "unknown";
	case REPLICA_OK: return "ok";
	case REPLICA_LAGGING: return "lagging";
	case REPLICA_DOWN: return "down";
	}
	return "unknown";
}

double replica_lag_s(const struct replica *r)
{
	long long lag;

	if (!r || !r->pool || !atomic_load(&r->up))
		return -1;
	lag = atomic_load(&r->lag_us);
	return lag < 0 ? -1 : (double)lag / 1e6;
}

bool replica_idle(const struct replica *r)
{
	return !r || !r->pool || pool_idle(r->pool);
}

struct replica_choice replica_choose(struct replica *r, struct pool *primary, bool primary_asked)
{
	struct replica_choice c = { primary, false, replica_state(r) };

	if (c.state == REPLICA_OK && !primary_asked) {
		atomic_fetch_add(&r->reads_replica, 1);
		c.pool = r->pool;
		c.on_replica = true;
		return c;
	}
	if (r) {
		atomic_fetch_add(&r->reads_primary, 1);
		if (c.state != REPLICA_OFF && c.state != REPLICA_OK)
			atomic_fetch_add(&r->reads_fallback, 1);
	}
	return c;
}

void replica_status_json(const struct replica *r, struct buf *out)
{
	double lag = replica_lag_s(r);

	buf_printf(out, "{\"state\":\"%s\"", replica_state_name(replica_state(r)));
	if (lag >= 0)
		buf_printf(out, ",\"lag_s\":%.3f", lag);
	else
		buf_puts(out, ",\"lag_s\":null");
	buf_printf(out, ",\"max_lag_s\":%d}", r ? atomic_load(&r->max_lag_s) : 0);
}

void replica_metrics_render(const struct replica *r, struct buf *out)
{
	enum replica_state s = replica_state(r);
	double lag = replica_lag_s(r);

	buf_printf(out,
		   "# HELP vgcollector_replica_up 1 while read_db answers its probe; 0 when down "
		   "or not configured.\n"
		   "# TYPE vgcollector_replica_up gauge\nvgcollector_replica_up %d\n",
		   s == REPLICA_OK || s == REPLICA_LAGGING);
	buf_puts(out,
		 "# HELP vgcollector_replica_lag_seconds How far read_db's data is behind the "
		 "primary (0 when replayed up to the primary's WAL position; NaN when unknown, "
		 "down or not configured).\n"
		 "# TYPE vgcollector_replica_lag_seconds gauge\n");
	if (lag >= 0)
		buf_printf(out, "vgcollector_replica_lag_seconds %.3f\n", lag);
	else
		buf_puts(out, "vgcollector_replica_lag_seconds NaN\n");
	buf_printf(out,
		   "# HELP vgcollector_replica_reads_total Read requests by where they ran.\n"
		   "# TYPE vgcollector_replica_reads_total counter\n"
		   "vgcollector_replica_reads_total{target=\"replica\"} %llu\n"
		   "vgcollector_replica_reads_total{target=\"primary\"} %llu\n",
		   r ? atomic_load(&r->reads_replica) : 0ULL,
		   r ? atomic_load(&r->reads_primary) : 0ULL);
	buf_printf(out,
		   "# HELP vgcollector_replica_reads_fallback_total Reads sent to the primary "
		   "because read_db was down or lagging past read_max_lag_s, or lacked what "
		   "the read names (see vgcollector_replica_reads_schema_fallback_total).\n"
		   "# TYPE vgcollector_replica_reads_fallback_total counter\n"
		   "vgcollector_replica_reads_fallback_total %llu\n",
		   r ? atomic_load(&r->reads_fallback) : 0ULL);
	buf_puts(out, "# HELP vgcollector_replica_reads_schema_fallback_total Reads that failed on "
		      "read_db because it lacks a relation, function or column (a migration not "
		      "replayed yet), run again on the primary, by SQLSTATE.\n"
		      "# TYPE vgcollector_replica_reads_schema_fallback_total counter\n");
	for (size_t i = 0; i < REPLICA_NSCHEMA_MISSES; i++)
		buf_printf(
			out,
			"vgcollector_replica_reads_schema_fallback_total{sqlstate=\"%s\"} %llu\n",
			replica_schema_misses[i].sqlstate,
			r ? atomic_load(&r->reads_schema[i]) : 0ULL);
	buf_printf(out,
		   "# HELP vgcollector_replica_reads_retried_total Reads whose read_db connection "
		   "failed, answered from the primary instead.\n"
		   "# TYPE vgcollector_replica_reads_retried_total counter\n"
		   "vgcollector_replica_reads_retried_total %llu\n",
		   r ? atomic_load(&r->reads_retried) : 0ULL);
}
