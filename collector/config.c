/* The configuration table and its one parser. Sources are applied in order:
 * defaults, then the file, then VGC_* environment variables, then --flags. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "row.h"
#include "server.h"
#include "webhook_policy.h"

#define OFF(f) offsetof(struct config, f)

/* The words of the CFG_ENUM keys, in the order of the C enums they map to. */
static const char *const config_on_off_words[] = { "on", "off", NULL };
static const char *const config_log_level_words[] = { "error", "warn", "info", "debug", NULL };
static const char *const config_log_format_words[] = { "logfmt", "json", NULL };

const struct config_param config_params[] = {
	{ "listen", CFG_STR, OFF(listen), false, "127.0.0.1:8080", 0, 0,
	  "addresses to serve HTTP(S) on, comma-separated HOST:PORT ([::1]:8080 for IPv6)", NULL,
	  NULL },
	{ "db", CFG_STR, OFF(db), false, "", 0, 0,
	  "PostgreSQL conninfo string or URI; empty uses libpq's PG* environment defaults", NULL,
	  NULL },
	{ "db_file", CFG_STR, OFF(db_file), false, "", 0, 0,
	  "file whose first line is the conninfo (keeps passwords out of the config); overrides db",
	  NULL, NULL },
	{ "db_direct", CFG_STR, OFF(db_direct), false, "", 0, 0,
	  "conninfo straight to the primary, bypassing a pooler, for the one session-bound use "
	  "(the key watcher's LISTEN); empty uses db",
	  NULL, NULL },
	{ "read_db", CFG_STR, OFF(read_db), false, "", 0, 0,
	  "conninfo of a hot standby for /v1/rollups, /v1/costs and /v1/rows; empty reads the "
	  "primary",
	  NULL, NULL },
	{ "read_max_lag_s", CFG_INT, OFF(read_max_lag_s), true, "30", 0, 0,
	  "reads go to the primary while read_db replays more than this many seconds behind, or is "
	  "down",
	  NULL, &server_read_lag_hook },
	{ "pool_size", CFG_INT, OFF(pool_size), false, "4", 1, 256,
	  "database connections, each driven by its own worker thread", NULL, NULL },
	{ "db_queue_max", CFG_INT, OFF(db_queue_max), true, "64", 0, 0,
	  "requests waiting for a database connection before new ones get 503", NULL,
	  &server_queue_hook },
	{ "db_long_pool_size", CFG_INT, OFF(db_long_pool_size), false, "2", 1, 64,
	  "database connections (and worker threads) apart from pool_size for long reads "
	  "(POST /v1/reconcile), so they never hold up ingest",
	  NULL, NULL },
	{ "db_connect_timeout_s", CFG_INT, OFF(db_connect_timeout_s), false, "5", 0, 0,
	  "seconds to wait when connecting to PostgreSQL", NULL, NULL },
	{ "max_body_bytes", CFG_SIZE, OFF(max_body_bytes), true, "8388608", 1024, 0,
	  "largest request body as sent (compressed), in bytes; larger gets 413", NULL,
	  &http_limits_hook },
	{ "max_small_body_bytes", CFG_SIZE, OFF(max_small_body_bytes), true, "64K", 1024, 0,
	  "largest body of the endpoints that take one small JSON object and have no key of their "
	  "own (PUT and DELETE /v1/budgets/{name}, POST /v1/periods/{YYYY-MM}/close and "
	  "/reopen, the rate card's: /v1/billing/rate-card, its rules and "
	  "/v1/billing/plans/{tenant}), in bytes; larger gets 413 before it is parsed",
	  NULL, NULL },
	{ "max_pending_body_bytes", CFG_SIZE, OFF(max_pending_body_bytes), true, "268435456", 0, 0,
	  "request body bytes all clients together may be sending before their requests run (each "
	  "reserves its Content-Length, or max_body_bytes if chunked); past it new uploads get 503",
	  NULL, NULL },
	{ "max_price_feed_bytes", CFG_SIZE, OFF(max_price_feed_bytes), true, "4194304", 1024, 0,
	  "largest price feed imported (POST /v1/billing/price-book, after gunzip, and each file "
	  "of `prices import`); larger gets 413",
	  NULL, NULL },
	{ "max_inflated_bytes", CFG_SIZE, OFF(max_inflated_bytes), true, "67108864", 1024, 0,
	  "largest body after gunzip, checked while inflating; larger gets 413", NULL, NULL },
	{ "max_decoded_bytes", CFG_SIZE, OFF(max_decoded_bytes), true, "268435456", 1048576, 0,
	  "most memory one OTLP trace request (POST /v1/traces) may take once decoded (its protobuf "
	  "messages, or its JSON tree), in bytes; more gets 413",
	  NULL, NULL },
	{ "max_batch_rows", CFG_INT, OFF(max_batch_rows), true, "10000", 1, 0,
	  "most rows in one ingest request; more gets 413", NULL, NULL },
	{ "max_row_age_days", CFG_INT, OFF(max_row_age_days), true, "400", 0, 0,
	  "rows with a timestamp older than this are rejected", NULL, NULL },
	{ "max_clock_skew_s", CFG_INT, OFF(max_clock_skew_s), true, "3600", 0, 0,
	  "rows more than this many seconds in the future are rejected", NULL, NULL },
	{ "max_string_chars", CFG_INT, OFF(max_string_chars), true, "256", 0, 0,
	  "cap for model_id, provider, pricing_source, rate_rule, session_id, agent_id, revision, "
	  "fallback_from, and a heartbeat's agent_name, version, project, region, host",
	  NULL, NULL },
	{ "max_error_message_chars", CFG_INT, OFF(max_error_message_chars), true, "4096", 0, 0,
	  "cap for error_message, and a heartbeat's sink.last_error", NULL, NULL },
	{ "max_metadata_bytes", CFG_INT, OFF(max_metadata_bytes), true, "16384", 0, 0,
	  "cap for a row's metadata object, as compact JSON", NULL, NULL },
	{ "max_project_bytes", CFG_INT, OFF(max_project_bytes), true, "512", 0, 0,
	  "cap for project in UTF-8 bytes (the rollup index holds the four key strings in one entry)",
	  NULL, NULL },
	{ "max_agent_id_bytes", CFG_INT, OFF(max_agent_id_bytes), true, "640", 0, 0,
	  "cap for agent_id in UTF-8 bytes", NULL, NULL },
	{ "max_provider_bytes", CFG_INT, OFF(max_provider_bytes), true, "640", 0, 0,
	  "cap for provider in UTF-8 bytes", NULL, NULL },
	{ "max_model_id_bytes", CFG_INT, OFF(max_model_id_bytes), true, "640", 0, 0,
	  "cap for model_id in UTF-8 bytes; the four byte caps plus 204 must stay at most 2704",
	  NULL, NULL },
	{ "max_element_values", CFG_INT, OFF(max_element_values), true, "16384", 64, 0,
	  "most JSON values (keys included) in one element of an ingest or turns array; more "
	  "rejects that element unread (a cost row has about 50)",
	  NULL, NULL },
	{ "max_reject_raw_bytes", CFG_SIZE, OFF(max_reject_raw_bytes), true, "64K", 0, 0,
	  "a rejected element's text kept in ingest_rejects.raw is cut past this many bytes", NULL,
	  NULL },
	{ "rate_limit_rps", CFG_DOUBLE, OFF(rate_limit_rps), true, "200", 0, 0,
	  "requests per second each key may make (token bucket); 0 turns rate limiting off", NULL,
	  NULL },
	{ "rate_limit_burst", CFG_INT, OFF(rate_limit_burst), true, "400", 0, 0,
	  "token bucket size: requests a key may make at once after being idle", NULL, NULL },
	{ "tls_cert_file", CFG_STR, OFF(tls_cert_file), true, "", 0, 0,
	  "PEM certificate chain; with tls_key_file, serve HTTPS (TLS 1.2+) instead of HTTP", NULL,
	  &http_tls_hook },
	{ "tls_key_file", CFG_STR, OFF(tls_key_file), true, "", 0, 0,
	  "PEM private key for tls_cert_file", NULL, &http_tls_hook },
	{ "log_level", CFG_ENUM, OFF(log_level), true, "info", 0, 0,
	  "least severe log line written", config_log_level_words, &server_logging_hook },
	{ "log_format", CFG_ENUM, OFF(log_format), true, "logfmt", 0, 0,
	  "log line format: key=value pairs (logfmt) or one JSON object per line",
	  config_log_format_words, &server_logging_hook },
	{ "retention_months", CFG_INT, OFF(retention_months), true, "0", 0, 0,
	  "drop cost_rows partitions older than this many months; 0 keeps everything", NULL, NULL },
	{ "retention_interval_s", CFG_INT, OFF(retention_interval_s), true, "3600", 0, 0,
	  "seconds between retention passes (partition upkeep, forgetting old workers); 0 turns "
	  "them off",
	  NULL, &server_tasks_hook },
	{ "partitions_ahead", CFG_INT, OFF(partitions_ahead), true, "3", 0, 0,
	  "future monthly partitions of cost_rows to keep created", NULL, NULL },
	{ "max_connections", CFG_INT, OFF(max_connections), false, "4096", 1, 0,
	  "open client connections; past this new connections are closed at once", NULL, NULL },
	{ "idle_timeout_s", CFG_INT, OFF(idle_timeout_s), true, "60", 1, 0,
	  "seconds a client connection may stay idle or take to send headers and body", NULL,
	  &http_limits_hook },
	{ "shutdown_grace_s", CFG_INT, OFF(shutdown_grace_s), true, "30", 0, 0,
	  "seconds SIGTERM waits for in-flight batches before exiting", NULL, NULL },
	{ "key_refresh_s", CFG_INT, OFF(key_refresh_s), true, "30", 1, 0,
	  "full reload of the key cache every this many seconds (LISTEN/NOTIFY is the fast path)",
	  NULL, &server_key_refresh_hook },
	{ "max_rollup_periods", CFG_INT, OFF(max_rollup_periods), true, "100000", 0, 0,
	  "most result periods a rollup query may span; more gets 400", NULL, NULL },
	{ "reconcile_max_bytes", CFG_SIZE, OFF(reconcile_max_bytes), true, "33554432", 1024, 0,
	  "largest provider usage file POST /v1/reconcile reads, in bytes after gunzip; larger "
	  "gets 413",
	  NULL, NULL },
	{ "reconcile_max_records", CFG_INT, OFF(reconcile_max_records), true, "1000000", 1, 0,
	  "most records (CSV lines or JSON objects) in one usage file; more gets 413", NULL, NULL },
	{ "reconcile_max_groups", CFG_INT, OFF(reconcile_max_groups), true, "20000", 1, 0,
	  "most different models (per day, in a file with dates) in one usage file, each one "
	  "line of the report; more gets 413",
	  NULL, NULL },
	{ "rollup_daily_interval_s", CFG_INT, OFF(rollup_daily_interval_s), true, "60", 0, 0,
	  "seconds between passes summarising closed days into cost_rollup_daily; 0 turns it off",
	  NULL, &server_tasks_hook },
	{ "rollup_fold_s", CFG_DOUBLE, OFF(rollup_fold_s), true, "1", 0, 0,
	  "seconds between passes folding the rollup deltas each ingest appends into "
	  "the hourly, daily and per-tenant rollups (reads add the unfolded deltas, so answers stay exact; a lag makes "
	  "them slower); 0 turns this collector's summariser off",
	  NULL, &server_tasks_hook },
	{ "rollup_fold_max_deltas", CFG_INT, OFF(rollup_fold_max_deltas), true, "100000", 1, 0,
	  "most delta rows one fold transaction takes; a pass folds again until none are left",
	  NULL, NULL },
	{ "rollup_daily_settle_s", CFG_INT, OFF(rollup_daily_settle_s), true, "3600", 0, 0,
	  "a listed UTC day is summarised once it ended this many seconds ago (a write of its "
	  "hours by anything but the rollup fold lists it again)",
	  NULL, NULL },
	{ "agent_ttl_s", CFG_INT, OFF(agent_ttl_s), true, "45", 1, 0,
	  "a worker whose last heartbeat is older than this many seconds is reported offline", NULL,
	  NULL },
	{ "agent_gauges_interval_s", CFG_INT, OFF(agent_gauges_interval_s), true, "5", 0, 0,
	  "seconds between refreshes of the roster's /metrics gauges (vgcollector_agents...); 0 "
	  "turns them off",
	  NULL, &server_tasks_hook },
	{ "period_grace_s", CFG_INT, OFF(period_grace_s), true, "3600", 0, 0,
	  "a billing period is proven complete when every worker that wrote rows in it sent a "
	  "heartbeat with an empty backlog more than this many seconds after the month ended",
	  NULL, NULL },
	{ "period_metrics_interval_s", CFG_INT, OFF(period_metrics_interval_s), true, "10", 0, 0,
	  "seconds between refreshes of vgcollector_period_late_rows_total from the closed "
	  "months; 0 turns it off",
	  NULL, &server_tasks_hook },
	{ "sync_standby_check_s", CFG_INT, OFF(sync_standby_check_s), true, "30", 1, 0,
	  "seconds between checks that the database has a synchronous standby (also at startup "
	  "and on reload; a warning and vgcollector_db_synchronous_standby 0 when not)",
	  NULL, &server_tasks_hook },
	{ "focus_billing_account", CFG_STR, OFF(focus_billing_account), true, "", 0, 0,
	  "BillingAccountId and BillingAccountName of the FOCUS export; empty uses the host name",
	  NULL, NULL },
	{ "export_fetch_rows", CFG_INT, OFF(export_fetch_rows), true, "1000", 1, 1000000,
	  "lines the FOCUS export reads from PostgreSQL at a time (one FETCH of its cursor), "
	  "for GET /v1/export/focus and `vgcollector export focus` alike",
	  NULL, NULL },
	{ "export_buffer_bytes", CFG_SIZE, OFF(export_buffer_bytes), true, "1M", 4096, 0,
	  "most bytes of a streamed export (GET /v1/export/focus) held for one client that reads "
	  "slowly: the export pauses reading PostgreSQL while its connection has this much "
	  "unsent",
	  NULL, NULL },
	{ "agent_forget_after_s", CFG_INT, OFF(agent_forget_after_s), true, "604800", 1, 0,
	  "the retention pass removes workers offline for longer than this many seconds", NULL,
	  NULL },
	{ "agents_max_per_tenant", CFG_INT, OFF(agents_max_per_tenant), true, "10000", 1, 0,
	  "workers one tenant may have in the roster (workers without a tenant count as one "
	  "tenant); a heartbeat of a new agent_id past it gets 429",
	  NULL, NULL },
	{ "agents_flush_s", CFG_DOUBLE, OFF(agents_flush_s), false, "0", 0, 60,
	  "seconds between writes of buffered heartbeats: a beat of a worker already in the "
	  "roster is answered at once and written with the others in one statement (last_seen "
	  "stays the receipt time); 0 stores each beat as it comes",
	  NULL, NULL },
	{ "agents_buffer_max", CFG_INT, OFF(agents_buffer_max), false, "1000000", 1, 0,
	  "with agents_flush_s: most beats waiting for a flush, and most workers remembered as "
	  "in the roster; past either, beats are stored one by one",
	  NULL, NULL },
	{ "max_heartbeat_bytes", CFG_SIZE, OFF(max_heartbeat_bytes), true, "64K", 1024, 0,
	  "largest POST /v1/agents/heartbeat body, in bytes (a heartbeat is a few KB); larger gets "
	  "413 before it is parsed",
	  NULL, NULL },
	{ "budget_check_s", CFG_DOUBLE, OFF(budget_check_s), true, "10", 0, 0,
	  "seconds between budget evaluations (spend, alerts, due webhook retries)", NULL,
	  &server_tasks_hook },
	{ "budget_eval_delay_s", CFG_DOUBLE, OFF(budget_eval_delay_s), true, "1", 0, 0,
	  "seconds after an ingest commit before budgets are evaluated (commits in between share one "
	  "evaluation)",
	  NULL, NULL },
	{ "budget_retry_base_s", CFG_DOUBLE, OFF(budget_retry_base_s), true, "10", 0, 0,
	  "first webhook retry delay; each retry doubles it", NULL, NULL },
	{ "budget_retry_max_s", CFG_DOUBLE, OFF(budget_retry_max_s), true, "3600", 0, 0,
	  "longest delay between webhook retries", NULL, NULL },
	{ "budget_retry_for_s", CFG_INT, OFF(budget_retry_for_s), true, "86400", 1, 0,
	  "an alert without a 2xx answer this many seconds after it was raised is marked failed",
	  NULL, NULL },
	{ "budgets_max_per_tenant", CFG_INT, OFF(budgets_max_per_tenant), true, "1000", 1, 0,
	  "budgets one tenant may have (the tenant-less ones count as one more tenant); creating one "
	  "more gets 429",
	  NULL, NULL },
	{ "webhook_timeout_s", CFG_INT, OFF(webhook_timeout_s), true, "10", 1, 600,
	  "seconds one webhook post may take in all (resolve, connect, send, the answer's status "
	  "and headers); past it the attempt fails and is retried",
	  NULL, NULL },
	{ "webhook_max_inflight", CFG_INT, OFF(webhook_max_inflight), true, "16", 1, 10000,
	  "webhook posts one collector runs at once", NULL, NULL },
	{ "webhook_max_inflight_per_budget", CFG_INT, OFF(webhook_max_inflight_per_budget), true,
	  "2", 1, 10000, "webhook posts one collector runs at once for any one budget", NULL,
	  NULL },
	{ "webhook_max_inflight_per_tenant", CFG_INT, OFF(webhook_max_inflight_per_tenant), true,
	  "4", 1, 10000,
	  "webhook posts one collector runs at once for any one tenant's budgets (budgets without "
	  "a tenant count as one tenant)",
	  NULL, NULL },
	{ "webhook_max_answer_bytes", CFG_SIZE, OFF(webhook_max_answer_bytes), true, "16K", 1024,
	  1048576,
	  "most bytes of a webhook receiver's status line and headers read; the body is never "
	  "read. A longer answer fails the attempt",
	  NULL, NULL },
	{ "webhook_allow", CFG_STR, OFF(webhook_allow), true, "", 0, 0,
	  "webhook receivers allowed despite the default denials: addresses, CIDRs (10.1.2.0/24, "
	  "fd12::/64), host names or *.suffix patterns, comma-separated; the most specific "
	  "matching entry of webhook_allow and webhook_deny decides",
	  NULL, NULL },
	{ "webhook_deny", CFG_STR, OFF(webhook_deny), true, "", 0, 0,
	  "webhook receivers refused besides the default denials (loopback, link-local, private, "
	  "unique-local, cloud metadata and other special ranges), in webhook_allow's form",
	  NULL, NULL },
	{ "webhook_ca_file", CFG_STR, OFF(webhook_ca_file), false, "", 0, 0,
	  "PEM CA bundle to verify https webhooks with; empty uses the system's trust store", NULL,
	  NULL },
	{ "dashboard", CFG_ENUM, OFF(dashboard), true, "on", 0, 0,
	  "on: serve the web dashboard at / and /ui/; off: those paths answer 404",
	  config_on_off_words, NULL },
	{ "hide_cost_from_tenants", CFG_ENUM, OFF(hide_cost_from_tenants), true, "off", 0, 0,
	  "on: tenant-scoped keys never see acquisition cost (cost, book cost, margin) in any "
	  "read endpoint, and the FOCUS export answers them 403; off: only /v1/billing/usage "
	  "hides it from them",
	  config_on_off_words, NULL },
	{ "metrics_token", CFG_STR, OFF(metrics_token), true, "", 0, 0,
	  "when set, GET /metrics requires Authorization: Bearer <this token>; empty serves it to "
	  "anyone",
	  NULL, NULL },
	{ NULL, CFG_STR, 0, false, NULL, 0, 0, NULL, NULL, NULL },
};

