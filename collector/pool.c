/* Worker threads with blocking libpq connections. Why threads rather than
 * non-blocking libpq on the loop: the work per batch is mostly CPU (gunzip,
 * JSON, validation, COPY encoding), and threads spread it over the cores while
 * the loop keeps serving. Results come back through one event made active from
 * the worker (libevent is built with pthread support, see server.c). */
#include "pool.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "metrics.h"

struct pool {
	struct event_base *base;
	char *conninfo;
	int connect_timeout_s;
	int size;
	pthread_t *threads;
	struct pool_worker *workers;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pool_job *queue_head, *queue_tail; /* waiting for a worker; under lock */
	int queued;				  /* length of the wait queue */
	int running;				  /* jobs inside work(); under lock */
	int queue_max;
	bool stopping;

	struct pool_job *done_head, *done_tail; /* finished, waiting for the loop; under lock */
	struct event *done_ev;

	/* Set once before any job (pool_set_fallback), then only read. */
	struct pool *fallback;
	pool_failed_fn on_failed;
	void *on_failed_arg;
	/* Bumped when a worker's connection fails: the server may be gone or
	 * restarted, so every worker's connection is suspect. */
	_Atomic unsigned epoch;
};

/* Worker thread: true when job failed here (its connection, or a statement
 * on_failed accepts) and it now waits on the fallback pool instead of
 * finishing here. Tried once per job. */
static bool pool_reroute(struct pool *p, struct pool_worker *w, struct pool_job *job)
{
	if (!p->fallback || job->rerouted || (!w->conn_failed && !w->failed_state[0]))
		return false;
	if (w->conn_failed)
		atomic_fetch_add(&p->epoch, 1);
	if (!p->on_failed(p->on_failed_arg, w->conn_failed ? NULL : w->failed_state, w->failed_msg))
		return false;
	job->rerouted = true;
	if (pool_submit(p->fallback, job))
		return true;
	job->rerouted = false; /* the fallback is full: the job answers its own failure */
	return false;
}

static void *pool_thread(void *arg)
{
	struct pool_worker *w = arg;
	struct pool *p = w->pool;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct pool_job *job;

		while (!p->queue_head && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (!p->queue_head && p->stopping)
			break;
		job = p->queue_head;
		p->queue_head = job->next;
		if (!p->queue_head)
			p->queue_tail = NULL;
		p->queued--;
		p->running++;
		pthread_mutex_unlock(&p->lock);

		job->next = NULL;
		w->conn_failed = false;
		w->failed_state[0] = '\0';
		w->failed_msg[0] = '\0';
		job->work(job, w);
		/* Queued on the fallback before running drops here, so that one of
		 * the two pools counts the job busy all along (drain). */
		if (pool_reroute(p, w, job)) {
			pthread_mutex_lock(&p->lock);
			p->running--;
			continue;
		}

		pthread_mutex_lock(&p->lock);
		p->running--;
		if (p->done_tail)
			p->done_tail->next = job;
		else
			p->done_head = job;
		p->done_tail = job;
		event_active(p->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&p->lock);
	if (w->conn)
		PQfinish(w->conn);
	w->conn = NULL;
	if (w->slot && w->slot_free)
		w->slot_free(w->slot);
	w->slot = NULL;
	return NULL;
}

/* Loop side: hands every finished job to its done callback. */
static void pool_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct pool *p = arg;
	struct pool_job *job;

	pthread_mutex_lock(&p->lock);
	job = p->done_head;
	p->done_head = p->done_tail = NULL;
	pthread_mutex_unlock(&p->lock);
	while (job) {
		struct pool_job *next = job->next;
		job->next = NULL;
		job->done(job);
		job = next;
	}
}

