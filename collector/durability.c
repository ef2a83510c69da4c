/* The synchronous-standby check. A commit is safe from a failover only when
 * the primary waits for a standby before answering: synchronous_standby_names
 * names one and synchronous_commit (as the collector's sessions see it) is
 * on, remote_write or remote_apply. Otherwise a promoted standby can lack
 * rows the collector already acknowledged, which no resend brings back. */
#include "durability.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "log.h"
#include "pool.h"

/* Often enough to see a failover to a lone primary within a scrape or two. */
#define DURABILITY_INTERVAL_S 30

enum durability_state { DURABILITY_UNKNOWN = 0, DURABILITY_ASYNC, DURABILITY_SYNC };

struct durability {
	struct pool *pool;
	struct event *timer;
	enum durability_state state;
	bool busy;     /* a check is queued or running */
	bool announce; /* warn on the next answer even if nothing changed */
};

struct durability_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct durability *d;
	bool ok;
	char names[256];
	char commit[32];
	char err[512];
};

/* Worker thread. */
static void durability_work(struct pool_job *pj, struct pool_worker *w)
{
	struct durability_job *job = (struct durability_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));
	PGresult *res;

	if (!conn)
		return;
	res = PQexec(conn, "SELECT current_setting('synchronous_standby_names'),"
			   " current_setting('synchronous_commit')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		db_result_error(conn, res, job->err, sizeof(job->err));
		PQclear(res);
		if (PQstatus(conn) != CONNECTION_OK)
			pool_worker_reset(w);
		return;
	}
	snprintf(job->names, sizeof(job->names), "%s", PQgetvalue(res, 0, 0));
	snprintf(job->commit, sizeof(job->commit), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	job->ok = true;
}

/* Loop thread. */
static void durability_done(struct pool_job *pj)
{
	struct durability_job *job = (struct durability_job *)pj;
	struct durability *d = job->d;
	enum durability_state was = d->state;
	bool no_names, no_wait;

	d->busy = false;
	if (!job->ok) {
		log_debug("synchronous standby check not answered: %s", job->err);
		free(job);
		return;
	}
	no_names = job->names[0] == '\0';
	no_wait = strcmp(job->commit, "off") == 0 || strcmp(job->commit, "local") == 0;
	d->state = no_names || no_wait ? DURABILITY_ASYNC : DURABILITY_SYNC;
	if (d->state == DURABILITY_ASYNC && (d->announce || was != DURABILITY_ASYNC))
		log_warn("the database has no synchronous standby (%s): after a failover the new "
			 "primary can lack rows this collector already acknowledged",
			 no_names ? "synchronous_standby_names is empty"
				  : "synchronous_commit is off or local");
	else if (d->state == DURABILITY_SYNC && was == DURABILITY_ASYNC)
		log_info("the database has a synchronous standby again (%s)", job->names);
	d->announce = false;
	free(job);
}

static void durability_queue(struct durability *d)
{
	struct durability_job *job;

	if (d->busy || !(job = calloc(1, sizeof(*job))))
		return; /* the running check answers, or the next tick tries again */
	job->job.work = durability_work;
	job->job.done = durability_done;
	job->d = d;
	if (!pool_submit(d->pool, &job->job)) {
		free(job);
		return;
	}
	d->busy = true;
}

static void durability_tick(evutil_socket_t fd, short what, void *arg)
{
	durability_queue(arg);
}

struct durability *durability_new(struct event_base *base, struct pool *pool)
{
	struct timeval every = { DURABILITY_INTERVAL_S, 0 };
	struct durability *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->pool = pool;
	d->announce = true;
	d->timer = event_new(base, -1, EV_PERSIST, durability_tick, d);
	if (!d->timer || event_add(d->timer, &every) != 0) {
		durability_free(d);
		return NULL;
	}
	durability_queue(d);
	return d;
}

void durability_recheck(struct durability *d)
{
	if (!d)
		return;
	d->announce = true;
	durability_queue(d);
}

void durability_render_metrics(const struct durability *d, struct buf *out)
{
	if (!d || d->state == DURABILITY_UNKNOWN)
		return;
	buf_printf(out,
		   "# HELP vgcollector_db_synchronous_standby 1 when the database waits for a "
		   "synchronous standby before a commit returns; 0 when a failover can lose "
		   "acknowledged rows.\n"
		   "# TYPE vgcollector_db_synchronous_standby gauge\n"
		   "vgcollector_db_synchronous_standby %d\n",
		   d->state == DURABILITY_SYNC);
}

void durability_free(struct durability *d)
{
	if (!d)
		return;
	if (d->timer)
		event_free(d->timer);
	free(d);
}
