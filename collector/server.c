/* The serve command: connects, checks the schema, loads keys, starts the pool,
 * the key watcher and the HTTP front, then runs the loop. Signals arrive as
 * libevent events: SIGHUP reloads, SIGTERM/SIGINT drain (a second one exits at
 * once). systemd hears READY/RELOADING/STOPPING/WATCHDOG through notify.c. */
#include "server.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents.h"
#include "agents_metrics.h"
#include "auth.h"
#include "budget_eval.h"
#include "budget_http.h"
#include "conns.h"
#include "db.h"
#include "durability.h"
#include "health.h"
#include "http.h"
#include "ingest.h"
#include "keywatch.h"
#include "migrate.h"
#include "notify.h"
#include "pool.h"
#include "ratelimit.h"
#include "replica.h"
#include "reconcile_http.h"
#include "retention.h"
#include "rollup_daily.h"
#include "rollup.h"
#include "vgcollector.h"
#include "web.h"

static const struct http_route server_routes[] = {
	{ "/v1/ingest", HTTP_POST, ingest_handle },
	{ "/v1/ingest/turns", HTTP_POST, ingest_handle_turns },
	{ "/healthz", HTTP_GET, health_handle_healthz },
	{ "/readyz", HTTP_GET, health_handle_readyz },
	{ "/metrics", HTTP_GET, health_handle_metrics },
	{ "/v1/whoami", HTTP_GET, health_handle_whoami },
	{ "/v1/rollups", HTTP_GET, rollup_handle_rollups },
	{ "/v1/costs", HTTP_GET, rollup_handle_costs },
	{ "/v1/rows", HTTP_GET, rollup_handle_rows },
	{ "/v1/agents/heartbeat", HTTP_POST, agents_handle_heartbeat },
	{ "/v1/agents", HTTP_GET, agents_handle_list },
	{ "/v1/budgets", HTTP_GET, budget_http_handle_list },
	{ "/v1/budgets/*", HTTP_PUT | HTTP_DELETE, budget_http_handle_one },
	{ "/v1/reconcile", HTTP_POST, reconcile_http_handle },
	{ "/", HTTP_GET, web_handle },
	{ "/ui/*", HTTP_GET, web_handle },
	{ NULL, 0, NULL },
};

static void server_apply_logging(const struct config *cfg)
{
	enum log_level level = LOG_LVL_INFO;
	enum log_format format = LOG_FMT_LOGFMT;

	if (!log_level_parse(cfg->log_level, &level) || !log_format_parse(cfg->log_format, &format))
		return; /* config_validate already refused these */
	log_configure(level, format);
}

/* Ensures partitions for this month and partitions_ahead months after it. */
static bool server_partitions_ahead(PGconn *conn, int ahead, char *err, size_t errlen)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT vgc_ensure_partition(now() + make_interval(months => g))"
		 " FROM generate_series(0, %d) g",
		 ahead);
	return db_exec(conn, sql, err, errlen);
}

/* The primary without a pooler in between, for the session-bound work: the key
 * watcher's LISTEN (a transaction-mode pooler would hand its server connection
 * to others between statements, and notifications would go astray). */
static const char *server_direct_db(const struct config *cfg)
{
	return cfg->db_direct[0] ? cfg->db_direct : cfg->db;
}

/* Loop thread: the key watcher delivered a fresh snapshot. */
static void server_on_keys(struct auth_cache *cache, void *arg)
{
	struct server *srv = arg;

	auth_cache_free(srv->keys);
	srv->keys = cache;
	log_debug("key cache now holds %zu live keys", cache->count);
}

static void server_reload(struct server *srv)
{
	struct config next;
	char err[1024], restart[512];
	bool restart_diff;

	notify_send("RELOADING=1");
	log_info("SIGHUP: reloading %s", srv->config_path ? srv->config_path : "(no config file)");
	if (!config_load(&next, srv->config_path, srv->flag_names, srv->flag_values, srv->nflags,
			 err, sizeof(err))) {
		log_error("reload failed, keeping the running configuration: %s", err);
		notify_send("READY=1");
		return;
	}
	restart_diff = config_restart_needed(&srv->cfg, &next, restart, sizeof(restart));
	/* Keys that cannot change at run time keep their running values; this
	 * can fail only for memory, before anything running has changed. */
	if (!config_keep_restart_keys(&next, &srv->cfg, err, sizeof(err)) ||
	    (next.tls_cert_file[0] &&
	     !http_tls_load(srv, next.tls_cert_file, next.tls_key_file, err, sizeof(err)))) {
		log_error("reload failed, keeping the running configuration: %s", err);
		config_free(&next);
		notify_send("READY=1");
		return;
	}
	if (restart_diff)
		log_warn("changed keys that need a restart were not applied: %s", restart);
	config_free(&srv->cfg);
	srv->cfg = next;
	server_apply_logging(&srv->cfg);
	http_apply_limits(srv);
	pool_set_queue_max(srv->pool, srv->cfg.db_queue_max);
	pool_set_queue_max(srv->long_pool, srv->cfg.db_queue_max);
	replica_set_queue_max(srv->replica, srv->cfg.db_queue_max);
	replica_set_max_lag(srv->replica, srv->cfg.read_max_lag_s);
	keywatch_set_refresh(srv->keywatch, srv->cfg.key_refresh_s);
	keywatch_poke(srv->keywatch);
	durability_recheck(srv->durability);
	log_info("reload complete");
	notify_send("READY=1");
}

