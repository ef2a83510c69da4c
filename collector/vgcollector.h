/* The collector's core structures: the server (one per process, owned by the
 * loop thread) and the HTTP request context. Everything here is touched only
 * on the event loop thread unless a field says otherwise. */
#ifndef VGC_VGCOLLECTOR_H
#define VGC_VGCOLLECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"

/* Return values, one convention across collector/ and common/:
 * - a call that can fail returns bool, true on success, with the message in
 *   char *err, size_t errlen, and is marked warn_unused_result;
 * - a call whose failure is an HTTP answer returns that status: 200 on
 *   success (never 0), the 4xx/5xx otherwise, with the message in err;
 * - nothing else means success. Counts, sizes and indexes are values, and
 *   process exit codes (main, cli_*, server_run) keep 0 = success. */

struct event_base;
struct event;
struct evhttp;
struct evhttp_request;
struct evhttp_connection;
struct pool;
struct keywatch;
struct ratelimit;
struct auth_cache;
struct auth_key;
struct ssl_ctx_st;
struct conns;
struct budget_eval;
struct tasks;

/* Server lifecycle:
 *   STARTING -> SERVING: listening, keys loaded, database reachable.
 *   SERVING -> DRAINING: first SIGTERM/SIGINT. Listeners are closed, new
 *     requests on open connections get 503, in-flight ones finish.
 *   DRAINING -> exit: when nothing is in flight, or shutdown_grace_s passed,
 *     or a second signal arrives. */
enum server_state { SERVER_STARTING = 0, SERVER_SERVING, SERVER_DRAINING };

struct server {
	struct event_base *base;
	struct evhttp *http;
	struct conns *conns; /* client connections and the cap */
	enum server_state state;

	struct config cfg; /* in force; replaced whole by a successful reload */
	char *config_path; /* NULL: no file */
	char **flag_names; /* --flags given on the command line, re-applied on reload */
	char **flag_values;
	int nflags;

	struct pool *pool;	   /* ingest and short queries: never waits behind a long read */
	struct pool *long_pool;	   /* db_long_pool_size workers for long reads (reconcile) */
	struct replica *replica;   /* read pool on read_db and its lag; reads pick through it */
	struct keywatch *keywatch; /* feeds `keys` */
	struct auth_cache *keys;   /* current key snapshot; swapped on the loop */
	struct ratelimit *ratelimit;
	struct tasks *tasks;	/* periodic work (server.c server_tasks); freed after the pool */
	struct ssl_ctx_st *tls; /* NULL: plain HTTP; swapped on reload */
	struct budget_eval *budgets; /* the budget_eval task's state (owned by tasks) */

	int inflight;	/* requests handed to the pool, not yet answered */
	bool schema_ok; /* migrate_check passed at startup */
	struct event *sig_term, *sig_int, *sig_hup, *drain_timer, *watchdog_timer;
};

/* One HTTP request while we handle it. Created by the dispatcher; handlers
 * either answer at once (http_reply_*), or hand it to a pool job, in which
 * case it lives until the job's done callback answers. */
struct http_req {
	struct server *srv;
	struct evhttp_request *req; /* NULL once the client went away */
	struct evhttp_connection *evcon;
	int route; /* metrics route index */
	bool replied;
	bool async;	/* owned by a pool job */
	double started; /* monotonic seconds */
	char request_id[20];
	char key_prefix[16];
	char project[132];
	struct log_ctx log;	    /* points at the fields above */
	const struct auth_key *key; /* set by the dispatcher (NULL on an open route);
				     * valid only until the handler returns */
	struct pool *pool;	    /* where the request's queries run: the dispatcher
				     * picks the primary's or, for a replica_ok
				     * route, the standby's */
};

#endif
