/* Prometheus counters and their text exposition. Label sets are fixed at
 * startup (routes, a short list of status codes), so every series is known. */
#include "metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

static const int metrics_statuses[] = {
	200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 503
};
#define METRICS_NSTATUS (int)(sizeof(metrics_statuses) / sizeof(metrics_statuses[0]))

static const double metrics_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define METRICS_NBUCKETS (int)(sizeof(metrics_buckets) / sizeof(metrics_buckets[0]))

/* One row per registered route, grown at registration (startup, before any
 * request), so every route has its own series however many there are. The
 * last column counts statuses not in metrics_statuses. */
typedef _Atomic uint64_t metrics_http_row[METRICS_NSTATUS + 1];
static const char **metrics_routes;
static metrics_http_row *metrics_http;
static int metrics_nroutes;

static _Atomic uint64_t rows_accepted, rows_duplicate, rows_rejected;
static _Atomic uint64_t bytes_received, bytes_compressed, bytes_inflated;
static _Atomic uint64_t latency_buckets[METRICS_NBUCKETS];
static _Atomic uint64_t latency_count, latency_sum_us;
static _Atomic uint64_t claims_fresh, claims_resend;
static _Atomic uint64_t unpriced_rows;
static _Atomic uint64_t db_errors, auth_failures, rate_limited;
static _Atomic uint64_t conns_open, conns_refused, pending_body_refused;
static _Atomic uint64_t agents_by_status[3], agents_dropped, agents_backlog;
static _Atomic bool agents_known; /* false until the first refresh */

int metrics_route_register(const char *name)
{
	const char **names;
	metrics_http_row *rows;

	for (int i = 0; i < metrics_nroutes; i++)
		if (strcmp(metrics_routes[i], name) == 0)
			return i;
	names = realloc(metrics_routes, (size_t)(metrics_nroutes + 1) * sizeof(*names));
	if (names)
		metrics_routes = names;
	rows = realloc((void *)metrics_http, (size_t)(metrics_nroutes + 1) * sizeof(*rows));
	if (rows)
		metrics_http = rows;
	if (!names || !rows)
		log_fatal("out of memory registering route metrics");
	metrics_routes[metrics_nroutes] = name;
	for (int s = 0; s <= METRICS_NSTATUS; s++)
		atomic_init(&metrics_http[metrics_nroutes][s], 0);
	return metrics_nroutes++;
}

void metrics_http_request(int route, int status)
{
	int col = METRICS_NSTATUS;

	if (route < 0 || route >= metrics_nroutes)
		return;
	for (int i = 0; i < METRICS_NSTATUS; i++)
		if (metrics_statuses[i] == status)
			col = i;
	atomic_fetch_add(&metrics_http[route][col], 1);
}

void metrics_rows(uint64_t accepted, uint64_t duplicates, uint64_t rejected)
{
	atomic_fetch_add(&rows_accepted, accepted);
	atomic_fetch_add(&rows_duplicate, duplicates);
	atomic_fetch_add(&rows_rejected, rejected);
}

void metrics_bytes(uint64_t received, uint64_t compressed, uint64_t inflated)
{
	atomic_fetch_add(&bytes_received, received);
	atomic_fetch_add(&bytes_compressed, compressed);
	atomic_fetch_add(&bytes_inflated, inflated);
}

void metrics_ingest_latency(double seconds)
{
	for (int i = 0; i < METRICS_NBUCKETS; i++)
		if (seconds <= metrics_buckets[i])
			atomic_fetch_add(&latency_buckets[i], 1);
	atomic_fetch_add(&latency_count, 1);
	atomic_fetch_add(&latency_sum_us, (uint64_t)(seconds * 1e6));
}

void metrics_unpriced(uint64_t rows)
{
	atomic_fetch_add(&unpriced_rows, rows);
}

void metrics_ingest_claim(bool fresh)
{
	atomic_fetch_add(fresh ? &claims_fresh : &claims_resend, 1);
}

void metrics_db_error(void)
{
	atomic_fetch_add(&db_errors, 1);
}

void metrics_auth_failure(void)
{
	atomic_fetch_add(&auth_failures, 1);
}

void metrics_rate_limited(void)
{
	atomic_fetch_add(&rate_limited, 1);
}

void metrics_conn_open(void)
{
	atomic_fetch_add(&conns_open, 1);
}

void metrics_conn_close(void)
{
	atomic_fetch_sub(&conns_open, 1);
}

void metrics_conn_refused(void)
{
	atomic_fetch_add(&conns_refused, 1);
}

void metrics_pending_body_refused(void)
{
	atomic_fetch_add(&pending_body_refused, 1);
}

void metrics_agents_set(uint64_t idle, uint64_t busy, uint64_t offline, uint64_t dropped,
			uint64_t backlog)
{
	atomic_store(&agents_by_status[0], idle);
	atomic_store(&agents_by_status[1], busy);
	atomic_store(&agents_by_status[2], offline);
	atomic_store(&agents_dropped, dropped);
	atomic_store(&agents_backlog, backlog);
	atomic_store(&agents_known, true);
}

static void metrics_counter(struct buf *out, const char *name, const char *help, uint64_t v)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
		   (unsigned long long)v);
}

static void metrics_gauge(struct buf *out, const char *name, const char *help, uint64_t v)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
		   (unsigned long long)v);
}

/* A counter with one label: a series per value, in the order given. */
struct metrics_series {
	const char *value;
	_Atomic uint64_t *count;
};

static void metrics_counter_by(struct buf *out, const char *name, const char *help,
			       const char *label, const struct metrics_series *series, int n)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (int i = 0; i < n; i++)
		buf_printf(out, "%s{%s=\"%s\"} %llu\n", name, label, series[i].value,
			   (unsigned long long)atomic_load(series[i].count));
}

