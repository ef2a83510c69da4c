/* The beat buffer (agents_flush.h). Two locks: agents_flush_mu guards the
 * known-worker table and the list of waiting beats (held for a lookup or an
 * append, never across SQL); agents_flush_write_mu serialises flushes, so
 * beats reach the table in arrival order. A flush writes one UPDATE per
 * round over json_to_recordset: one statement for thousands of beats, where
 * each beat alone is a statement and a commit. last_seen stays the
 * database's clock at receipt: the flush's now() less the beat's age in the
 * buffer. */
#include "agents_flush.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents_beat.h"
#include "agents_store.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "tasks.h"

/* A worker the roster holds (it was stored by this collector). */
struct agents_known {
	char *key; /* "<tenant key>\x1f<project key>\x1f<agent_id>", keys as in SQL */
	uint32_t hash;
	bool known;	/* false again when a flush found it gone and could not store it */
	unsigned round; /* during a flush (write lock): beats of it seen so far */
	bool hit;	/* during a flush (write lock): the round's UPDATE found it */
};

/* One buffered beat; its strings live in data, after the struct. */
struct agents_pend {
	struct agents_pend *next;
	struct agents_known *k;
	double received; /* clock_monotonic */
	unsigned round;
	char *tenant, *project;
	struct agents_beat b;
	char data[];
};

static pthread_mutex_t agents_flush_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t agents_flush_write_mu = PTHREAD_MUTEX_INITIALIZER;
/* Under agents_flush_mu. */
static struct agents_known **agents_flush_slots;
static size_t agents_flush_nslots, agents_flush_nknown;
static struct agents_pend *agents_flush_head, **agents_flush_tail = &agents_flush_head;
static size_t agents_flush_npend; /* waiting or being written */
/* Under agents_flush_write_mu: beats a failed flush hands to the next. */
static struct agents_pend *agents_flush_retry;
/* Set at start, read by workers. */
static atomic_bool agents_flush_on;
static size_t agents_flush_max;

/* The task's state (loop thread). */
struct agents_flush_task {
	struct pool *pool;
	const struct config *cfg;
};

static uint32_t agents_flush_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The worker's key (malloc'd), or NULL when out of memory. */
static char *agents_flush_key(const char *tenant, const char *project, const char *agent_id)
{
	char *k;

	if (asprintf(&k, "%s%s\x1f%s%s\x1f%s", tenant ? "+" : "", tenant ? tenant : "",
		     project ? "+" : "", project ? project : "", agent_id) < 0)
		return NULL;
	return k;
}

/* The slot of key (empty or holding it). Under agents_flush_mu, nslots > 0. */
static struct agents_known **agents_flush_slot(const char *key, uint32_t h)
{
	size_t i = h & (agents_flush_nslots - 1);

	while (agents_flush_slots[i] &&
	       (agents_flush_slots[i]->hash != h || strcmp(agents_flush_slots[i]->key, key) != 0))
		i = (i + 1) & (agents_flush_nslots - 1);
	return &agents_flush_slots[i];
}

/* Doubles the table. Under agents_flush_mu. */
static bool agents_flush_grow(void)
{
	size_t n = agents_flush_nslots ? agents_flush_nslots * 2 : 1024;
	struct agents_known **old = agents_flush_slots;
	size_t oldn = agents_flush_nslots;

	if (!(agents_flush_slots = calloc(n, sizeof(*agents_flush_slots)))) {
		agents_flush_slots = old;
		return false;
	}
	agents_flush_nslots = n;
	for (size_t i = 0; i < oldn; i++)
		if (old[i])
			*agents_flush_slot(old[i]->key, old[i]->hash) = old[i];
	free(old);
	return true;
}

