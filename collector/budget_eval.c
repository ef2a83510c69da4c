/* Budget evaluation and alert delivery on the loop and the pool. At most one
 * evaluation job runs at a time; a mark that arrives meanwhile runs one more
 * afterwards. Each delivery is leased in the table before it is posted, so a
 * replica that dies mid-post leaves it for another after the lease. */
#include "budget_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "tasks.h"
#include "webhook.h"

struct budget_gauge {
	long long id;
	double spent, forecast;
};

/* A delivery leased by an evaluation job, posted by the loop. */
struct budget_delivery {
	struct budget_eval *be;
	long long id, budget_id;
	char *body, *url, *secret;
	struct budget_delivery *prev, *next; /* be->posting while its post runs */
};

struct budget_eval {
	struct event_base *base;
	struct pool *pool;
	const struct config *cfg;
	struct webhook *webhook;
	struct task *task;	     /* the runner's handle: tasks_poke after a commit */
	bool stopped;		     /* drained: no deliveries start */
	int nbudgets;		     /* as of the last evaluation; -1 before the first */
	struct budget_gauge *gauges; /* by id, ascending */
	int ngauges;
	long long full_hour; /* the UTC hour of the last evaluation of every budget */
	bool force_full;     /* the previous evaluation failed */
	char since[32];	     /* the last one's snapshot xmin: see budget_eval_dirty_sql */
	int recording;	     /* outcome jobs on the pool */
	struct budget_delivery *posting; /* posts running; owned here */
};

struct budget_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct budget_eval *be;
	int pick_max;
	double lease_s;
	bool full;	/* every budget; else those of the tenants marked dirty */
	long long hour; /* the UTC hour it started in */
	char since[32]; /* partial: the previous evaluation's snapshot xmin */
	char now[32];	/* this one's, taken before its claims */
	char *busy;	/* budget ids of the posts running, as an array literal */
	int per_budget, per_tenant;
	/* Results, written by the worker. */
	bool ok;
	bool evaluated; /* claims ran (a partial one with no dirty tenant does not) */
	char err[1024];
	struct budget_gauge *gauges; /* the budgets evaluated, by id */
	int ngauges;
	long long *ids; /* every budget there is, ascending */
	int nids;
	PGresult *claims;
	struct budget_delivery *deliveries;
	int ndeliveries;
};

/* An outcome to record: the delivery's id and what the receiver said. */
struct budget_record_job {
	struct pool_job job;
	struct budget_eval *be;
	long long id;
	int status; /* or WEBHOOK_REFUSED: failed for good at once */
	char why[512];
	double retry_base_s, retry_max_s, retry_for_s;
	bool ok;
	char err[1024];
	char final_state[16];
	int attempts;
};

#define CLAIM_AT "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Claims every crossed threshold and every un-crossed one (resolved), in one
 * statement. Per (budget, period, threshold) the claims are a sequence:
 * threshold (seq 0), resolved (1), threshold (2), ...; the next is claimed as
 * the last seq + 1 when the threshold's state differs from the last claim's
 * kind, so a threshold crossed again after a resolve alerts again, and the
 * unique (budget, period, threshold, seq) lets one replica win each claim.
 * Returns the rows this call inserted (kind 'threshold' or 'resolved': name,
 * id, threshold, scope, percent, spent, limit), one 'status' row per budget
 * evaluated (its id, then the two ratios in the last columns) and one 'id' row
 * per budget there is (its id). */
