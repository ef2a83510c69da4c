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
#include "agents_flush.h"
#include "agents_metrics.h"
#include "auth.h"
#include "billing_rerate_http.h"
#include "budget_eval.h"
#include "budget_http.h"
#include "conns.h"
#include "db.h"
#include "durability.h"
#include "focus_http.h"
#include "health.h"
#include "http.h"
#include "ingest.h"
#include "keywatch.h"
#include "migrate.h"
#include "notify.h"
#include "periods_metrics.h"
#include "pool.h"
#include "price_book_http.h"
#include "rate_card_http.h"
#include "ratelimit.h"
#include "replica.h"
#include "reconcile_http.h"
#include "retention.h"
#include "rollup.h"
#include "rollup_daily.h"
#include "rollup_fold.h"
#include "tasks.h"
#include "vgcollector.h"
#include "web.h"

/* Every endpoint. The dispatcher (http.c) does each row's checks before its
 * handler runs: method, key and role, body cap, then the pool (a
 * HTTP_POOL_READ read may run on read_db; reconcile runs on the long pool).
 * A small body is capped by its route's key (max_heartbeat_bytes,
 * max_small_body_bytes); ingest and reconcile stream up to max_body_bytes and
 * check it themselves. */
static const struct http_route server_routes[] = {
	/* path, methods, roles, body, body cap key, pool, handler */
	{ "/v1/ingest", HTTP_POST, HTTP_ROLES_WRITE, HTTP_BODY_STREAM, NULL, HTTP_POOL_PRIMARY,
	  ingest_handle },
	{ "/v1/ingest/turns", HTTP_POST, HTTP_ROLES_WRITE, HTTP_BODY_STREAM, NULL,
	  HTTP_POOL_PRIMARY, ingest_handle_turns },
	{ "/v1/traces", HTTP_POST, HTTP_ROLES_WRITE, HTTP_BODY_STREAM, NULL, HTTP_POOL_PRIMARY,
	  ingest_handle_traces },
	{ "/healthz", HTTP_GET, HTTP_OPEN, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY,
	  health_handle_healthz },
	{ "/readyz", HTTP_GET, HTTP_OPEN, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY,
	  health_handle_readyz },
	{ "/metrics", HTTP_GET, HTTP_OPEN, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY,
	  health_handle_metrics },
	{ "/v1/whoami", HTTP_GET, HTTP_ROLES_ANY, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY,
	  health_handle_whoami },
	{ "/v1/rollups", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_READ,
	  rollup_handle_rollups },
	{ "/v1/costs", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_READ,
	  rollup_handle_costs },
	{ "/v1/rows", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_READ,
	  rollup_handle_rows },
	{ "/v1/agents/heartbeat", HTTP_POST, HTTP_ROLES_WRITE, HTTP_BODY_CAPPED,
	  "max_heartbeat_bytes", HTTP_POOL_PRIMARY, agents_handle_heartbeat },
	{ "/v1/agents", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY,
	  agents_handle_list },
	{ "/v1/budgets", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY,
	  budget_http_handle_list },
	{ "/v1/budgets/*", HTTP_PUT | HTTP_DELETE, HTTP_ROLE(ROLE_ADMIN), HTTP_BODY_CAPPED,
	  "max_small_body_bytes", HTTP_POOL_PRIMARY, budget_http_handle_one },
	{ "/v1/reconcile", HTTP_POST, HTTP_ROLES_READ, HTTP_BODY_STREAM, NULL, HTTP_POOL_LONG,
	  reconcile_http_handle },
	{ "/v1/export/focus", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_LONG,
	  focus_http_handle_export },
	{ "/v1/export/focus/manifest", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL,
	  HTTP_POOL_LONG, focus_http_handle_manifest },
	{ "/v1/periods", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY,
	  focus_http_handle_periods },
	{ "/v1/periods/*", HTTP_POST, HTTP_ROLE(ROLE_ADMIN), HTTP_BODY_CAPPED,
	  "max_small_body_bytes", HTTP_POOL_LONG, focus_http_handle_period_act },
	{ "/v1/billing/price-book", HTTP_POST, HTTP_ROLE(ROLE_ADMIN), HTTP_BODY_STREAM, NULL,
	  HTTP_POOL_PRIMARY, price_book_http_import },
	{ "/v1/billing/unpriced", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_READ,
	  rollup_handle_unpriced },
	{ "/v1/billing/usage", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_READ,
	  rollup_handle_usage },
	{ "/v1/billing/rerate", HTTP_POST, HTTP_ROLE(ROLE_ADMIN), HTTP_BODY_CAPPED,
	  "max_small_body_bytes", HTTP_POOL_LONG, billing_rerate_http_run },
	{ "/v1/billing/rerates", HTTP_GET, HTTP_ROLES_READ, HTTP_BODY_NONE, NULL, HTTP_POOL_LONG,
	  billing_rerate_http_list },
	/* The rate card: GET for unscoped read or admin keys, writes for an
	 * unscoped admin key (the handler tells them apart by method). */
	{ "/v1/billing/rate-card", HTTP_GET | HTTP_PUT, HTTP_ROLES_READ, HTTP_BODY_CAPPED,
	  "max_small_body_bytes", HTTP_POOL_PRIMARY, rate_card_http_card },
	{ "/v1/billing/rate-card/rules", HTTP_GET | HTTP_POST, HTTP_ROLES_READ, HTTP_BODY_CAPPED,
	  "max_small_body_bytes", HTTP_POOL_PRIMARY, rate_card_http_rules },
	{ "/v1/billing/rate-card/rules/*", HTTP_DELETE, HTTP_ROLE(ROLE_ADMIN), HTTP_BODY_CAPPED,
	  "max_small_body_bytes", HTTP_POOL_PRIMARY, rate_card_http_rule_rm },
	{ "/v1/billing/plans/*", HTTP_PUT, HTTP_ROLE(ROLE_ADMIN), HTTP_BODY_CAPPED,
	  "max_small_body_bytes", HTTP_POOL_PRIMARY, rate_card_http_plan },
	{ "/", HTTP_GET, HTTP_OPEN, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY, web_handle },
	{ "/ui/*", HTTP_GET, HTTP_OPEN, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY, web_handle },
	{ NULL, 0, 0, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY, NULL },
};