static size_t agents_flush_len(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

/* Copies s into *at, advancing it; NULL stays NULL. */
static const char *agents_flush_copy(const char *s, char **at)
{
	char *d = *at;
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*at += n;
	return d;
}

/* A beat with every string copied, or NULL when out of memory. */
static struct agents_pend *agents_flush_pend_new(const struct agents_beat *b, const char *tenant,
						 const char *project)
{
	size_t n = agents_flush_len(tenant) + agents_flush_len(project) +
		   agents_flush_len(b->agent_id) + agents_flush_len(b->agent_name) +
		   agents_flush_len(b->status) + agents_flush_len(b->version) +
		   agents_flush_len(b->region) + agents_flush_len(b->host) +
		   agents_flush_len(b->sink.last_error);
	struct agents_pend *p = malloc(sizeof(*p) + n);
	char *at;

	if (!p)
		return NULL;
	at = p->data;
	p->next = NULL;
	p->k = NULL;
	p->round = 0;
	p->received = clock_monotonic();
	p->b = *b;
	p->b.project = NULL; /* the stored project is p->project */
	p->tenant = (char *)agents_flush_copy(tenant, &at);
	p->project = (char *)agents_flush_copy(project, &at);
	p->b.agent_id = agents_flush_copy(b->agent_id, &at);
	p->b.agent_name = agents_flush_copy(b->agent_name, &at);
	p->b.status = agents_flush_copy(b->status, &at);
	p->b.version = agents_flush_copy(b->version, &at);
	p->b.region = agents_flush_copy(b->region, &at);
	p->b.host = agents_flush_copy(b->host, &at);
	p->b.sink.last_error = agents_flush_copy(b->sink.last_error, &at);
	return p;
}

bool agents_flush_offer(const struct agents_beat *b, const char *tenant, const char *project)
{
	struct agents_known **slot;
	struct agents_pend *p;
	char *key;
	bool ok = false;

	if (!atomic_load(&agents_flush_on))
		return false;
	if (!(key = agents_flush_key(tenant, project, b->agent_id)))
		return false;
	if (!(p = agents_flush_pend_new(b, tenant, project))) {
		free(key);
		return false;
	}
	pthread_mutex_lock(&agents_flush_mu);
	if (agents_flush_nslots && agents_flush_npend < agents_flush_max) {
		slot = agents_flush_slot(key, agents_flush_hash(key));
		if (*slot && (*slot)->known) {
			p->k = *slot;
			*agents_flush_tail = p;
			agents_flush_tail = &p->next;
			agents_flush_npend++;
			ok = true;
		}
	}
	pthread_mutex_unlock(&agents_flush_mu);
	free(key);
	if (!ok)
		free(p);
	return ok;
}

void agents_flush_known(const char *tenant, const char *project, const char *agent_id)
{
	struct agents_known **slot, *k;
	char *key;
	uint32_t h;

	if (!atomic_load(&agents_flush_on) || !(key = agents_flush_key(tenant, project, agent_id)))
		return;
	h = agents_flush_hash(key);
	pthread_mutex_lock(&agents_flush_mu);
	if ((agents_flush_nknown + 1) * 2 > agents_flush_nslots && !agents_flush_grow())
		goto out;
	slot = agents_flush_slot(key, h);
	if (*slot) {
		(*slot)->known = true;
	} else if (agents_flush_nknown < agents_flush_max && (k = calloc(1, sizeof(*k)))) {
		k->key = key;
		k->hash = h;
		k->known = true;
		*slot = k;
		agents_flush_nknown++;
		key = NULL;
	}
out:
	pthread_mutex_unlock(&agents_flush_mu);
	free(key);
}

/* s as a JSON string (or null) into b. The beat's strings are valid UTF-8
 * without control characters (agents_beat_decode), so only " and \ need
 * escaping. */
static void agents_flush_json_str(struct buf *b, const char *s)
{
	if (!s) {
		buf_puts(b, "null");
		return;
	}
	buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			buf_putc(b, '\\');
		buf_putc(b, *s);
	}
	buf_putc(b, '"');
}

static void agents_flush_json_num(struct buf *b, bool has, long long v)
{
	if (has)
		buf_printf(b, "%lld", v);
	else
		buf_puts(b, "null");
}

