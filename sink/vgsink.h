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
 * it logs only through vgsink_config.log.
 *
 * ABI: vgsink_config, vgsink_row and vgsink_stats only ever grow at their end
 * (a new field starts a new 8-byte word, so sizeof grows), and every call that
 * takes one is told its size: vgsink_config_init, vgsink_open, vgsink_record,
 * vgsink_try_record and vgsink_stats_get are macros that pass sizeof(*arg) to
 * the *_sized function (as zlib's deflateInit passes sizeof(z_stream)). The
 * library reads and writes only the bytes the caller has; a field the caller's
 * header lacks takes its default (a field added later always treats 0/NULL as
 * "not given"). A struct bigger than the library knows is accepted when the
 * extra bytes are zero, and refused (naming it) when they set something the
 * library cannot do. The plain symbols vgsink_config_init, vgsink_open,
 * vgsink_record and vgsink_stats_get stay exported with the first header's
 * (0.1.0) sizes, so a program built against that header runs unchanged on this
 * library: the soname stays libvgsink.so.0. */
#ifndef VGSINK_H
#define VGSINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VGSINK_VERSION "0.1.0"

/* Marks the library's API: libvgsink.so is built with -fvisibility=hidden
 * and exports these functions and nothing else, so a program's own symbols
 * never meet the library's internals. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define VGSINK_EXPORT __attribute__((visibility("default")))
#else
#define VGSINK_EXPORT
#endif

/* Levels passed to the log callback. */
enum { VGSINK_LOG_ERROR = 0, VGSINK_LOG_WARN = 1, VGSINK_LOG_INFO = 2, VGSINK_LOG_DEBUG = 3 };

typedef struct vgsink vgsink; /* opaque */

typedef struct vgsink_config {
	const char *url; /* collector base URL, http:// or https://; "/v1/ingest" appended as the
			    Python sink does */
	const char *api_key;	/* sent as Authorization: Bearer */
	int batch_rows;		/* default 500 */
	size_t batch_bytes;	/* default 1 MiB of JSON before gzip */
	int flush_interval_ms;	/* default 1000 */
	size_t queue_max_rows;	/* in-memory bound, default 100000. Without a spool the
				 * oldest rows past it are dropped (counted). With one,
				 * rows past it go to disk; while the disk is slower than
				 * recording, memory may hold up to twice the bound, and
				 * past that only rows whose JSON still fits the spool's
				 * free room (so at most spool_max_bytes of JSON). */
	const char *spool_dir;	/* NULL: no spool */
	size_t spool_max_bytes; /* default 1 GiB: pending files and rejected/ together */
	int request_timeout_ms; /* default 10000 */
	const char *ca_file;	/* extra CA bundle for https */
	void (*log)(int level, const char *msg, void *arg); /* NULL: silent */
	void *log_arg;
	/* Additions. */
	int retry_initial_ms; /* first retry delay, doubled each time; default 200 */
	int retry_max_ms;     /* cap on one retry delay (before jitter); default 30000 */
	int queue_shards;     /* recording threads spread over this many queue locks
			       * (rounded up to a power of two, 1-256); default 16 */
	/* Additions: the heartbeat. With agent_id set, the sender thread POSTs
	 * the worker's presence (vgsink_set_presence) and one consistent
	 * snapshot of the counters below (see vgsink_stats) to
	 * URL/v1/agents/heartbeat every heartbeat_interval_ms, with the same
	 * key, so the collector's roster (GET /v1/agents) shows the worker and
	 * its delivery health. A beat that fails is never retried or spooled:
	 * the next one supersedes it. Strings are copied at vgsink_open; each is
	 * at most 256 characters of UTF-8 (agent_id 1-128). */
	const char *agent_id;	   /* the node's identity; NULL: no heartbeat (the default) */
	const char *agent_name;	   /* groups workers (VoiceGateway's agent_name); NULL: none */
	const char *version;	   /* the worker's version; NULL: none */
	const char *region;	   /* NULL: none */
	const char *host;	   /* NULL: this machine's hostname */
	int heartbeat_interval_ms; /* default 15000; 0 also means the default */
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

/* Counters since vgsink_open, and gauges (now). Every row the sink is
 * responsible for is in exactly one place, and one vgsink_stats_get sees
 * them all at one instant:
 *
 *     recorded = sent + dropped + rejected + queued + spooled_rows
 *
 * A row is counted dropped once, and only when it is gone for good: a row
 * that could not go to disk but is still in memory is queued, not dropped. */
typedef struct vgsink_stats {
	uint64_t recorded;   /* rows vgsink_record took, plus adopted */
	uint64_t sent;	     /* rows the collector confirmed stored: accepted now, or
			      * duplicates of a row it stored before */
	uint64_t duplicates; /* of sent, those it already had */
	uint64_t rejected;   /* rows refused for good (a 4xx, or a per-row reject in a
			      * 200); with a spool, kept in SPOOL/rejected/ */
	uint64_t retries;    /* failed attempts that will be retried */
	uint64_t spooled;    /* rows written to spool files (a counter) */
	uint64_t dropped;    /* rows lost: the memory bound, or close without room */
	uint64_t queued;     /* rows in memory with no spool file: in the queue, in a
			      * batch being formed, waiting, or in flight */
	/* Additions. */
	uint64_t spooled_rows;	     /* rows in pending spool files, not answered yet (a
				      * batch in flight that came from a file counts
				      * here, not in queued) */
	uint64_t spool_bytes;	     /* bytes those pending files hold */
	uint64_t adopted;	     /* rows in spool files found at vgsink_open (left by
				      * an earlier process); part of recorded */
	uint64_t rejected_bytes;     /* bytes in SPOOL/rejected/ */
	uint64_t rejected_discarded; /* rows whose SPOOL/rejected/ file was removed to
				      * keep the spool under spool_max_bytes (already
				      * counted in rejected) */
	uint64_t invalid;	     /* calls vgsink_record refused for a bad row (never
				      * recorded, so not part of recorded) */
} vgsink_stats;

/* Defaults, then VOICEGW_COLLECTOR_URL / VOICEGW_API_KEY from the environment.
 * Writes only the first cfg_size bytes. */
VGSINK_EXPORT void vgsink_config_init_sized(vgsink_config *cfg, size_t cfg_size);
#define vgsink_config_init(cfg) vgsink_config_init_sized((cfg), sizeof(*(cfg)))
/* Starts the sender thread. NULL with a message in err on a bad config, an
 * unusable spool dir (or one locked by another process), a TLS setup error,
 * or a config of a size this library cannot read (see ABI above). */
VGSINK_EXPORT vgsink *vgsink_open_sized(const vgsink_config *cfg, size_t cfg_size, char *err,
					size_t errlen);
#define vgsink_open(cfg, err, errlen) vgsink_open_sized((cfg), sizeof(*(cfg)), (err), (errlen))

/* vgsink_record: validates (the collector's rules), copies, stamps id and
 * timestamp when missing, enqueues. Never waits: not for the network, the
 * disk or room in the queue. When the rows in memory pass queue_max_rows
 * (and the spool, if any, cannot take them), the OLDEST queued rows are
 * dropped and counted in vgsink_stats.dropped: this is the call for a hot
 * path that must never stall. 0, or -1 with vgsink_errstr(s) (a bad row, a
 * row of a size this library cannot read, or a forked process). */
#define vgsink_record(s, row) vgsink_record_sized((s), (row), sizeof(*(row)), 0)
/* vgsink_try_record: like vgsink_record, but never drops. When the row would
 * push the queue past its bound (and the spool, if any, has no room for it),
 * nothing is taken and it returns VGSINK_FULL: record it again once there is
 * room (vgsink_wait_room), or give up on it. It never waits either, but takes
 * the sink's central lock on every call, so many threads recording at once
 * contend more than with vgsink_record. 0, VGSINK_FULL, or -1 as above. */
#define vgsink_try_record(s, row)                                                                  \
	vgsink_record_sized((s), (row), sizeof(*(row)), VGSINK_RECORD_NO_DROP)
/* flags for vgsink_record_sized */
#define VGSINK_RECORD_NO_DROP 1u /* answer VGSINK_FULL rather than drop a row */
/* vgsink_try_record's answer when taking the row would drop one. */
#define VGSINK_FULL 1
VGSINK_EXPORT int vgsink_record_sized(vgsink *s, const vgsink_row *row, size_t row_size,
				      unsigned flags);
/* WAITS (blocks the calling thread) until the queue has room for a row
 * without dropping one, or until timeout_ms passes; returns at once when
 * there is room. Room appears as the collector answers batches (or as the
 * spool takes them). The room is not reserved: another thread may take it
 * first, so call vgsink_try_record again and wait again on VGSINK_FULL. Never
 * call it on a thread that must not stall (an event loop: run it on a helper
 * thread, as the Python package does). 0 when there is room, -1 at the
 * timeout or in a forked process (vgsink_errstr says which). */
VGSINK_EXPORT int vgsink_wait_room(vgsink *s, int timeout_ms);
/* 0 once every row recorded before the call, and every batch found in the
 * spool when the sink opened, was answered by the collector (accepted,
 * duplicate or rejected); -1 when timeout_ms passes first (rows stay queued or
 * spooled). The sink stays open. */
VGSINK_EXPORT int vgsink_flush(vgsink *s, int timeout_ms);
/* Flushes for up to timeout_ms, stops the thread and frees the sink. Rows not
 * answered by then go to the spool when there is one (else they are counted
 * as dropped). 0 when nothing was left unsent, -1 otherwise. */
VGSINK_EXPORT int vgsink_close(vgsink *s, int timeout_ms);
/* Fills out (its first out_size bytes) with one consistent snapshot (see
 * vgsink_stats). Takes the sink's locks briefly; never waits for the network
 * or the disk. */
VGSINK_EXPORT void vgsink_stats_get_sized(vgsink *s, vgsink_stats *out, size_t out_size);
#define vgsink_stats_get(s, out) vgsink_stats_get_sized((s), (out), sizeof(*(out)))
/* Says what the worker is doing, for the next heartbeat: status "idle" or
 * "busy" (NULL: not said) and how many sessions it has (>= 0). O(1) and never
 * blocks: it stores one atomic word, which the sender thread reads when it
 * beats; call it as often as the worker's state changes, from any thread.
 * Until it is first called the beat says neither. 0, or -1 with
 * vgsink_errstr (a bad status or count, or a forked process). */
VGSINK_EXPORT int vgsink_set_presence(vgsink *s, const char *status, int active_sessions);
/* The message of the calling thread's last failed call into the library
 * (whatever the sink; s may be NULL). It is kept per thread, not per sink,
 * so threads recording into one sink never see each other's messages and
 * need no lock to read their own. This thread's next failed call
 * overwrites it. */
VGSINK_EXPORT const char *vgsink_errstr(vgsink *s);

/* The first header's (0.1.0) entry points, for programs built against it:
 * each is its *_sized call with that header's struct sizes. Parenthesised so
 * the macros above leave the names alone. */
VGSINK_EXPORT void(vgsink_config_init)(vgsink_config *cfg);
VGSINK_EXPORT vgsink *(vgsink_open)(const vgsink_config *cfg, char *err, size_t errlen);
VGSINK_EXPORT int(vgsink_record)(vgsink *s, const vgsink_row *row);
VGSINK_EXPORT void(vgsink_stats_get)(vgsink *s, vgsink_stats *out);

#ifdef __cplusplus
}
#endif

#endif