static const char budget_eval_claim_tail[] =
	"), last AS (SELECT DISTINCT ON (a.budget_id, a.threshold) a.budget_id, a.threshold,"
	"  a.kind, a.seq FROM budget_alerts a JOIN st ON a.budget_id = st.id AND a.period_start = st.ps"
	"  ORDER BY a.budget_id, a.threshold, a.seq DESC),"
	" ins AS (INSERT INTO budget_alerts (budget_id, period_start, threshold, kind, seq,"
	"  spent_usd, percent, body, state)"
	" SELECT st.id, st.ps, t.t, 'threshold', coalesce(l.seq + 1, 0), st.spent, st.pct,"
	"  json_build_object('event', 'budget.threshold', 'budget', st.doc, 'threshold', t.t,"
	"   'at', " CLAIM_AT ")::text,"
	"  CASE WHEN st.webhook_url IS NULL THEN 'none' ELSE 'pending' END"
	" FROM st CROSS JOIN unnest(st.crossed) t(t)"
	" LEFT JOIN last l ON l.budget_id = st.id AND l.threshold = t.t"
	" WHERE l.kind IS DISTINCT FROM 'threshold'"
	" ON CONFLICT (budget_id, period_start, threshold, seq) DO NOTHING"
	" RETURNING id, budget_id, threshold, kind),"
	" res AS (INSERT INTO budget_alerts (budget_id, period_start, threshold, kind, seq,"
	"  spent_usd, percent, body, state)"
	" SELECT st.id, st.ps, l.threshold, 'resolved', l.seq + 1, st.spent, st.pct,"
	"  json_build_object('event', 'budget.resolved', 'budget', st.doc, 'threshold',"
	"   l.threshold, 'at', " CLAIM_AT ")::text,"
	"  CASE WHEN st.webhook_url IS NULL THEN 'none' ELSE 'pending' END"
	" FROM last l JOIN st ON l.budget_id = st.id"
	" WHERE l.kind = 'threshold' AND NOT (l.threshold = ANY (st.crossed))"
	" ON CONFLICT (budget_id, period_start, threshold, seq) DO NOTHING"
	" RETURNING id, budget_id, threshold, kind)"
	" SELECT c.kind, st.name, c.id, c.threshold, st.scope, st.pct_text, st.spent_text,"
	"  st.limit_text, NULL::float8, NULL::float8"
	" FROM (SELECT * FROM ins UNION ALL SELECT * FROM res) c JOIN st ON st.id = c.budget_id"
	" UNION ALL SELECT 'status', NULL, st.id, NULL, NULL, NULL, NULL, NULL,"
	"  st.spent_ratio, st.forecast_ratio FROM st"
	" UNION ALL SELECT 'id', NULL, b.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
	" FROM budgets b";

/* The tenants written by a transaction the previous evaluation may not have
 * seen (one at or after its snapshot's xmin, $1; NULL: ever), and every
 * tenant with rollup deltas not yet folded (the hourly rollup's triggers mark
 * a tenant only when the summariser folds; its spend is read from the live
 * hours, deltas included), as one text[] literal, and this snapshot's xmin
 * for the next evaluation. */
static const char budget_eval_dirty_sql[] =
	"SELECT count(*), array_agg(nullif(tenant, ''))::text,"
	" pg_snapshot_xmin(pg_current_snapshot())::text"
	" FROM (SELECT tenant FROM budget_dirty WHERE $1::xid8 IS NULL OR xid >= $1::xid8"
	"  UNION SELECT tenant FROM budget_dirty_more WHERE $1::xid8 IS NULL OR xid >= $1::xid8"
	"  UNION SELECT coalesce(tenant_id, '') FROM vgc_rollup_deltas"
	" ) d";

/* Stamps a writer left beside a locked row, long since read by every
 * evaluation (each evaluates every budget at least once an hour). */
static const char budget_eval_dirty_trim_sql[] =
	"DELETE FROM budget_dirty_more WHERE marked_at < now() - interval '1 day'";

/* Leases up to $2 due deliveries for $1 seconds, fairly: $3 lists the budget
 * ids of this collector's running posts (one per post), and no budget may
 * then have more than $4 running, nor a tenant (budgets without one count as
 * one tenant) more than $5, so one slow receiver cannot take every slot. */