/* One beat as an object of the recordset below. */
static void agents_flush_json(struct buf *out, const struct agents_pend *p, bool first, double now)
{
	const struct agents_beat *b = &p->b;
	const struct {
		const char *name, *v;
	} strs[] = { { "tenant_id", p->tenant },      { "agent_id", b->agent_id },
		     { "agent_name", b->agent_name }, { "project", p->project },
		     { "status", b->status },	      { "version", b->version },
		     { "region", b->region },	      { "host", b->host } };
	const struct {
		const char *name;
		long long v;
	} sink[] = { { "sink_recorded", b->sink.recorded },
		     { "sink_sent", b->sink.sent },
		     { "sink_dropped", b->sink.dropped },
		     { "sink_rejected", b->sink.rejected },
		     { "sink_queued", b->sink.queued },
		     { "sink_spooled_rows", b->sink.spooled_rows },
		     { "sink_spool_bytes", b->sink.spool_bytes } };

	buf_puts(out, first ? "{" : ",{");
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		buf_printf(out, "\"%s\":", strs[i].name);
		agents_flush_json_str(out, strs[i].v);
		buf_putc(out, ',');
	}
	buf_puts(out, "\"active_sessions\":");
	agents_flush_json_num(out, b->has_sessions, b->active_sessions);
	if (b->has_started_at)
		buf_printf(out, ",\"started_at\":%.6f", b->started_at);
	if (b->has_ts)
		buf_printf(out, ",\"client_ts\":%.6f", b->ts);
	buf_printf(out, ",\"age\":%.6f", now - p->received > 0 ? now - p->received : 0.0);
	for (size_t i = 0; i < sizeof(sink) / sizeof(sink[0]); i++) {
		buf_printf(out, ",\"%s\":", sink[i].name);
		agents_flush_json_num(out, b->has_sink, sink[i].v);
	}
	buf_puts(out, ",\"sink_last_error\":");
	agents_flush_json_str(out, b->has_sink ? b->sink.last_error : NULL);
	buf_putc(out, '}');
}

/* A round's UPDATE: the same SET as a single beat's (agents_store.c), over
 * the round's beats; it returns the key of each worker it found. */
static const char agents_flush_sql[] =
	"UPDATE agents AS a SET " AGENTS_STORE_SET
	" FROM (SELECT r.tenant_id, r.agent_id, r.agent_name, r.project, r.status,"
	" r.active_sessions, r.version, r.region, r.host, to_timestamp(r.started_at) AS started_at,"
	" to_timestamp(r.client_ts) AS client_ts, now() - make_interval(secs => r.age) AS last_seen,"
	" r.sink_recorded, r.sink_sent, r.sink_dropped, r.sink_rejected, r.sink_queued,"
	" r.sink_spooled_rows, r.sink_spool_bytes, r.sink_last_error"
	" FROM json_to_recordset($1::json) AS r(tenant_id text, agent_id text, agent_name text,"
	" project text, status text, active_sessions int, version text, region text, host text,"
	" started_at float8, client_ts float8, age float8, sink_recorded bigint, sink_sent bigint,"
	" sink_dropped bigint, sink_rejected bigint, sink_queued bigint, sink_spooled_rows bigint,"
	" sink_spool_bytes bigint, sink_last_error text)) AS excluded"
	" WHERE coalesce('+' || a.tenant_id, '') = coalesce('+' || excluded.tenant_id, '')"
	" AND a.agent_id = excluded.agent_id"
	" AND coalesce('+' || a.project, '') = coalesce('+' || excluded.project, '')"
	" RETURNING coalesce('+' || a.tenant_id, ''), coalesce('+' || a.project, ''), a.agent_id";

/* Marks the workers res found (under agents_flush_mu). */
static void agents_flush_mark(PGresult *res)
{
	pthread_mutex_lock(&agents_flush_mu);
	for (int i = 0; i < PQntuples(res); i++) {
		char *key;
		struct agents_known **slot;

		if (asprintf(&key, "%s\x1f%s\x1f%s", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			     PQgetvalue(res, i, 2)) < 0)
			continue;
		slot = agents_flush_slot(key, agents_flush_hash(key));
		if (*slot)
			(*slot)->hit = true;
		free(key);
	}
	pthread_mutex_unlock(&agents_flush_mu);
}