static void *config_field(struct config *cfg, const struct config_param *p)
{
	return (char *)cfg + p->offset;
}

const struct config_param *config_find(const char *name)
{
	for (const struct config_param *p = config_params; p->name; p++)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

size_t config_size(const struct config *cfg, const struct config_param *p)
{
	return *(const size_t *)((const char *)cfg + p->offset);
}

double config_number(const struct config *cfg, const struct config_param *p)
{
	const char *f = (const char *)cfg + p->offset;

	switch (p->type) {
	case CFG_INT: return *(const int *)f;
	case CFG_SIZE: return (double)*(const size_t *)f;
	case CFG_DOUBLE: return *(const double *)f;
	default: return 0;
	}
}

/* Every default; false only when out of memory (a bad default is a bug in
 * the table, which config_defaults_validate in the unit tests catches). */
static bool config_defaults(struct config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	for (const struct config_param *p = config_params; p->name; p++) {
		if (!config_set(cfg, p->name, p->def, "default", err, errlen)) {
			config_free(cfg);
			return false;
		}
	}
	return true;
}

void config_init(struct config *cfg)
{
	char err[256];

	if (!config_defaults(cfg, err, sizeof(err)))
		log_fatal("%s", err);
}

void config_free(struct config *cfg)
{
	for (const struct config_param *p = config_params; p->name; p++) {
		if (p->type == CFG_STR) {
			char **s = config_field(cfg, p);
			free(*s);
			*s = NULL;
		}
	}
}

/* The size of the value p describes. */
static size_t config_value_size(const struct config_param *p)
{
	switch (p->type) {
	case CFG_STR: return sizeof(char *);
	case CFG_INT: return sizeof(int);
	case CFG_SIZE: return sizeof(size_t);
	case CFG_DOUBLE: return sizeof(double);
	case CFG_ENUM: return sizeof(int);
	}
	return 0;
}

/* True when row p holds different values in a and b. */
static bool config_row_differs(const struct config_param *p, const struct config *a,
			       const struct config *b)
{
	const char *fa = (const char *)a + p->offset, *fb = (const char *)b + p->offset;

	if (p->type == CFG_STR)
		return strcmp(*(char *const *)fa, *(char *const *)fb) != 0;
	if (p->type == CFG_DOUBLE)
		return *(const double *)fa != *(const double *)fb;
	return memcmp(fa, fb, config_value_size(p)) != 0;
}

/* The distinct hooks of params to run for a reload from a to b, in table
 * order, into out (room for one per row); returns how many. */
static int config_hooks_due(const struct config_param *params, const struct config *a,
			    const struct config *b, const struct config_hook **out)
{
	int n = 0;

	for (const struct config_param *p = params; p->name; p++) {
		bool dup = false;

		if (!p->hook || !p->reloadable ||
		    (!p->hook->always && !config_row_differs(p, a, b)))
			continue;
		for (int i = 0; i < n && !dup; i++)
			dup = out[i] == p->hook;
		if (!dup)
			out[n++] = p->hook;
	}
	return n;
}

static size_t config_nparams(const struct config_param *params)
{
	size_t n = 0;

	while (params[n].name)
		n++;
	return n;
}

bool config_hooks_check(const struct config_param *params, const struct config *running,
			const struct config *next, struct server *srv, char *err, size_t errlen)
{
	const struct config_hook **due = calloc(config_nparams(params) + 1, sizeof(*due));
	int n;
	bool ok = true;

	if (!due) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	n = config_hooks_due(params, running, next, due);
	for (int i = 0; ok && i < n; i++)
		if (due[i]->check)
			ok = due[i]->check(srv, next, err, errlen);
	free(due);
	return ok;
}

int config_hooks_apply(const struct config_param *params, const struct config *old,
		       const struct config *now, struct server *srv)
{
	const struct config_hook **due = calloc(config_nparams(params) + 1, sizeof(*due));
	int n;

	if (!due)
		log_fatal("out of memory applying a reload");
	n = config_hooks_due(params, old, now, due);
	for (int i = 0; i < n; i++)
		due[i]->apply(srv);
	free(due);
	return n;
}

bool config_keep_restart_keys(struct config *next, const struct config *running, char *err,
			      size_t errlen)
{
	for (const struct config_param *p = config_params; p->name; p++) {
		const char *src = (const char *)running + p->offset;
		char *dst = (char *)next + p->offset;

		if (p->reloadable)
			continue;
		if (p->type == CFG_STR) {
			char *s = strdup(*(char *const *)src);
			if (!s) {
				snprintf(err, errlen, "out of memory copying %s", p->name);
				return false;
			}
			free(*(char **)dst);
			*(char **)dst = s;
		} else {
			memcpy(dst, src, config_value_size(p));
		}
	}
	return true;
}

/* Accepts a plain number or one with a K, M or G suffix (powers of 1024). */
static bool config_parse_size(const char *v, size_t *out)
{
	char *end;
	unsigned long long n;

	errno = 0;
	if (!isdigit((unsigned char)*v))
		return false;
	n = strtoull(v, &end, 10);
	if (errno || end == v)
		return false;
	switch (*end) {
	case 'k':
	case 'K':
		n <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		n <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		n <<= 30;
		end++;
		break;
	default: break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || n > SIZE_MAX / 2)
		return false;
	*out = (size_t)n;
	return true;
}

/* Checks a parsed whole number against p's min and max. */
static bool config_in_bounds(const struct config_param *p, unsigned long long n, const char *value,
			     const char *source, char *err, size_t errlen)
{
	if (n >= (unsigned long long)p->min && (p->max == 0 || n <= (unsigned long long)p->max))
		return true;
	if (p->max)
		snprintf(err, errlen, "%s: %s = \"%s\": must be %lld..%lld", source, p->name, value,
			 p->min, p->max);
	else
		snprintf(err, errlen, "%s: %s = \"%s\": must be at least %lld", source, p->name,
			 value, p->min);
	return false;
}

bool config_set(struct config *cfg, const char *name, const char *value, const char *source,
		char *err, size_t errlen)
{
	const struct config_param *p = config_find(name);
	void *f;
	char *end;

	if (!p) {
		snprintf(err, errlen, "%s: unknown key \"%s\"", source, name);
		return false;
	}
	f = config_field(cfg, p);
	switch (p->type) {
	case CFG_STR: {
		char *s = strdup(value);
		if (!s) {
			snprintf(err, errlen, "%s: %s: out of memory", source, name);
			return false;
		}
		free(*(char **)f);
		*(char **)f = s;
		return true;
	}
	case CFG_INT: {
		long n;
		errno = 0;
		n = strtol(value, &end, 10);
		if (errno || end == value || *end || n < 0 || n > INT_MAX) {
			snprintf(err, errlen, "%s: %s = \"%s\": expected a whole number >= 0",
				 source, name, value);
			return false;
		}
		if (!config_in_bounds(p, (unsigned long long)n, value, source, err, errlen))
			return false;
		*(int *)f = (int)n;
		return true;
	}
	case CFG_SIZE: {
		size_t n;
		if (!config_parse_size(value, &n)) {
			snprintf(
				err, errlen,
				"%s: %s = \"%s\": expected a size in bytes (K, M or G suffix allowed)",
				source, name, value);
			return false;
		}
		if (!config_in_bounds(p, n, value, source, err, errlen))
			return false;
		*(size_t *)f = n;
		return true;
	}
	case CFG_ENUM: {
		char words[256];
		size_t pos = 0;

		for (int i = 0; p->choices[i]; i++) {
			if (strcmp(p->choices[i], value) == 0) {
				*(int *)f = i;
				return true;
			}
			pos += (size_t)snprintf(words + pos,
						pos < sizeof(words) ? sizeof(words) - pos : 0,
						"%s%s", i ? ", " : "", p->choices[i]);
		}
		snprintf(err, errlen, "%s: %s = \"%s\": expected one of %s", source, name, value,
			 words);
		return false;
	}
	case CFG_DOUBLE: {
		double d;
		errno = 0;
		d = strtod(value, &end);
		if (errno || end == value || *end || !(d >= 0)) {
			snprintf(err, errlen, "%s: %s = \"%s\": expected a number >= 0", source,
				 name, value);
			return false;
		}
		*(double *)f = d;
		return true;
	}
	}
	return false;
}

static char *config_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

bool config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[4096], where[PATH_MAX + 32];
	int lineno = 0;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		char *key, *val, *eq, *hash;

		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s: line longer than %zu bytes", where,
				 sizeof(line));
			fclose(f);
			return false;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		key = config_trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, errlen, "%s: expected \"key = value\"", where);
			fclose(f);
			return false;
		}
		*eq = '\0';
		val = config_trim(eq + 1);
		key = config_trim(key);
		/* Values may be quoted to keep spaces or a '#'-free conninfo readable. */
		if (val[0] == '"' && strlen(val) >= 2 && val[strlen(val) - 1] == '"') {
			val[strlen(val) - 1] = '\0';
			val++;
		}
		if (!config_set(cfg, key, val, where, err, errlen)) {
			fclose(f);
			return false;
		}
	}
	fclose(f);
	return true;
}