static void server_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	/* Answered is not enough: the answer must have left its buffers, or the
	 * loop would end with it unsent (the gate's filter writes it a turn
	 * later than evhttp queues it). shutdown_grace_s bounds the wait. */
	if (srv->inflight == 0 && pool_idle(srv->pool) && pool_idle(srv->long_pool) &&
	    replica_idle(srv->replica) && conns_unsent(srv->conns) == 0) {
		log_info("drained: every in-flight batch was answered");
		event_base_loopexit(srv->base, NULL);
	}
}

static bool server_forced_exit;

static void server_grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_warn(
		"shutdown_grace_s (%d s) passed with %d requests in flight; exiting without answering them",
		srv->cfg.shutdown_grace_s, srv->inflight);
	server_forced_exit = true;
	event_base_loopexit(srv->base, NULL);
}

static void server_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval tick = { 0, 50000 }, grace = { 0, 0 };

	if (sig == SIGHUP) {
		server_reload(srv);
		return;
	}
	if (srv->state == SERVER_DRAINING) {
		log_warn("second %s: exiting at once", sig == SIGINT ? "SIGINT" : "SIGTERM");
		server_forced_exit = true;
		event_base_loopexit(srv->base, NULL);
		return;
	}
	log_info("%s: draining (no new connections; in-flight batches finish)",
		 sig == SIGINT ? "SIGINT" : "SIGTERM");
	notify_send("STOPPING=1");
	srv->state = SERVER_DRAINING;
	http_stop_listening(srv);
	retention_stop(srv->retention);
	rollup_daily_stop(srv->rollup_daily);
	budget_eval_stop(srv->budgets);
	srv->drain_timer = event_new(srv->base, -1, EV_PERSIST, server_drain_check, srv);
	if (srv->drain_timer)
		event_add(srv->drain_timer, &tick);
	grace.tv_sec = srv->cfg.shutdown_grace_s;
	event_base_once(srv->base, -1, EV_TIMEOUT, server_grace_expired, srv, &grace);
}

static void server_watchdog(evutil_socket_t fd, short what, void *arg)
{
	notify_send("WATCHDOG=1");
}

/* Startup work that needs the database: reachable, schema current, partitions
 * ahead, and the first key snapshot (so the first requests authenticate). */
static bool server_bootstrap(struct server *srv, char *err, size_t errlen)
{
	PGconn *conn = NULL;
	int attempt = 0;

	while (!(conn = db_connect(srv->cfg.db, srv->cfg.db_connect_timeout_s, err, errlen))) {
		if (attempt++ % 10 == 0)
			log_warn("waiting for PostgreSQL: %s", err);
		sleep(1);
	}
	if (!migrate_check(conn, err, errlen) ||
	    !server_partitions_ahead(conn, srv->cfg.partitions_ahead, err, errlen) ||
	    !(srv->keys = auth_cache_load(conn, err, errlen))) {
		PQfinish(conn);
		return false;
	}
	srv->schema_ok = true;
	PQfinish(conn);
	log_info("database ready; %zu live keys", srv->keys->count);
	return true;
}

static void server_free(struct server *srv)
{
	if (srv->keywatch)
		keywatch_free(srv->keywatch);
	replica_free(srv->replica); /* before the pool its failed reads move to */
	if (srv->pool)
		pool_free(srv->pool);
	if (srv->long_pool)
		pool_free(srv->long_pool);
	retention_free(srv->retention);	      /* after the pool: a pass's done callback uses it */
	rollup_daily_free(srv->rollup_daily); /* likewise */
	agents_metrics_free();		      /* the same */
	budget_eval_free(srv->budgets);	      /* likewise */
	durability_free(srv->durability);     /* likewise */
	http_free(srv);
	if (srv->sig_term)
		event_free(srv->sig_term);
	if (srv->sig_int)
		event_free(srv->sig_int);
	if (srv->sig_hup)
		event_free(srv->sig_hup);
	if (srv->drain_timer)
		event_free(srv->drain_timer);
	if (srv->watchdog_timer)
		event_free(srv->watchdog_timer);
	auth_cache_free(srv->keys);
	ratelimit_free(srv->ratelimit);
	if (srv->base)
		event_base_free(srv->base);
	config_free(&srv->cfg);
	for (int i = 0; i < srv->nflags; i++) {
		free(srv->flag_names[i]);
		free(srv->flag_values[i]);
	}
	free(srv->flag_names);
	free(srv->flag_values);
	free(srv->config_path);
}

