/* Liveness, readiness, the Prometheus endpoint, and whoami (which key am I). Readiness uses the key
 * watcher's live connection as the "database reachable" signal, so probes cost
 * no query. */
#include "health.h"
#include "periods_metrics.h"

#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>

#include "budget_eval.h"
#include "buf.h"
#include "durability.h"
#include "gate.h"
#include "http.h"
#include "keywatch.h"
#include "metrics.h"
#include "pool.h"
#include "replica.h"
#include "rollup_fold.h"
#include "row.h"
#include "tasks.h"

void health_handle_healthz(struct http_req *hr)
{
	http_reply_json(hr, 200, "{\"status\":\"ok\"}");
}

/* 200 with the replica's state: a standby that is down or lagging sends reads
 * to the primary, so it never makes the collector itself unready. */
static void health_reply_ready(struct http_req *hr)
{
	struct buf b;

	buf_init(&b, 0);
	buf_puts(&b, "{\"status\":\"ready\",\"replica\":");
	replica_status_json(hr->srv->replica, &b);
	buf_putc(&b, '}');
	http_reply(hr, 200, "application/json", b.data ? b.data : "", b.len);
	buf_release(&b);
}

void health_handle_readyz(struct http_req *hr)
{
	struct server *srv = hr->srv;

	if (srv->state == SERVER_DRAINING)
		http_reply_error(hr, 503, "shutting down");
	else if (!srv->schema_ok)
		http_reply_error(hr, 503, "database schema is not current");
	else if (!srv->keywatch || !keywatch_connected(srv->keywatch))
		http_reply_error(hr, 503, "database unreachable");
	else
		health_reply_ready(hr);
}

/* True when /metrics may answer: no metrics_token is set, or the request's
 * Authorization is "Bearer <metrics_token>" (compared in constant time). */
static bool health_metrics_allowed(struct http_req *hr)
{
	const char *want = hr->srv->cfg.metrics_token;
	const char *got = http_header(hr, "Authorization");
	size_t n = want ? strlen(want) : 0;

	if (n == 0)
		return true;
	if (!got || strncasecmp(got, "Bearer ", 7) != 0)
		return false;
	got += 7;
	return strlen(got) == n && CRYPTO_memcmp(got, want, n) == 0;
}

void health_handle_metrics(struct http_req *hr)
{
	struct pool *pool = hr->pool;
	struct metrics_gauges g = {
		.pool_size = pool ? (uint64_t)pool_size(pool) : 0,
		.pool_in_use = pool ? (uint64_t)pool_in_use(pool) : 0,
		.pool_waiting = pool ? (uint64_t)pool_waiting(pool) : 0,
		.pending_body_bytes = (uint64_t)gate_pending_bytes(),
	};
	struct buf b;

	if (!health_metrics_allowed(hr)) {
		http_set_header(hr, "WWW-Authenticate", "Bearer realm=\"metrics\"");
		http_reply_error(hr, 401,
				 "/metrics requires Authorization: Bearer <metrics_token> (the "
				 "metrics_token config key)");
		return;
	}
	buf_init(&b, 0);
	metrics_render(&b, &g);
	replica_metrics_render(hr->srv->replica, &b);
	budget_eval_render_metrics(hr->srv->budgets, &b);
	tasks_render_metrics(hr->srv->tasks, &b);
	periods_metrics_render(&b);
	rollup_fold_render_metrics(tasks_state(hr->srv->tasks, "rollup_fold"), &b);
	durability_render_metrics(tasks_state(hr->srv->tasks, "sync_standby"), &b);
	http_reply(hr, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "",
		   b.len);
	buf_release(&b);
}

void health_handle_whoami(struct http_req *hr)
{
	const struct auth_key *k = hr->key;
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "{\"id\":%lld,\"prefix\":", k->id);
	row_json_string(&b, k->prefix);
	buf_printf(&b, ",\"role\":\"%s\",\"project\":", auth_role_name(k->role));
	row_json_string(&b, k->project);
	buf_puts(&b, ",\"tenant\":");
	row_json_string(&b, k->tenant);
	buf_putc(&b, '}');
	http_reply(hr, 200, "application/json", b.data, b.len);
	buf_release(&b);
}