/* Writes round r of list. A beat the UPDATE did not find is stored alone,
 * under the quota. False with err when the database failed. */
static bool agents_flush_round(PGconn *conn, struct agents_pend *list, unsigned r,
			       long long max_per_tenant, char *err, size_t errlen)
{
	struct buf json;
	const char *param[1];
	PGresult *res;
	double now = clock_monotonic();
	bool ok = true;

	buf_init(&json, 0);
	buf_putc(&json, '[');
	for (struct agents_pend *p = list; p; p = p->next)
		if (p->round == r)
			agents_flush_json(&json, p, json.len == 1, now);
	buf_putc(&json, ']');
	if (json.over) {
		buf_release(&json);
		snprintf(err, errlen, "out of memory building a roster flush");
		return false;
	}
	param[0] = json.data;
	res = PQexecParams(conn, agents_flush_sql, 1, NULL, param, NULL, NULL, 0);
	buf_release(&json);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	agents_flush_mark(res);
	PQclear(res);
	for (struct agents_pend *p = list; p && ok; p = p->next) {
		int st;

		if (p->round != r)
			continue;
		if (p->k->hit) {
			p->k->hit = false;
			continue;
		}
		/* Gone since it was stored (retention forgot it, or an operator
		 * deleted it): it comes back as a new worker would. */
		st = agents_store_beat(conn, &p->b, p->tenant, p->project, max_per_tenant, err,
				       errlen);
		if (st == 429) {
			log_warn("roster: a buffered beat of agent_id \"%s\" is dropped: %s",
				 p->b.agent_id, err);
			pthread_mutex_lock(&agents_flush_mu);
			p->k->known = false;
			pthread_mutex_unlock(&agents_flush_mu);
		} else if (st != 200) {
			ok = false;
		}
	}
	for (struct agents_pend *p = list; p; p = p->next)
		if (p->round == r)
			p->k->hit = false;
	return ok;
}

/* Writes every buffered beat, in order. False with err when the database
 * failed: the beats not written wait for the next flush. */
static bool agents_flush_now(PGconn *conn, long long max_per_tenant, char *err, size_t errlen)
{
	struct agents_pend *list, **tail, *p, *next;
	unsigned rounds = 0, r;
	size_t written = 0;
	bool ok = true;

	pthread_mutex_lock(&agents_flush_write_mu);
	pthread_mutex_lock(&agents_flush_mu);
	list = agents_flush_retry;
	for (tail = &list; *tail; tail = &(*tail)->next)
		;
	*tail = agents_flush_head;
	agents_flush_head = NULL;
	agents_flush_tail = &agents_flush_head;
	pthread_mutex_unlock(&agents_flush_mu);
	agents_flush_retry = NULL;
	/* A worker's n-th beat in the list goes in round n: one beat per worker
	 * per statement, and its rounds in arrival order. */
	for (p = list; p; p = p->next) {
		p->round = p->k->round++;
		if (p->round + 1 > rounds)
			rounds = p->round + 1;
	}
	for (p = list; p; p = p->next)
		p->k->round = 0;
	for (r = 0; r < rounds && ok; r++)
		ok = agents_flush_round(conn, list, r, max_per_tenant, err, errlen);
	/* Rounds before r are written; the rest wait, renumbered next time. */
	tail = &agents_flush_retry;
	for (p = list; p; p = next) {
		next = p->next;
		if (!ok && p->round >= r - 1) {
			*tail = p;
			tail = &p->next;
			p->next = NULL;
		} else {
			free(p);
			written++;
		}
	}
	pthread_mutex_lock(&agents_flush_mu);
	agents_flush_npend -= written;
	pthread_mutex_unlock(&agents_flush_mu);
	pthread_mutex_unlock(&agents_flush_write_mu);
	return ok;
}

struct agents_flush_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct task *t;
	long long max_per_tenant;
	bool ok;
	char err[512];
};