int server_run(struct config *cfg, char *config_path, char **flag_names, char **flag_values,
	       int nflags)
{
	struct server srv;
	char err[1024];
	unsigned long long wd;

	memset(&srv, 0, sizeof(srv));
	srv.cfg = *cfg;
	srv.config_path = config_path;
	srv.flag_names = flag_names;
	srv.flag_values = flag_values;
	srv.nflags = nflags;
	server_apply_logging(&srv.cfg);
	signal(SIGPIPE, SIG_IGN);

	if (evthread_use_pthreads() != 0 || !(srv.base = event_base_new()) ||
	    !(srv.ratelimit = ratelimit_new()))
		log_fatal("cannot initialise libevent");
	if (!server_bootstrap(&srv, err, sizeof(err))) {
		log_error("%s", err);
		server_free(&srv);
		return 1;
	}
	if (srv.cfg.tls_cert_file[0] &&
	    !http_tls_load(&srv, srv.cfg.tls_cert_file, srv.cfg.tls_key_file, err, sizeof(err))) {
		log_error("%s", err);
		server_free(&srv);
		return 1;
	}
	srv.pool = pool_new(srv.base, srv.cfg.db, srv.cfg.pool_size, srv.cfg.db_queue_max,
			    srv.cfg.db_connect_timeout_s, err, sizeof(err));
	/* Long reads get workers of their own: a few big reconciles must not
	 * hold every connection ingest needs. */
	if (srv.pool)
		srv.long_pool = pool_new(srv.base, srv.cfg.db, srv.cfg.db_long_pool_size,
					 srv.cfg.db_queue_max, srv.cfg.db_connect_timeout_s, err,
					 sizeof(err));
	if (!srv.pool || !srv.long_pool ||
	    !(srv.replica = replica_new(srv.base, srv.cfg.read_db, server_direct_db(&srv.cfg),
					srv.pool, srv.cfg.pool_size, srv.cfg.db_queue_max,
					srv.cfg.db_connect_timeout_s, srv.cfg.read_max_lag_s, err,
					sizeof(err))) ||
	    !(srv.keywatch =
		      keywatch_new(srv.base, server_direct_db(&srv.cfg), srv.cfg.key_refresh_s,
				   server_on_keys, &srv, err, sizeof(err))) ||
	    !http_start(&srv, server_routes, err, sizeof(err))) {
		log_error("%s", err);
		server_free(&srv);
		return 1;
	}
	srv.sig_term = evsignal_new(srv.base, SIGTERM, server_on_signal, &srv);
	srv.sig_int = evsignal_new(srv.base, SIGINT, server_on_signal, &srv);
	srv.sig_hup = evsignal_new(srv.base, SIGHUP, server_on_signal, &srv);
	if (!srv.sig_term || !srv.sig_int || !srv.sig_hup || evsignal_add(srv.sig_term, NULL) ||
	    evsignal_add(srv.sig_int, NULL) || evsignal_add(srv.sig_hup, NULL))
		log_fatal("cannot install signal handlers");
	wd = notify_watchdog_usec();
	if (wd) {
		struct timeval half = { (time_t)(wd / 2000000), (suseconds_t)((wd / 2) % 1000000) };
		srv.watchdog_timer = event_new(srv.base, -1, EV_PERSIST, server_watchdog, &srv);
		if (srv.watchdog_timer)
			event_add(srv.watchdog_timer, &half);
	}

	srv.retention = retention_new(srv.base, srv.pool, &srv.cfg);
	srv.rollup_daily = rollup_daily_new(srv.base, srv.pool, &srv.cfg);
	agents_metrics_start(srv.base, srv.pool, &srv.cfg);
	if (!(srv.durability = durability_new(srv.base, srv.pool)))
		log_fatal("cannot start the synchronous standby check");
	if (!(srv.budgets = budget_eval_new(srv.base, srv.pool, &srv.cfg, err, sizeof(err)))) {
		log_error("%s", err);
		server_free(&srv);
		return 1;
	}
	srv.state = SERVER_SERVING;
	notify_send("READY=1");
	log_info("vgcollector %s serving (pool_size=%d, db_long_pool_size=%d)", VGC_VERSION,
		 srv.cfg.pool_size, srv.cfg.db_long_pool_size);
	event_base_dispatch(srv.base);

	if (server_forced_exit && (srv.inflight > 0 || !pool_idle(srv.pool) ||
				   !pool_idle(srv.long_pool) || !replica_idle(srv.replica))) {
		/* Workers may be blocked inside PostgreSQL: leave without joining.
		 * Nothing unanswered was acknowledged, so nothing is lost. */
		_exit(0);
	}
	server_free(&srv);
	log_info("stopped");
	return 0;
}