void metrics_render(struct buf *out, const struct metrics_gauges *g)
{
	const struct metrics_series rows[] = { { "accepted", &rows_accepted },
					       { "duplicate", &rows_duplicate },
					       { "rejected", &rows_rejected } };
	const struct metrics_series bytes[] = { { "received", &bytes_received },
						{ "compressed", &bytes_compressed },
						{ "inflated", &bytes_inflated } };
	const struct metrics_series claims[] = { { "fresh", &claims_fresh },
						 { "resend", &claims_resend } };
	uint64_t cum = 0;

	buf_puts(out, "# HELP vgcollector_build_info Build information.\n"
		      "# TYPE vgcollector_build_info gauge\n");
	buf_printf(out, "vgcollector_build_info{version=\"%s\"} 1\n", VGC_VERSION);

	buf_puts(out, "# HELP vgcollector_http_requests_total HTTP requests by route and status.\n"
		      "# TYPE vgcollector_http_requests_total counter\n");
	for (int r = 0; r < metrics_nroutes; r++) {
		for (int s = 0; s <= METRICS_NSTATUS; s++) {
			uint64_t v = atomic_load(&metrics_http[r][s]);
			if (s == METRICS_NSTATUS)
				buf_printf(
					out,
					"vgcollector_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
					metrics_routes[r], (unsigned long long)v);
			else
				buf_printf(
					out,
					"vgcollector_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
					metrics_routes[r], metrics_statuses[s],
					(unsigned long long)v);
		}
	}
	metrics_counter_by(out, "vgcollector_rows_total", "Cost rows by outcome.", "outcome", rows,
			   3);
	metrics_counter_by(out, "vgcollector_ingest_bytes_total",
			   "Ingest body bytes: as received, of them gzip-compressed, and after"
			   " inflating.",
			   "stage", bytes, 3);

	buf_puts(
		out,
		"# HELP vgcollector_ingest_duration_seconds Time from request to committed answer.\n"
		"# TYPE vgcollector_ingest_duration_seconds histogram\n");
	for (int i = 0; i < METRICS_NBUCKETS; i++) {
		cum = atomic_load(&latency_buckets[i]);
		buf_printf(out, "vgcollector_ingest_duration_seconds_bucket{le=\"%g\"} %llu\n",
			   metrics_buckets[i], (unsigned long long)cum);
	}
	buf_printf(out, "vgcollector_ingest_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		   (unsigned long long)atomic_load(&latency_count));
	buf_printf(out, "vgcollector_ingest_duration_seconds_sum %.6f\n",
		   (double)atomic_load(&latency_sum_us) / 1e6);
	buf_printf(out, "vgcollector_ingest_duration_seconds_count %llu\n",
		   (unsigned long long)atomic_load(&latency_count));

	metrics_counter_by(out, "vgcollector_ingest_claims_total",
			   "Ingest transactions by how their ids were claimed: fresh (every id"
			   " new, one plain insert) or resend (an id already stored, so stored"
			   " ids were skipped).",
			   "path", claims, 2);

	metrics_counter(out, "vgcollector_unpriced_rows_total",
			"Rows stored that the price book did not price (book_cost_usd null): a"
			" model or meter missing from it; GET /v1/billing/unpriced lists them.",
			atomic_load(&unpriced_rows));

	metrics_gauge(out, "vgcollector_db_pool_size", "Database connections configured.",
		      g->pool_size);
	metrics_gauge(out, "vgcollector_db_pool_in_use", "Database connections running a job.",
		      g->pool_in_use);
	metrics_gauge(out, "vgcollector_db_pool_waiting",
		      "Requests waiting for a database connection.", g->pool_waiting);
	metrics_counter(out, "vgcollector_db_errors_total", "Failed database connects and queries.",
			atomic_load(&db_errors));
	metrics_counter(out, "vgcollector_auth_failures_total", "Requests refused with 401.",
			atomic_load(&auth_failures));
	metrics_counter(out, "vgcollector_rate_limited_total", "Requests refused with 429.",
			atomic_load(&rate_limited));
	metrics_gauge(out, "vgcollector_open_connections", "Client connections open now.",
		      atomic_load(&conns_open));
	metrics_counter(out, "vgcollector_connections_refused_total",
			"Client connections closed at once because max_connections was reached.",
			atomic_load(&conns_refused));
	metrics_counter(out, "vgcollector_pending_body_refused_total",
			"Uploads answered 503 because max_pending_body_bytes was reached.",
			atomic_load(&pending_body_refused));
	metrics_gauge(out, "vgcollector_pending_body_bytes",
		      "Body bytes reserved by requests being received, not yet dispatched.",
		      g->pending_body_bytes);
	if (atomic_load(&agents_known)) {
		static const char *const st[3] = { "idle", "busy", "offline" };

		buf_puts(out, "# HELP vgcollector_agents Workers in the roster by status.\n"
			      "# TYPE vgcollector_agents gauge\n");
		for (int i = 0; i < 3; i++)
			buf_printf(out, "vgcollector_agents{status=\"%s\"} %llu\n", st[i],
				   (unsigned long long)atomic_load(&agents_by_status[i]));
		metrics_gauge(out, "vgcollector_agent_sink_dropped_rows",
			      "Rows the roster's libvgsink workers report dropped, summed.",
			      atomic_load(&agents_dropped));
		metrics_gauge(
			out, "vgcollector_agent_sink_backlog_rows",
			"Rows the roster's libvgsink workers report queued or spooled, summed.",
			atomic_load(&agents_backlog));
	}
}
