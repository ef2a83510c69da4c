/* The database worker pool: N threads, each owning one PostgreSQL connection.
 * The loop submits jobs; a worker runs job->work with its connection (blocking
 * is fine there), then the job's done callback runs back on the loop thread. */
#ifndef VGC_POOL_H
#define VGC_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "db.h"

struct event_base;
struct pool;
struct pool_worker;
struct pool_job;

/* Runs on a worker thread. Must not touch loop-owned state. */
typedef void (*pool_work_fn)(struct pool_job *job, struct pool_worker *w);
/* Runs on the loop thread after work returned; owns the job from then on. */
typedef void (*pool_done_fn)(struct pool_job *job);

/* Embed this at the start of a job struct. The pool owns the job from
 * pool_submit until it calls done. */
struct pool_job {
	pool_work_fn work;
	pool_done_fn done;
	struct pool_job *next; /* queue link: the wait queue, then the done list */
	bool rerouted;	       /* set by the pool: it failed, and it ran again on the
				* pool's fallback (pool_set_fallback) */
};

/* Per-worker state handed to work functions; only that worker's thread
 * touches it. A module keeps its own per-connection state behind slot (today
 * ingest_store.c's staging cache): the module owns and allocates it, compares
 * conn_serial to know when the connection was replaced, and the pool only
 * calls slot_free on it when the worker ends. */
struct pool_worker {
	struct pool *pool;
	int index;
	PGconn *conn;	      /* NULL until connected; replaced after a failure */
	unsigned conn_serial; /* bumped on every new connection */
	void *slot;	      /* owned by the module that set it; NULL until then */
	void (*slot_free)(void *slot);
	unsigned epoch;	  /* the pool's epoch when conn was made; older: reconnect */
	bool conn_failed; /* during the current job: connecting failed, or the
			   * job dropped its broken connection (pool_worker_reset) */
	char failed_state[DB_SQLSTATE_SIZE]; /* during the current job: the SQLSTATE
					      * of the statement that failed it, ""
					      * until it says so (pool_worker_failed) */
	char failed_msg[256];		     /* and the database's words for it */
};

struct pool *pool_new(struct event_base *base, const char *conninfo, int size, int queue_max,
		      int connect_timeout_s, char *err, size_t errlen);
/* Waits for running jobs, joins the threads; queued jobs are failed via done. */
void pool_free(struct pool *p);

/* Called on a worker thread of p when a job failed there: sqlstate is NULL
 * when its connection failed, else the SQLSTATE of the statement that failed
 * it and msg the database's words (pool_worker_failed; for the log, never a
 * client). True: the job runs once more on the fallback. */
typedef bool (*pool_failed_fn)(void *arg, const char *sqlstate, const char *msg);

/* Before any job: a job that fails on p, its connection (it cannot connect,
 * or it drops its connection as broken) or a statement whose SQLSTATE
 * on_failed accepts, runs once more on fallback instead of finishing, with
 * job->rerouted set; the work function must therefore start from a clean
 * result. After a connection failure every other worker of p reconnects
 * before its next job. on_failed(arg, ...), not NULL, is asked on the worker
 * thread. */
void pool_set_fallback(struct pool *p, struct pool *fallback, pool_failed_fn on_failed, void *arg);

/* Queues a job. False when queue_max jobs already wait: the caller answers 503.
 * Thread-safe: a worker of another pool may call it. */
bool pool_submit(struct pool *p, struct pool_job *job) __attribute__((warn_unused_result));
void pool_set_queue_max(struct pool *p, int queue_max);

/* A live connection for this worker, connecting if needed. NULL with err when
 * PostgreSQL is unreachable. */
PGconn *pool_worker_conn(struct pool_worker *w, char *err, size_t errlen);
/* Drops the worker's connection after an error that may have broken it. */
void pool_worker_reset(struct pool_worker *w);
/* The current job failed on a statement with this SQLSTATE ("" or NULL: none
 * known) and message (NULL: none); a pool with a fallback may run the job
 * there (pool_set_fallback). */
void pool_worker_failed(struct pool_worker *w, const char *sqlstate, const char *msg);

int pool_in_use(struct pool *p);
int pool_waiting(struct pool *p);
int pool_size(struct pool *p);
/* True while no job is queued or running. */
bool pool_idle(struct pool *p);

#endif