bool config_load_env(struct config *cfg, char *err, size_t errlen)
{
	char name[96], source[112];

	for (const struct config_param *p = config_params; p->name; p++) {
		const char *v;
		size_t i;

		snprintf(name, sizeof(name), "VGC_%s", p->name);
		for (i = 4; name[i]; i++)
			name[i] = (char)toupper((unsigned char)name[i]);
		v = getenv(name);
		if (!v)
			continue;
		snprintf(source, sizeof(source), "environment %s", name);
		if (!config_set(cfg, p->name, v, source, err, errlen))
			return false;
	}
	return true;
}

const char *config_path_resolve(const char *flag)
{
	const char *env = getenv("VGC_CONFIG");

	if (flag)
		return flag;
	if (env)
		return env;
	if (access(CONFIG_DEFAULT_PATH, R_OK) == 0)
		return CONFIG_DEFAULT_PATH;
	return NULL;
}

bool config_load(struct config *cfg, const char *path, char *const *flag_names,
		 char *const *flag_values, int nflags, char *err, size_t errlen)
{
	if (!config_defaults(cfg, err, errlen))
		return false;
	if (path && !config_load_file(cfg, path, err, errlen))
		goto fail;
	if (!config_load_env(cfg, err, errlen))
		goto fail;
	for (int i = 0; i < nflags; i++) {
		char source[128];
		snprintf(source, sizeof(source), "flag --%s", flag_names[i]);
		if (!config_set(cfg, flag_names[i], flag_values[i], source, err, errlen))
			goto fail;
	}
	if (!config_validate(cfg, err, errlen))
		goto fail;
	return true;
fail:
	config_free(cfg);
	return false;
}

