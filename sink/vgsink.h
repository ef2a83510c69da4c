/* libvgsink: the worker-side batching sink for vgcollector. Record one cost
 * row per provider request; a background thread batches, gzips and POSTs rows
 * to the collector, retries what may be retried and spools what it cannot send.
 *
 * Threads: every call may be made from any thread, except that vgsink_close
 * must not race other calls on the same sink.
 *
 * Fork: a sink belongs to the process that opened it. In a child forked after
 * vgsink_open every call on the parent's sink returns -1 (vgsink_stats_get
 * fills zeros) and vgsink_errstr says "process forked after vgsink_open; open
 * a new sink in the child". The child never touches the parent's thread,
 * socket or locks; it opens its own sink (with a spool dir of its own: a
 * spool dir is locked by one process at a time). fork() waits until each
 * sink's sender thread is parked between callbacks, so none holds a lock of
 * the allocator or libc that the child would then wait on forever.
 *
 * The library never exits the process and never writes to stdout or stderr;
 * it logs only through vgsink_config.log. */
#ifndef VGSINK_H
#define VGSINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VGSINK_VERSION "0.1.0"

/* Levels passed to the log callback. */
enum { VGSINK_LOG_ERROR = 0, VGSINK_LOG_WARN = 1, VGSINK_LOG_INFO = 2, VGSINK_LOG_DEBUG = 3 };

typedef struct vgsink vgsink; /* opaque */

typedef struct vgsink_config {
	const char *url; /* collector base URL, http:// or https://; "/v1/ingest" appended as the
			    Python sink does */
	const char *api_key;				    /* sent as Authorization: Bearer */
	int batch_rows;					    /* default 500 */
	size_t batch_bytes;				    /* default 1 MiB of JSON before gzip */
	int flush_interval_ms;				    /* default 1000 */
	size_t queue_max_rows;				    /* in-memory bound, default 100000 */
	const char *spool_dir;				    /* NULL: no spool */
	size_t spool_max_bytes;				    /* default 1 GiB */
	int request_timeout_ms;				    /* default 10000 */
	const char *ca_file;				    /* extra CA bundle for https */
	void (*log)(int level, const char *msg, void *arg); /* NULL: silent */
	void *log_arg;
	/* Additions. */
	int retry_initial_ms; /* first retry delay, doubled each time; default 200 */
	int retry_max_ms;     /* cap on one retry delay (before jitter); default 30000 */
	int queue_shards;     /* recording threads spread over this many queue locks
			       * (rounded up to a power of two, 1-256); default 16 */
} vgsink_config;

typedef struct vgsink_row { /* the ingest wire fields; strings may be NULL */
	const char *id;	    /* NULL: the sink generates a UUID */
	double timestamp;   /* 0: now */
	const char *modality, *model_id, *provider, *project;
	double input_units, output_units, cached_input_units, cost_usd, rated_price_usd;
	const char *pricing_source, *rate_rule;
	double ttfb_ms, total_latency_ms; /* NaN: null */
	const char *status, *fallback_from, *error_message;
	const char *metadata_json; /* a JSON object as text, or NULL */
	const char *session_id, *agent_id, *tenant_id, *revision;
	int turn_index; /* < 0: null */
} vgsink_row;

typedef struct vgsink_stats {
	uint64_t recorded, sent, duplicates, rejected, retries, spooled, dropped;
	uint64_t queued; /* rows in memory now */
} vgsink_stats;

/* Defaults, then VOICEGW_COLLECTOR_URL / VOICEGW_API_KEY from the environment. */
void vgsink_config_init(vgsink_config *cfg);
/* Starts the sender thread. NULL with a message in err on a bad config, an
 * unusable spool dir (or one locked by another process) or a TLS setup error. */
vgsink *vgsink_open(const vgsink_config *cfg, char *err, size_t errlen);
/* Validates (the collector's rules), copies, stamps id and timestamp when
 * missing, enqueues. Never waits for the network or the disk. 0, or -1 with
 * vgsink_errstr(s) (a bad row, or a forked process). */
int vgsink_record(vgsink *s, const vgsink_row *row);
/* 0 once every row recorded before the call, and every batch found in the
 * spool when the sink opened, was answered by the collector (accepted,
 * duplicate or rejected); -1 when timeout_ms passes first (rows stay queued or
 * spooled). The sink stays open. */
int vgsink_flush(vgsink *s, int timeout_ms);
/* Flushes for up to timeout_ms, stops the thread and frees the sink. Rows not
 * answered by then go to the spool when there is one (else they are counted
 * as dropped). 0 when nothing was left unsent, -1 otherwise. */
int vgsink_close(vgsink *s, int timeout_ms);
void vgsink_stats_get(vgsink *s, vgsink_stats *out);
/* The last error of this sink (per sink, not per thread). */
const char *vgsink_errstr(vgsink *s);

#ifdef __cplusplus
}
#endif

#endif