/* Worker thread. */
static void agents_flush_work(struct pool_job *pj, struct pool_worker *w)
{
	struct agents_flush_job *job = (struct agents_flush_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));

	if (!conn)
		return;
	job->ok = agents_flush_now(conn, job->max_per_tenant, job->err, sizeof(job->err));
	if (!job->ok && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Loop thread. */
static void agents_flush_done(struct pool_job *pj)
{
	struct agents_flush_job *job = (struct agents_flush_job *)pj;

	if (!job->ok)
		log_warn("roster: buffered beats not written yet (retried at the next flush): %s",
			 job->err);
	tasks_done(job->t, job->ok);
	free(job);
}

void agents_flush_task_run(void *state, struct task *t)
{
	struct agents_flush_task *ft = state;
	struct agents_flush_job *job;
	size_t n;

	pthread_mutex_lock(&agents_flush_mu);
	n = agents_flush_npend;
	pthread_mutex_unlock(&agents_flush_mu);
	if (n == 0) {
		tasks_done(t, true);
		return;
	}
	if (!(job = calloc(1, sizeof(*job)))) {
		tasks_done(t, false); /* the next pass tries again */
		return;
	}
	job->job.work = agents_flush_work;
	job->job.done = agents_flush_done;
	job->t = t;
	job->max_per_tenant = ft->cfg->agents_max_per_tenant;
	if (!pool_submit(ft->pool, &job->job)) {
		free(job);
		tasks_done(t, false);
	}
}

/* Once at start, before the loop runs (blocking is fine there): every
 * worker the roster holds is known, so its beats are buffered from the
 * first one after a restart. A worker another collector creates later
 * becomes known at its first beat here. */
static void agents_flush_load(const struct config *cfg)
{
	char err[512];
	PGconn *conn = db_connect(cfg->db, cfg->db_connect_timeout_s, err, sizeof(err));
	PGresult *res;

	if (!conn) {
		log_warn("roster: the workers in the roster were not loaded (%s); each one's "
			 "first beat here is stored as it comes",
			 err);
		return;
	}
	res = PQexec(conn, "SELECT tenant_id, project, agent_id FROM agents");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, sizeof(err));
		log_warn("roster: the workers in the roster were not loaded (%s); each one's "
			 "first beat here is stored as it comes",
			 err);
	}
	for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++)
		agents_flush_known(PQgetisnull(res, i, 0) ? NULL : PQgetvalue(res, i, 0),
				   PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1),
				   PQgetvalue(res, i, 2));
	PQclear(res);
	PQfinish(conn);
}

void *agents_flush_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen)
{
	struct agents_flush_task *ft = calloc(1, sizeof(*ft));

	(void)t;
	if (!ft) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ft->pool = env->pool;
	ft->cfg = env->cfg;
	agents_flush_max = (size_t)env->cfg->agents_buffer_max;
	if (env->cfg->agents_flush_s > 0) {
		atomic_store(&agents_flush_on, true);
		agents_flush_load(env->cfg);
	}
	return ft;
}

void agents_flush_task_free(void *state)
{
	struct agents_flush_task *ft = state;
	char err[512];
	PGconn *conn;

	atomic_store(&agents_flush_on, false);
	if (ft && (agents_flush_npend || agents_flush_retry)) {
		conn = db_connect(ft->cfg->db, 10, err, sizeof(err));
		if (!conn ||
		    !agents_flush_now(conn, ft->cfg->agents_max_per_tenant, err, sizeof(err)))
			log_error("roster: %zu buffered beats lost at exit: %s", agents_flush_npend,
				  err);
		if (conn)
			PQfinish(conn);
	}
	for (struct agents_pend *p = agents_flush_retry, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	agents_flush_retry = NULL;
	for (size_t i = 0; i < agents_flush_nslots; i++) {
		if (agents_flush_slots[i]) {
			free(agents_flush_slots[i]->key);
			free(agents_flush_slots[i]);
		}
	}
	free(agents_flush_slots);
	agents_flush_slots = NULL;
	agents_flush_nslots = agents_flush_nknown = agents_flush_npend = 0;
	free(ft);
}