static const char budget_eval_pick_sql[] =
	"WITH busy AS (SELECT u AS budget_id, count(*) AS n FROM unnest($3::bigint[]) u"
	"  GROUP BY u),"
	" busy_t AS (SELECT coalesce(b.tenant_id, '') AS tenant, sum(busy.n) AS n"
	"  FROM busy JOIN budgets b ON b.id = busy.budget_id GROUP BY 1),"
	" due AS (SELECT x.id, x.next_attempt_at, coalesce(g.tenant_id, '') AS tenant,"
	"  row_number() OVER (PARTITION BY x.budget_id ORDER BY x.next_attempt_at, x.id)"
	"   + coalesce(bb.n, 0) AS nb"
	"  FROM budget_alerts x JOIN budgets g ON g.id = x.budget_id"
	"  LEFT JOIN busy bb ON bb.budget_id = x.budget_id"
	"  WHERE x.state = 'pending' AND x.next_attempt_at <= now()"
	"  AND g.webhook_url IS NOT NULL),"
	" fair AS (SELECT d.id, d.next_attempt_at,"
	"  row_number() OVER (PARTITION BY d.tenant ORDER BY d.next_attempt_at, d.id)"
	"   + coalesce(bt.n, 0) AS nt"
	"  FROM due d LEFT JOIN busy_t bt ON bt.tenant = d.tenant WHERE d.nb <= $4::int)"
	" UPDATE budget_alerts a SET attempts = a.attempts + 1,"
	" next_attempt_at = now() + make_interval(secs => $1::float8)"
	" FROM budgets b WHERE b.id = a.budget_id AND b.webhook_url IS NOT NULL"
	" AND a.id IN (SELECT id FROM budget_alerts WHERE state = 'pending'"
	"  AND next_attempt_at <= now() AND id IN (SELECT id FROM fair WHERE nt <= $5::int"
	"   ORDER BY next_attempt_at, id LIMIT $2::int)"
	"  FOR UPDATE SKIP LOCKED)"
	" RETURNING a.id, a.budget_id, a.body, b.webhook_url, b.webhook_secret";

static void budget_delivery_free(struct budget_delivery *d)
{
	free(d->body);
	free(d->url);
	free(d->secret);
}

static void budget_job_free(struct budget_job *job)
{
	free(job->busy);
	free(job->gauges);
	free(job->ids);
	PQclear(job->claims);
	for (int i = 0; i < job->ndeliveries; i++)
		budget_delivery_free(&job->deliveries[i]);
	free(job->deliveries);
	free(job);
}

static int budget_eval_cmp_gauge(const void *a, const void *b)
{
	long long x = ((const struct budget_gauge *)a)->id,
		  y = ((const struct budget_gauge *)b)->id;

	return (x > y) - (x < y);
}

static int budget_eval_cmp_id(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* The claims' status and id rows into job's gauges and ids, sorted. */
static bool budget_eval_collect(struct budget_job *job)
{
	int n = PQntuples(job->claims);

	job->gauges = calloc((size_t)n + 1, sizeof(*job->gauges));
	job->ids = calloc((size_t)n + 1, sizeof(*job->ids));
	if (!job->gauges || !job->ids) {
		snprintf(job->err, sizeof(job->err), "out of memory");
		return false;
	}
	for (int r = 0; r < n; r++) {
		const char *kind = PQgetvalue(job->claims, r, 0);
		long long id = strtoll(PQgetvalue(job->claims, r, 2), NULL, 10);

		if (strcmp(kind, "id") == 0) {
			job->ids[job->nids++] = id;
		} else if (strcmp(kind, "status") == 0) {
			struct budget_gauge *g = &job->gauges[job->ngauges++];

			g->id = id;
			g->spent = strtod(PQgetvalue(job->claims, r, 8), NULL);
			g->forecast = strtod(PQgetvalue(job->claims, r, 9), NULL);
		}
	}
	qsort(job->gauges, (size_t)job->ngauges, sizeof(*job->gauges), budget_eval_cmp_gauge);
	qsort(job->ids, (size_t)job->nids, sizeof(*job->ids), budget_eval_cmp_id);
	return true;
}

/* A partial evaluation takes the dirty tenants first: into *tenants (a text[]
 * literal, the caller frees it), or NULL when none changed. */
static bool budget_eval_dirty(PGconn *conn, struct budget_job *job, char **tenants)
{
	const char *params[1] = { job->since[0] ? job->since : NULL };
	PGresult *res = PQexecParams(conn, budget_eval_dirty_sql, 1, NULL, params, NULL, NULL, 0);

	*tenants = NULL;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, job->err, sizeof(job->err));
		PQclear(res);
		return false;
	}
	snprintf(job->now, sizeof(job->now), "%s", PQgetvalue(res, 0, 2));
	if (strcmp(PQgetvalue(res, 0, 0), "0") != 0 &&
	    !(*tenants = strdup(PQgetvalue(res, 0, 1)))) {
		snprintf(job->err, sizeof(job->err), "out of memory");
		PQclear(res);
		return false;
	}
	PQclear(res);
	return true;
}

