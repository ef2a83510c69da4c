/* The synchronous-standby check. A commit is safe from a failover only when
 * the primary waits for a standby before answering: synchronous_standby_names
 * names one and synchronous_commit (as the collector's sessions see it) is
 * on, remote_write or remote_apply. Otherwise a promoted standby can lack
 * rows the collector already acknowledged, which no resend brings back. */
#include "durability.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "tasks.h"

enum durability_state { DURABILITY_UNKNOWN = 0, DURABILITY_ASYNC, DURABILITY_SYNC };

struct durability {
	struct pool *pool;
	struct task *t;
	enum durability_state state;
	bool announce; /* warn on the next answer even if nothing changed */
};

struct durability_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct durability *d;
	struct task *t;
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

	if (!job->ok) {
		log_debug("synchronous standby check not answered: %s", job->err);
		tasks_done(job->t, false);
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
	tasks_done(job->t, true);
	free(job);
}

void durability_task_run(void *state, struct task *t)
{
	struct durability *d = state;
	struct durability_job *job = calloc(1, sizeof(*job));

	if (!job) {
		tasks_done(t, false); /* the next pass tries again */
		return;
	}
	job->job.work = durability_work;
	job->job.done = durability_done;
	job->d = d;
	job->t = t;
	if (!pool_submit(d->pool, &job->job)) {
		free(job);
		tasks_done(t, false);
	}
}

void *durability_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen)
{
	struct durability *d = calloc(1, sizeof(*d));

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->pool = env->pool;
	d->t = t;
	d->announce = true; /* the first answer warns */
	return d;
}

void durability_task_free(void *state)
{
	free(state);
}

void durability_recheck(void *state)
{
	struct durability *d = state;

	if (!d)
		return;
	d->announce = true;
	tasks_poke(d->t, 0);
}

void durability_render_metrics(const void *state, struct buf *out)
{
	const struct durability *d = state;

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