/* Periodic work: the runner (tasks.c) starts each at once (unless its interval
 * is 0 and that turns it off), then every interval after a pass ends; drain
 * stops them all and reload re-reads their intervals. */
static const struct task_def server_tasks[] = {
	/* name, interval key, 0 is off, new, run, stop, free */
	{ "retention", "retention_interval_s", true, retention_task_new, retention_task_run, NULL,
	  retention_task_free },
	{ "rollup_fold", "rollup_fold_s", true, rollup_fold_task_new, rollup_fold_task_run,
	  rollup_fold_task_stop, rollup_fold_task_free },
	{ "rollup_daily", "rollup_daily_interval_s", true, rollup_daily_task_new,
	  rollup_daily_task_run, rollup_daily_task_stop, rollup_daily_task_free },
	{ "budget_eval", "budget_check_s", false, budget_eval_task_new, budget_eval_task_run,
	  budget_eval_task_stop, budget_eval_task_free },
	{ "agent_gauges", "agent_gauges_interval_s", true, agents_metrics_task_new,
	  agents_metrics_task_run, NULL, agents_metrics_task_free },
	{ "agent_flush", "agents_flush_s", true, agents_flush_task_new, agents_flush_task_run, NULL,
	  agents_flush_task_free },
	{ "period_late_rows", "period_metrics_interval_s", true, periods_metrics_task_new,
	  periods_metrics_task_run, NULL, periods_metrics_task_free },
	{ "sync_standby", "sync_standby_check_s", false, durability_task_new, durability_task_run,
	  NULL, durability_task_free },
	{ NULL, NULL, false, NULL, NULL, NULL, NULL },
};

static void server_apply_logging(const struct config *cfg)
{
	log_configure((enum log_level)cfg->log_level, (enum log_format)cfg->log_format);
}

/* ---- reload hooks of config rows (config.c); each reads srv->cfg ---------- */

static void server_hook_logging(struct server *srv)
{
	server_apply_logging(&srv->cfg);
}

static void server_hook_queue(struct server *srv)
{
	pool_set_queue_max(srv->pool, srv->cfg.db_queue_max);
	pool_set_queue_max(srv->long_pool, srv->cfg.db_queue_max);
	replica_set_queue_max(srv->replica, srv->cfg.db_queue_max);
}

static void server_hook_read_lag(struct server *srv)
{
	replica_set_max_lag(srv->replica, srv->cfg.read_max_lag_s);
}

static void server_hook_key_refresh(struct server *srv)
{
	keywatch_set_refresh(srv->keywatch, srv->cfg.key_refresh_s);
}

static void server_hook_tasks(struct server *srv)
{
	tasks_reschedule(srv->tasks);
}

const struct config_hook server_logging_hook = { NULL, server_hook_logging, false };
const struct config_hook server_queue_hook = { NULL, server_hook_queue, false };
const struct config_hook server_read_lag_hook = { NULL, server_hook_read_lag, false };
const struct config_hook server_key_refresh_hook = { NULL, server_hook_key_refresh, false };
const struct config_hook server_tasks_hook = { NULL, server_hook_tasks, false };

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
	struct config next, old;
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
	/* Validate all: keys that cannot change at run time keep their running
	 * values (this fails only for memory), then each changed row's hook
	 * checks what it needs (a certificate loads). Nothing has changed yet. */
	if (!config_keep_restart_keys(&next, &srv->cfg, err, sizeof(err)) ||
	    !config_hooks_check(config_params, &srv->cfg, &next, srv, err, sizeof(err))) {
		log_error("reload failed, keeping the running configuration: %s", err);
		config_free(&next);
		notify_send("READY=1");
		return;
	}
	if (restart_diff)
		log_warn("changed keys that need a restart were not applied: %s", restart);
	/* Then swap, and apply each changed row through its hook. */
	old = srv->cfg;
	srv->cfg = next;
	config_hooks_apply(config_params, &old, &srv->cfg, srv);
	config_free(&old);
	keywatch_poke(srv->keywatch); /* SIGHUP also reloads the key cache */
	durability_recheck(tasks_state(srv->tasks, "sync_standby")); /* and warns again */
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
	tasks_stop(srv->tasks);
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
	tasks_free(srv->tasks); /* after the pools: a pass's done callback uses its state */
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
	    !http_routes_set(server_routes, err, sizeof(err)) ||
	    !http_start(&srv, err, sizeof(err))) {
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

	srv.tasks = tasks_new(&(struct task_env){ srv.base, srv.pool, &srv.cfg });
	if (!tasks_start(srv.tasks, server_tasks, err, sizeof(err))) {
		log_error("%s", err);
		server_free(&srv);
		return 1;
	}
	srv.budgets = tasks_state(srv.tasks, "budget_eval");
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