static bool budget_eval_claim(PGconn *conn, struct budget_job *job)
{
	const char *params[4] = { NULL, NULL, NULL, "t" };
	char *tenants = NULL;
	struct buf sql;

	/* A full evaluation reads the xmin too: the next partial one starts there. */
	if (!budget_eval_dirty(conn, job, &tenants))
		return false;
	if (job->full) {
		PGresult *res = PQexec(conn, budget_eval_dirty_trim_sql);

		PQclear(res); /* a failed trim is retried by the next full evaluation */
		free(tenants);
		tenants = NULL;
	} else if (!tenants) {
		job->evaluated = true; /* no spend changed: nothing to claim */
		return true;
	} else {
		params[2] = tenants;
	}
	buf_init(&sql, 0);
	buf_puts(&sql, "WITH st AS (");
	buf_puts(&sql, budget_status_cte);
	buf_puts(&sql, budget_eval_claim_tail);
	if (sql.over) {
		buf_release(&sql);
		free(tenants);
		snprintf(job->err, sizeof(job->err), "out of memory");
		return false;
	}
	job->claims = PQexecParams(conn, sql.data, 4, NULL, params, NULL, NULL, 0);
	buf_release(&sql);
	free(tenants);
	if (PQresultStatus(job->claims) != PGRES_TUPLES_OK) {
		db_result_error(conn, job->claims, job->err, sizeof(job->err));
		PQclear(job->claims);
		job->claims = NULL;
		return false;
	}
	job->evaluated = true;
	return budget_eval_collect(job);
}

static bool budget_eval_pick(PGconn *conn, struct budget_job *job)
{
	char lease[32], max[16], per_budget[16], per_tenant[16];
	const char *params[5] = { lease, max, job->busy, per_budget, per_tenant };
	PGresult *res;
	int n;

	if (job->pick_max <= 0)
		return true;
	snprintf(lease, sizeof(lease), "%.3f", job->lease_s);
	snprintf(max, sizeof(max), "%d", job->pick_max);
	snprintf(per_budget, sizeof(per_budget), "%d", job->per_budget);
	snprintf(per_tenant, sizeof(per_tenant), "%d", job->per_tenant);
	res = PQexecParams(conn, budget_eval_pick_sql, 5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, job->err, sizeof(job->err));
		PQclear(res);
		return false;
	}
	n = PQntuples(res);
	job->deliveries = calloc((size_t)(n ? n : 1), sizeof(*job->deliveries));
	for (int r = 0; job->deliveries && r < n; r++) {
		struct budget_delivery *d = &job->deliveries[job->ndeliveries++];

		d->be = job->be;
		d->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		d->budget_id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		d->body = strdup(PQgetvalue(res, r, 2));
		d->url = strdup(PQgetvalue(res, r, 3));
		d->secret = strdup(PQgetvalue(res, r, 4));
	}
	PQclear(res);
	/* Out of memory here leaves the leased rows to be retried after the lease. */
	return true;
}

