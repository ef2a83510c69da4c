/* Process counters for GET /metrics (Prometheus text format). Counters are C11
 * atomics so worker threads and the loop update them without locks. */
#ifndef VGC_METRICS_H
#define VGC_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct buf;

/* Registers an HTTP route name (kept, not copied); returns its index for
 * metrics_http_request, the same one for a name already registered. No cap:
 * each name gets its own series. Startup only, before requests are counted. */
int metrics_route_register(const char *name);
void metrics_http_request(int route, int status);
void metrics_rows(uint64_t accepted, uint64_t duplicates, uint64_t rejected);
void metrics_bytes(uint64_t received, uint64_t compressed, uint64_t inflated);
void metrics_ingest_latency(double seconds);
/* One ingest transaction's id claim: fresh (every id new) or not (a resend). */
void metrics_ingest_claim(bool fresh);
/* Rows stored that the price book did not price (book_cost_usd NULL). */
void metrics_unpriced(uint64_t rows);
void metrics_db_error(void);
void metrics_auth_failure(void);
void metrics_rate_limited(void);
void metrics_conn_open(void);
void metrics_conn_close(void);
void metrics_conn_refused(void);
void metrics_pending_body_refused(void);

/* The roster's gauges (agents_metrics.c refreshes them from the database):
 * workers by derived status, and their sinks' dropped and waiting rows. */
void metrics_agents_set(uint64_t idle, uint64_t busy, uint64_t offline, uint64_t dropped,
			uint64_t backlog);

/* Gauges other modules own, read by the caller when /metrics is asked for. */
struct metrics_gauges {
	uint64_t pool_size, pool_in_use, pool_waiting; /* pool.c */
	uint64_t pending_body_bytes;		       /* gate.c */
};

/* Appends the whole exposition to out. */
void metrics_render(struct buf *out, const struct metrics_gauges *g);

#endif