/* The row limits the database depends on. */
static bool config_validate_rows(const struct config *cfg, char *err, size_t errlen)
{
	struct row_limits lim;
	size_t total;

	config_row_limits(cfg, &lim);
	if (!row_key_bytes_fit(&lim, &total)) {
		snprintf(
			err, errlen,
			"max_project_bytes (%d) + max_agent_id_bytes (%d) + max_provider_bytes (%d)"
			" + max_model_id_bytes (%d) + %d for the rest of the rollup key = %zu:"
			" must be at most %d, the most one entry of the rollup index can hold",
			cfg->max_project_bytes, cfg->max_agent_id_bytes, cfg->max_provider_bytes,
			cfg->max_model_id_bytes, ROW_ROLLUP_KEY_FIXED_BYTES, total,
			ROW_ROLLUP_KEY_MAX_BYTES);
		return false;
	}
	/* Retention forgets a dropped month's ids; ingest then refuses its rows by
	 * the horizon, but a window that accepts rows retention already dropped
	 * is a configuration mistake worth refusing outright. 28 days is the
	 * shortest month. */
	if (cfg->retention_months > 0 &&
	    (long long)cfg->retention_months * 28 < (long long)cfg->max_row_age_days) {
		snprintf(err, errlen,
			 "retention_months = %d keeps at least %lld days, fewer than"
			 " max_row_age_days = %d: rows retention drops would still be accepted."
			 " Raise retention_months or lower max_row_age_days to at most %lld",
			 cfg->retention_months, (long long)cfg->retention_months * 28,
			 cfg->max_row_age_days, (long long)cfg->retention_months * 28);
		return false;
	}
	return true;
}