/* Worker thread: gauges, claims, then due deliveries. */
static void budget_eval_work(struct pool_job *pj, struct pool_worker *w)
{
	struct budget_job *job = (struct budget_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));

	if (!conn)
		return;
	job->ok = budget_eval_claim(conn, job) && budget_eval_pick(conn, job);
	if (!job->ok && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

static void budget_record_work(struct pool_job *pj, struct pool_worker *w)
{
	struct budget_record_job *job = (struct budget_record_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));
	char id[24], st[16], base[32], mx[32], forr[32];
	const char *params[7] = {
		id, st, job->why, forr, base, mx, job->status == WEBHOOK_REFUSED ? "true" : "false"
	};
	bool delivered = job->status >= 200 && job->status < 300;
	PGresult *res;

	if (!conn)
		return;
	snprintf(id, sizeof(id), "%lld", job->id);
	snprintf(st, sizeof(st), "%d", job->status > 0 ? job->status : 0);
	snprintf(forr, sizeof(forr), "%.3f", job->retry_for_s);
	snprintf(base, sizeof(base), "%.3f", job->retry_base_s);
	snprintf(mx, sizeof(mx), "%.3f", job->retry_max_s);
	res = delivered
		      ? PQexecParams(
				conn,
				"UPDATE budget_alerts SET state = 'delivered',"
				" delivered_at = now(), last_status = $2::int, last_error = NULL"
				" WHERE id = $1::bigint AND state = 'pending'"
				" RETURNING state, attempts",
				2, NULL, params, NULL, NULL, 0)
		      : PQexecParams(
				conn,
				"UPDATE budget_alerts SET last_status = nullif($2::int, 0),"
				" last_error = $3, state = CASE WHEN $7::bool OR now() - created_at >="
				" make_interval(secs => $4::float8) THEN 'failed' ELSE 'pending' END,"
				" next_attempt_at = now() + make_interval(secs => least($5::float8 *"
				" power(2, least(attempts - 1, 40)), $6::float8))"
				" WHERE id = $1::bigint AND state = 'pending' RETURNING state, attempts",
				7, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, job->err, sizeof(job->err));
		if (PQstatus(conn) != CONNECTION_OK)
			pool_worker_reset(w);
	} else {
		job->ok = true;
		if (PQntuples(res) == 1) {
			snprintf(job->final_state, sizeof(job->final_state), "%s",
				 PQgetvalue(res, 0, 0));
			job->attempts = atoi(PQgetvalue(res, 0, 1));
		}
	}
	PQclear(res);
}

static void budget_record_done(struct pool_job *pj)
{
	struct budget_record_job *job = (struct budget_record_job *)pj;
	struct budget_eval *be = job->be;

	be->recording--;
	if (!job->ok)
		log_warn("budget alert %lld: could not record the delivery outcome (it will be "
			 "retried after its lease): %s",
			 job->id, job->err);
	else if (strcmp(job->final_state, "failed") == 0)
		log_warn(
			"budget alert %lld: webhook delivery failed for good after %d attempts: %s",
			job->id, job->attempts, job->why);
	else if (strcmp(job->final_state, "pending") == 0)
		log_info("budget alert %lld: webhook attempt %d got %s; retrying with backoff",
			 job->id, job->attempts, job->why);
	free(job);
}

/* Loop: a post finished. */
static void budget_eval_posted(void *arg, int status, const char *why)
{
	struct budget_delivery *d = arg;
	struct budget_eval *be = d->be;
	struct budget_record_job *job = calloc(1, sizeof(*job));

	if (d->prev)
		d->prev->next = d->next;
	else if (be->posting == d)
		be->posting = d->next;
	if (d->next)
		d->next->prev = d->prev;
	if (job) {
		job->job.work = budget_record_work;
		job->job.done = budget_record_done;
		job->be = be;
		job->id = d->id;
		job->status = status;
		if (status > 0 && (status < 200 || status >= 300))
			snprintf(job->why, sizeof(job->why), "HTTP %d", status);
		else
			snprintf(job->why, sizeof(job->why), "%s", why);
		job->retry_base_s = be->cfg->budget_retry_base_s;
		job->retry_max_s = be->cfg->budget_retry_max_s;
		job->retry_for_s = be->cfg->budget_retry_for_s;
		if (pool_submit(be->pool, &job->job))
			be->recording++;
		else {
			log_warn("budget alert %lld: pool saturated; the outcome (%s) is not "
				 "recorded and the delivery is retried after its lease",
				 d->id, job->why);
			free(job);
		}
	}
	budget_delivery_free(d);
	free(d);
}