struct pool *pool_new(struct event_base *base, const char *conninfo, int size, int queue_max,
		      int connect_timeout_s, char *err, size_t errlen)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->base = base;
	p->conninfo = strdup(conninfo);
	p->size = size;
	p->queue_max = queue_max;
	p->connect_timeout_s = connect_timeout_s;
	p->threads = calloc((size_t)size, sizeof(*p->threads));
	p->workers = calloc((size_t)size, sizeof(*p->workers));
	p->done_ev = event_new(base, -1, 0, pool_on_done, p);
	if (!p->conninfo || !p->threads || !p->workers || !p->done_ev) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (int i = 0; i < size; i++) {
		p->workers[i].pool = p;
		p->workers[i].index = i;
		if (pthread_create(&p->threads[i], NULL, pool_thread, &p->workers[i]) != 0) {
			snprintf(err, errlen, "cannot start worker thread %d", i);
			p->size = i;
			pool_free(p);
			return NULL;
		}
	}
	return p;
fail:
	if (p->done_ev)
		event_free(p->done_ev);
	free(p->threads);
	free(p->workers);
	free(p->conninfo);
	free(p);
	return NULL;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->size; i++)
		pthread_join(p->threads[i], NULL);
	/* Everything the workers finished still gets its done callback. */
	pool_on_done(-1, 0, p);
	event_free(p->done_ev);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p->workers);
	free(p->conninfo);
	free(p);
}

bool pool_submit(struct pool *p, struct pool_job *job)
{
	bool ok;

	job->next = NULL;
	pthread_mutex_lock(&p->lock);
	ok = !p->stopping && p->queued < p->queue_max;
	if (ok) {
		if (p->queue_tail)
			p->queue_tail->next = job;
		else
			p->queue_head = job;
		p->queue_tail = job;
		p->queued++;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void pool_set_queue_max(struct pool *p, int queue_max)
{
	pthread_mutex_lock(&p->lock);
	p->queue_max = queue_max;
	pthread_mutex_unlock(&p->lock);
}

void pool_set_fallback(struct pool *p, struct pool *fallback, pool_failed_fn on_failed, void *arg)
{
	p->fallback = fallback;
	p->on_failed = on_failed;
	p->on_failed_arg = arg;
}

PGconn *pool_worker_conn(struct pool_worker *w, char *err, size_t errlen)
{
	unsigned epoch = atomic_load(&w->pool->epoch);

	if (w->conn && PQstatus(w->conn) == CONNECTION_OK && w->epoch == epoch)
		return w->conn;
	if (w->conn)
		PQfinish(w->conn);
	w->conn = db_connect(w->pool->conninfo, w->pool->connect_timeout_s, err, errlen);
	if (!w->conn) {
		w->conn_failed = true;
		metrics_db_error();
		return NULL;
	}
	w->epoch = epoch;
	w->conn_serial++;
	return w->conn;
}

void pool_worker_reset(struct pool_worker *w)
{
	if (w->conn) {
		PQfinish(w->conn);
		w->conn_failed = true;
	}
	w->conn = NULL;
}

void pool_worker_failed(struct pool_worker *w, const char *sqlstate, const char *msg)
{
	snprintf(w->failed_state, sizeof(w->failed_state), "%s", sqlstate ? sqlstate : "");
	snprintf(w->failed_msg, sizeof(w->failed_msg), "%s", msg ? msg : "");
}

static int pool_read(struct pool *p, const int *field)
{
	int v;

	pthread_mutex_lock(&p->lock);
	v = *field;
	pthread_mutex_unlock(&p->lock);
	return v;
}

int pool_in_use(struct pool *p)
{
	return pool_read(p, &p->running);
}

int pool_waiting(struct pool *p)
{
	return pool_read(p, &p->queued);
}

int pool_size(struct pool *p)
{
	return p->size;
}

bool pool_idle(struct pool *p)
{
	bool idle;

	pthread_mutex_lock(&p->lock);
	idle = p->queued == 0 && p->running == 0 && !p->done_head;
	pthread_mutex_unlock(&p->lock);
	return idle;
}