void config_row_limits(const struct config *cfg, struct row_limits *lim)
{
	row_limits_default(lim);
	lim->max_string_chars = (size_t)cfg->max_string_chars;
	lim->max_error_message_chars = (size_t)cfg->max_error_message_chars;
	lim->max_metadata_bytes = (size_t)cfg->max_metadata_bytes;
	lim->max_row_age_s = cfg->max_row_age_days * 86400.0;
	lim->max_clock_skew_s = cfg->max_clock_skew_s;
	lim->max_project_bytes = (size_t)cfg->max_project_bytes;
	lim->max_agent_id_bytes = (size_t)cfg->max_agent_id_bytes;
	lim->max_provider_bytes = (size_t)cfg->max_provider_bytes;
	lim->max_model_id_bytes = (size_t)cfg->max_model_id_bytes;
}

bool config_validate(struct config *cfg, char *err, size_t errlen)
{
	if (cfg->max_pending_body_bytes < cfg->max_body_bytes) {
		snprintf(
			err, errlen,
			"max_pending_body_bytes = %zu is less than max_body_bytes = %zu: a body of "
			"the largest allowed size could never be received",
			cfg->max_pending_body_bytes, cfg->max_body_bytes);
		return false;
	}
	if (!cfg->listen[0]) {
		snprintf(err, errlen, "listen: at least one HOST:PORT is needed");
		return false;
	}
	if (!!cfg->tls_cert_file[0] != !!cfg->tls_key_file[0]) {
		snprintf(err, errlen, "tls_cert_file and tls_key_file must be set together");
		return false;
	}
	if (!config_validate_rows(cfg, err, errlen))
		return false;
	if (!webhook_policy_lists_ok(cfg->webhook_allow, cfg->webhook_deny, err, errlen))
		return false;
	if (cfg->db_file[0]) {
		char line[4096];
		FILE *f = fopen(cfg->db_file, "r");
		if (!f) {
			snprintf(err, errlen, "db_file %s: %s", cfg->db_file, strerror(errno));
			return false;
		}
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
		{
			char *db = strdup(config_trim(line));
			if (!db) {
				snprintf(err, errlen, "db_file %s: out of memory", cfg->db_file);
				return false;
			}
			free(cfg->db);
			cfg->db = db;
		}
	}
	return true;
}