static void budget_eval_post(struct budget_eval *be, struct budget_delivery *src)
{
	struct budget_delivery *d = malloc(sizeof(*d));
	const struct config *cfg = be->cfg;
	struct webhook_opts o = { cfg->webhook_timeout_s, cfg->webhook_max_answer_bytes,
				  cfg->webhook_allow, cfg->webhook_deny };
	char id[24], err[512];

	if (!d)
		return; /* the lease expires and the delivery is retried */
	*d = *src;
	memset(src, 0, sizeof(*src)); /* d owns the strings now */
	d->prev = NULL;
	d->next = be->posting;
	if (be->posting)
		be->posting->prev = d;
	be->posting = d;
	snprintf(id, sizeof(id), "%lld", d->id);
	if (!d->body || !d->url || !d->secret ||
	    !webhook_post(be->webhook, d->url, d->secret, d->body, id, &o, budget_eval_posted, d,
			  err, sizeof(err))) {
		budget_eval_posted(d, 0, d->body && d->url && d->secret ? err : "out of memory");
	}
}

static void budget_eval_log_claims(const PGresult *res)
{
	for (int r = 0; res && r < PQntuples(res); r++) {
		const char *kind = PQgetvalue(res, r, 0);

		if (strcmp(kind, "status") == 0)
			continue;
		log_warn("budget %s %s: alert=%s threshold=%s%% scope=\"%s\" percent=%s "
			 "spent_usd=%s limit_usd=%s",
			 PQgetvalue(res, r, 1),
			 strcmp(kind, "resolved") == 0 ? "resolved" : "crossed a threshold",
			 PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), PQgetvalue(res, r, 4),
			 PQgetvalue(res, r, 5), PQgetvalue(res, r, 6), PQgetvalue(res, r, 7));
	}
}

/* The new gauges: those the job evaluated, and the earlier ones of budgets
 * that still exist and it did not evaluate (a full job evaluated them all). */
static void budget_eval_merge(struct budget_eval *be, struct budget_job *job)
{
	struct budget_gauge *out = job->gauges;
	int n = job->ngauges;

	if (!job->full) {
		out = calloc((size_t)job->nids + 1, sizeof(*out));
		if (!out)
			return; /* keep the old gauges; the next evaluation tries again */
		n = 0;
		for (int i = 0; i < job->nids; i++) {
			struct budget_gauge key = { .id = job->ids[i] };
			const struct budget_gauge *g =
				bsearch(&key, job->gauges, (size_t)job->ngauges, sizeof(key),
					budget_eval_cmp_gauge);

			if (!g)
				g = bsearch(&key, be->gauges, (size_t)be->ngauges, sizeof(key),
					    budget_eval_cmp_gauge);
			if (g)
				out[n++] = *g;
		}
		free(job->gauges);
	}
	job->gauges = NULL;
	free(be->gauges);
	be->gauges = out;
	be->ngauges = n;
	be->nbudgets = job->nids;
}

/* Loop: an evaluation finished. */
static void budget_eval_done(struct pool_job *pj)
{
	struct budget_job *job = (struct budget_job *)pj;
	struct budget_eval *be = job->be;

	if (job->evaluated) {
		/* The claims committed, whatever happened to the pick after them. */
		if (job->claims && job->gauges && job->ids)
			budget_eval_merge(be, job);
		if (job->full)
			be->full_hour = job->hour;
		snprintf(be->since, sizeof(be->since), "%s", job->now);
		budget_eval_log_claims(job->claims);
	}
	if (!job->ok && job->err[0]) {
		/* Claims that did not commit are the next evaluation's: every budget. */
		if (!job->evaluated)
			be->force_full = true;
		log_warn("budget evaluation failed; retrying in budget_check_s: %s", job->err);
	}
	for (int i = 0; i < job->ndeliveries; i++) {
		if (be->stopped)
			break; /* leased, not posted: another replica takes them after the lease */
		budget_eval_post(be, &job->deliveries[i]);
	}
	tasks_done(be->task, job->ok);
	budget_job_free(job);
}

/* The budget ids of the running posts as a PostgreSQL array literal ("{}"
 * when none), for the pick's caps; NULL when out of memory. */