bool config_restart_needed(const struct config *a, const struct config *b, char *out, size_t outlen)
{
	size_t pos = 0;

	out[0] = '\0';
	for (const struct config_param *p = config_params; p->name; p++) {
		if (p->reloadable)
			continue;
		if (config_row_differs(p, a, b) && pos < outlen)
			pos += (size_t)snprintf(out + pos, outlen - pos, "%s%s", pos ? "," : "",
						p->name);
	}
	return pos > 0;
}

/* p's bounds as text ("; 1..256", "; at least 1024"), or "" when it has none. */
static void config_bounds_text(const struct config_param *p, char *out, size_t outlen)
{
	if (p->choices) {
		size_t pos = (size_t)snprintf(out, outlen, "; one of ");

		for (int i = 0; p->choices[i] && pos < outlen; i++)
			pos += (size_t)snprintf(out + pos, outlen - pos, "%s%s", i ? ", " : "",
						p->choices[i]);
	} else if (p->max)
		snprintf(out, outlen, "; %lld..%lld", p->min, p->max);
	else if (p->min)
		snprintf(out, outlen, "; at least %lld", p->min);
	else
		out[0] = '\0';
}

void config_print_sample(FILE *f)
{
	fprintf(f, "# vgcollector.conf: every key with its default. Generated by\n"
		   "# `vgcollector config-sample`; `make test` checks this file against the code.\n"
		   "# Syntax: key = value, # starts a comment. VGC_<KEY> environment variables\n"
		   "# override this file and --key-name flags override both. Keys marked\n"
		   "# [reload] take effect on SIGHUP; the others need a restart.\n");
	for (const struct config_param *p = config_params; p->name; p++) {
		char bounds[256];

		config_bounds_text(p, bounds, sizeof(bounds));
		fprintf(f, "\n# %s%s%s\n", p->help, bounds, p->reloadable ? " [reload]" : "");
		fprintf(f, "#%s = %s\n", p->name, p->def);
	}
}

static bool config_listed(const char *name, const char *const *keys)
{
	if (!keys)
		return true;
	for (; *keys; keys++)
		if (strcmp(*keys, name) == 0)
			return true;
	return false;
}

void config_print_help(FILE *f, const char *const *keys)
{
	for (const struct config_param *p = config_params; p->name; p++) {
		char flag[64], bounds[256];
		size_t i;

		static const char *const metavar[] = { [CFG_STR] = "TEXT",
						       [CFG_INT] = "N",
						       [CFG_SIZE] = "BYTES",
						       [CFG_DOUBLE] = "NUMBER",
						       [CFG_ENUM] = "WORD" };

		if (!config_listed(p->name, keys))
			continue;
		snprintf(flag, sizeof(flag), "--%s %s", p->name, metavar[p->type]);
		for (i = 2; flag[i] != ' '; i++)
			if (flag[i] == '_')
				flag[i] = '-';
		config_bounds_text(p, bounds, sizeof(bounds));
		fprintf(f, "  %-28s %s (default: %s%s)\n", flag, p->help,
			p->def[0] ? p->def : "none", bounds);
	}
}