static char *budget_eval_busy(const struct budget_eval *be)
{
	struct buf b;

	buf_init(&b, 0);
	buf_puts(&b, "{");
	for (const struct budget_delivery *d = be->posting; d; d = d->next)
		buf_printf(&b, "%s%lld", d == be->posting ? "" : ",", d->budget_id);
	buf_puts(&b, "}");
	if (b.over) {
		buf_release(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

/* One evaluation: a job on the pool; the pass ends in budget_eval_done. */
void budget_eval_task_run(void *state, struct task *t)
{
	struct budget_eval *be = state;
	struct budget_job *job;

	if (!(job = calloc(1, sizeof(*job)))) {
		tasks_done(t, false);
		return;
	}
	job->job.work = budget_eval_work;
	job->job.done = budget_eval_done;
	job->be = be;
	/* The forecast moves with the hour and a period starts on one: each hour
	 * every budget is evaluated once; in between only those whose tenants'
	 * spend changed. */
	job->hour = (long long)(time(NULL) / 3600);
	job->full = be->force_full || job->hour != be->full_hour || !be->since[0];
	be->force_full = false;
	snprintf(job->since, sizeof(job->since), "%s", be->since);
	job->pick_max = be->cfg->webhook_max_inflight - webhook_inflight(be->webhook);
	job->per_budget = be->cfg->webhook_max_inflight_per_budget;
	job->per_tenant = be->cfg->webhook_max_inflight_per_tenant;
	if (!(job->busy = budget_eval_busy(be))) {
		free(job);
		tasks_done(t, false);
		return;
	}
	/* A post ends within webhook_timeout_s in all (webhook.c's deadline); the
	 * lease adds twice that and 5 s to record its outcome, so no other pick
	 * can lease the alert while its post is still open. */
	job->lease_s = 3.0 * be->cfg->webhook_timeout_s + 5;
	if (!pool_submit(be->pool, &job->job)) {
		budget_job_free(job); /* pool saturated: the next pass tries again */
		tasks_done(t, false);
	}
}

void budget_eval_note_commit(struct budget_eval *be)
{
	if (!be || be->stopped || be->nbudgets == 0)
		return;
	tasks_poke(be->task, be->cfg->budget_eval_delay_s);
}

void *budget_eval_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen)
{
	struct budget_eval *be = calloc(1, sizeof(*be));

	if (!be) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	be->base = env->base;
	be->pool = env->pool;
	be->cfg = env->cfg;
	be->task = t;
	be->nbudgets = -1;
	be->full_hour = -1;
	if (!(be->webhook = webhook_new(env->base, env->cfg->webhook_ca_file, err, errlen))) {
		free(be);
		return NULL;
	}
	return be;
}

void budget_eval_task_stop(void *state)
{
	struct budget_eval *be = state;

	be->stopped = true;
}

void budget_eval_task_free(void *state)
{
	struct budget_eval *be = state;

	if (!be)
		return;
	webhook_free(be->webhook); /* no callbacks: the deliveries below stay ours */
	while (be->posting) {
		struct budget_delivery *d = be->posting;

		be->posting = d->next;
		budget_delivery_free(d);
		free(d);
	}
	free(be->gauges);
	free(be);
}

void budget_eval_render_metrics(const struct budget_eval *be, struct buf *out)
{
	if (!be)
		return;
	/* Labelled by id: a name is the tenant's choice and says which tenants
	 * exist; the id is meaningless outside GET /v1/budgets. */
	buf_puts(out, "# HELP vgcollector_budget_spent_ratio Spend so far in the budget's current "
		      "period over its limit.\n# TYPE vgcollector_budget_spent_ratio gauge\n");
	for (int i = 0; i < be->ngauges; i++)
		buf_printf(out, "vgcollector_budget_spent_ratio{budget_id=\"%lld\"} %.17g\n",
			   be->gauges[i].id, be->gauges[i].spent);
	buf_puts(out, "# HELP vgcollector_budget_forecast_ratio Forecast spend at the end of the "
		      "budget's period over its limit.\n"
		      "# TYPE vgcollector_budget_forecast_ratio gauge\n");
	for (int i = 0; i < be->ngauges; i++)
		buf_printf(out, "vgcollector_budget_forecast_ratio{budget_id=\"%lld\"} %.17g\n",
			   be->gauges[i].id, be->gauges[i].forecast);
}
