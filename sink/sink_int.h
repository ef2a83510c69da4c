/* libvgsink internals shared by its files: the sink object, the row queue
 * (recording threads -> sender thread), batches and the spool. */
#ifndef VGSINK_INT_H
#define VGSINK_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "row.h"
#include "row_fields.h"
#include "vgsink.h"

struct event_base;
struct event;
struct evhttp_connection;
struct ssl_ctx_st;

#define SINK_ERR_MAX 512

/* One recorded row, packed (sink_items.c): numbers as they came, strings as
 * 16-bit offsets into its chunk, where a string equal to one an earlier item
 * of the same chunk holds is not copied again (the chunk outlives both), and
 * a generated (or canonical lowercase) UUID id as its 16 bytes. About 150
 * bytes for a typical fleet row, from 376 as a struct row plus its strings.
 * sink_item_row unpacks it for the batch encoder. */
struct sink_item {
	struct sink_item *next;
	struct sink_chunk *chunk; /* NULL: a malloc of its own (strings inline) */
	uint64_t seq;		  /* recording order, from 1 */
	uint32_t json_bytes;	  /* about how much JSON it makes, for batch_bytes */
	int32_t turn_index;	  /* < 0: null */
	double num[8];		  /* timestamp, input, output, cached_input units, cost_usd,
				   * rated_price_usd, ttfb_ms, total_latency_ms (NaN: null) */
	uint8_t modality, status, flags, unused;
	uint16_t str[ROW_NSTRINGS]; /* offset of each string (row_string_fields order)
				     * from its chunk's data; SINK_ITEM_NONE: NULL */
	char strings[];		    /* this item's own strings (and UUID) */
};
#define SINK_ITEM_NONE 0xffff

/* A batch: fixed once formed (its gzip body is what every retry resends). */
struct sink_batch {
	struct sink_batch *next;
	struct buf body; /* gzip of the JSON array */
	int nrows;
	uint64_t min_seq;  /* smallest row seq inside; UINT64_MAX for a spool file of
			    * another process */
	uint64_t file_seq; /* its spool file, 0: memory only */
	int attempts;
};

/* One file in SPOOL/ waiting to be sent. */
struct spool_entry {
	uint64_t seq;
	int nrows;
	size_t size;
	uint64_t min_seq; /* rows' seq when this process wrote it, else UINT64_MAX */
};

/* Owned by sink_spool.c, used by the sender thread only (no lock). Other
 * files read it through the spool_* accessors below; only the spool's own
 * unit tests look inside. */
struct spool {
	char *dir;
	int lock_fd;
	struct spool_entry *v; /* pending, oldest first */
	int n, cap;
	size_t bytes;		 /* of the pending files */
	uint64_t rows;		 /* in the pending files */
	struct spool_entry *rej; /* rejected/, oldest (lowest seq) first */
	int rej_n, rej_cap;
	size_t rej_bytes;
	uint64_t rej_discarded; /* rows of rejected files removed (or never kept)
				 * to stay under max_bytes; a counter */
	size_t max_bytes;	/* bytes + rej_bytes stay under it; only rejected
				 * files are ever removed to make room */
	uint64_t next_seq;
	uint64_t initial_mark; /* files with seq <= this were there at open */
};

/* A queue shard: recording threads append here under its own lock. */
struct sink_shard {
	_Alignas(64) pthread_mutex_t lock;
	struct sink_item *head, *tail;
	size_t n;
	uint64_t recorded;
};

/* The sink. Each field has one owner file: only that file writes it, and
 * other files reach it through the owner's functions. "lock" means the field
 * is read and written under s->lock only. The lock order is s->lock, then a
 * shard's lock. */
struct vgsink {
	/* sink.c, set in vgsink_open and read-only after it (any thread). */
	vgsink_config cfg; /* strings below are our copies */
	char *url, *api_key, *spool_dir, *ca_file;
	char *host, *path, *host_header;
	int port;
	bool https;
	struct ssl_ctx_st *ssl_ctx;
	struct row_limits limits;
	unsigned fork_gen; /* fork generation of the process that opened it */

	/* sink.c (vgsink_record), any thread, no lock. */
	atomic_uint_fast64_t invalid; /* rows refused as bad (stats.invalid) */

	/* sink_queue.c: set in sink_queue_init, then read-mostly by recording
	 * threads without s->lock. */
	struct sink_shard *shards; /* shard_mask + 1 of them, each under its own lock */
	unsigned shard_mask;
	size_t handoff_rows; /* a shard passes its rows on at this many */
	size_t central_max;  /* queue_max_rows less what the shards may hold:
			      * below it the bound needs no count of them */
	atomic_bool tight;   /* central queue past central_max: every row goes
			      * straight through. Written under `lock`, read
			      * without it; it sits with these read-mostly fields
			      * so recording threads share its line cheaply. */

	pthread_mutex_t lock; /* guards every field below down to `fork_cond` */

	/* sink_queue.c, under lock: the central queue and the memory bound.
	 * Others use sink_queue_take/length/... (below). */
	struct sink_item *head, *tail; /* the central queue, in seq order */
	size_t queued;		       /* rows in the central queue */
	size_t held;		       /* rows the sender took and keeps in memory with no
					* spool file: being formed, in `ready`, in flight.
					* Part of the memory bound and of stats.queued.
					* Changed by the sender through sink_queue_hold_locked. */
	size_t queued_bytes;	       /* their json_bytes, summed */
	uint64_t next_seq;	       /* seq of the next row to reach the central queue */

	/* sink_sender.c, under lock: what the sender has not answered yet, which
	 * vgsink_flush asks about through sink_sender_answered_locked. */
	uint64_t sender_floor; /* smallest unanswered row seq the sender holds */
	int initial_left;      /* spool files found at open, not answered yet */
	bool interval_due;     /* the flush interval passed: send a partial batch */
	bool stopping;	       /* sink_sender_stop began */
	size_t spool_room;     /* bytes the spool can still take; 0 with no spool or
				* while its writes find no room or fail. The queue
				* keeps rows past its bound while they fit here. */

	/* sink.c (vgsink_flush), under lock; the sender reads it. */
	int flushers; /* threads waiting in vgsink_flush */

	/* Under lock. The sender writes the counters and copies the spool's
	 * gauges (sender_settle), and sets adopted when it starts; sink_queue.c
	 * adds to dropped at the bound. recorded and queued are not kept here:
	 * sink_queue_count_locked computes them for vgsink_stats_get. */
	vgsink_stats stats;
	pthread_cond_t cond; /* broadcast whenever the sender answers something */

	/* sink_sender.c, under lock: parking the sender for a fork (sink_fork.c
	 * and the unit tests call sink_sender_park_*). */
	bool fork_pause, fork_paused;
	pthread_cond_t fork_cond; /* signals both of them */

	struct vgsink *fork_next; /* sink_fork.c's list, under its own lock */

	/* sink_sender.c: the sender thread's own, no lock. `thread` and
	 * `thread_started` are set before the thread runs. */
	pthread_t thread;
	struct event_base *base;
	struct event *wake, *stop_ev, *tick, *retry_timer, *fork_ev;
	struct evhttp_connection *evcon;
	struct sink_batch *ready; /* formed, waiting; the head is in flight or next.
				   * Batches with file_seq 0 are only in memory
				   * (their rows are in `held`); with a file_seq
				   * their rows count in the spool's rows. */
	bool in_flight, backing_off;
	bool spool_stuck;     /* the last spool write failed or found no room */
	bool conn_closed;     /* evhttp saw the connection close: replace it */
	int addr_next;	      /* which of the host's addresses the next connection uses */
	int addr_count;	      /* how many it had at the last lookup */
	char addr_text[64];   /* the address in use, as text */
	bool stopping_thread; /* the stop event ran: ignore late answers */
	bool thread_started;
	struct spool *spool; /* NULL: no spool dir. Opened by vgsink_open before
			      * the thread starts; the sender's from then on. */

	/* sink_heartbeat.c: NULL without agent_id. Its presence word is atomic
	 * (any thread), last_error has its own lock, the rest is the sender
	 * thread's. */
	struct sink_heartbeat *heartbeat;
};

/* sink.c */
void sink_log(struct vgsink *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets the calling thread's vgsink_errstr message; returns -1. */
int sink_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True in a child forked after s was opened. */
bool sink_forked(const struct vgsink *s);

/* sink_sender.c: the thread. */
/* What the sender does with an HTTP answer (0: no answer at all). */
enum sink_answer { SINK_ANSWER_STORED, SINK_ANSWER_RETRY, SINK_ANSWER_SPLIT, SINK_ANSWER_REJECT };
enum sink_answer sink_answer_of(int status);
/* Takes over the spool (adopting its rows) and starts the thread. */
bool sink_sender_start(struct vgsink *s, char *err, size_t errlen);
void sink_sender_wake(struct vgsink *s);
/* True when the sender holds no unanswered row with seq below target and
 * every spool file found at open was answered; call with lock held. */
bool sink_sender_answered_locked(struct vgsink *s, uint64_t target);
/* Bytes the spool can still take, as the sender last saw it; lock held. */
size_t sink_sender_spool_room_locked(const struct vgsink *s);
/* Stops the thread; what is unsent is spooled (or counted dropped). */
void sink_sender_stop(struct vgsink *s);
/* Frees the loop and its events (the thread is not running). */
void sink_sender_free(struct vgsink *s);
/* Parks the sender in a callback, holding nothing, until released: _begin
 * asks, _wait waits until it is parked, _end releases it. For fork() and for
 * unit tests that need the sender to stand still. */
void sink_sender_park_begin(struct vgsink *s);
void sink_sender_park_wait(struct vgsink *s);
void sink_sender_park_end(struct vgsink *s);

/* sink_sender.c: resolves the URL's host and writes its address number
 * *next (wrapping; *count gets how many there are) as text. Blocks the
 * sender thread for the lookup. False with err. */
bool sink_sender_pick_address(struct vgsink *s, int *next, int *count, char *out, size_t outlen,
			      char *err, size_t errlen);
/* sink_sender.c: a new connection to addr (a numeric address), plain or TLS as the URL says, with
 * the request timeout and no retries. Sender thread only. NULL when out of memory. */
struct evhttp_connection *sink_sender_conn_new(struct vgsink *s, const char *addr);

/* sink_heartbeat.c: the heartbeat (vgsink_config.agent_id). _open checks and
 * copies the config (vgsink_open); _start adds its timer to the sender's loop
 * and _stop removes it and its connection, on the sender thread or once it
 * ended; _close frees what _open made. note_error keeps a warning or error
 * the sink logged as the next beats' last_error (any thread). */
bool sink_heartbeat_open(struct vgsink *s, char *err, size_t errlen);
bool sink_heartbeat_start(struct vgsink *s);
void sink_heartbeat_stop(struct vgsink *s);
void sink_heartbeat_close(struct vgsink *s);
void sink_heartbeat_note_error(struct vgsink *s, const char *msg);

/* sink_fork.c: a fork() waits until each registered sender is parked
 * between callbacks. Register once the sender runs; unregister before it stops. */
void sink_fork_register(struct vgsink *s);
void sink_fork_unregister(struct vgsink *s);

/* sink_queue.c: shards, and the central queue behind s->lock. */
bool sink_queue_init(struct vgsink *s);
void sink_queue_free(struct vgsink *s);
/* Appends a recorded row (any thread, s->lock not held); true when the
 * sender should wake up. Takes no lock but the thread's shard's, mostly. */
bool sink_queue_push(struct vgsink *s, struct sink_item *it) __attribute__((warn_unused_result));
/* Appends a recorded row only when that drops no row (the memory bound, or
 * the spool's room): false, with nothing taken, when it would. Takes s->lock
 * on every call. *wake: the sender should wake up. */
bool sink_queue_push_if_room(struct vgsink *s, struct sink_item *it, bool *wake)
	__attribute__((warn_unused_result));
/* Waits (s->lock not held) until a row of json_bytes would fit with nothing
 * dropped, or until deadline (CLOCK_MONOTONIC); true when it fits. */
bool sink_queue_room_wait(struct vgsink *s, size_t json_bytes, const struct timespec *deadline);
/* Moves every shard's rows to the central queue; true if the sender should wake. */
bool sink_queue_collect_locked(struct vgsink *s);
/* Unlinks up to max_rows rows from the central queue's head (always one,
 * then while under max_bytes of JSON); the sender holds them now. NULL when
 * the central queue is empty; *n is how many. */
struct sink_item *sink_queue_take_locked(struct vgsink *s, int max_rows, size_t max_bytes, int *n);
/* Rows in the central queue (not the shards', not the sender's). */
size_t sink_queue_length_locked(const struct vgsink *s);
/* Rows in the central queue and held by the sender. */
size_t sink_queue_in_memory_locked(const struct vgsink *s);
/* Collects the shards and returns the seq the next row will get: every row
 * recorded before the call has a smaller one. */
uint64_t sink_queue_mark_locked(struct vgsink *s);
/* True when no row in the central queue has a seq below target. */
bool sink_queue_clear_below_locked(const struct vgsink *s, uint64_t target);
/* Past the bound's fast path (see sink_queue.c); no lock needed. */
bool sink_queue_tight(struct vgsink *s);
/* recorded (adopted included) and queued (shards, central queue and held). */
void sink_queue_count_locked(struct vgsink *s, uint64_t *recorded, uint64_t *queued);
/* The sender holds delta more (or fewer) rows in memory. */
void sink_queue_hold_locked(struct vgsink *s, int64_t delta);
/* The sender stops: every row in memory (shards, central queue, held) is
 * given up and freed, except the held rows, whose batches the sender frees.
 * Returns how many rows that is. */
uint64_t sink_queue_abandon_locked(struct vgsink *s);

/* sink_row.c: each row_fields entry's member in vgsink_row, in row_fields'
 * order (a unit test holds the names against it). */
struct sink_row_field {
	const char *name; /* row_fields[i].name */
	size_t offset;	  /* of the member in vgsink_row */
};
extern const struct sink_row_field sink_row_fields[ROW_NFIELDS];

/* sink_items.c: item memory, from any thread. Emptied chunks are kept for
 * reuse up to this many (64 KiB each) per process; the rest go back to libc. */
#define SINK_ITEMS_MAX_SPARE 64
struct sink_item *sink_item_new(size_t size);
/* A new item holding a validated row (len: its strings' lengths, in
 * row_string_fields order), from the calling thread's chunk; NULL when out
 * of memory. uuid: a generated id's 16 bytes (r->id then holds
 * SINK_UUID_PLACEHOLDER), or NULL for the caller's id in r->id. Never takes
 * a lock but when a chunk fills up. */
struct sink_item *sink_item_pack(const struct row *r, const size_t len[ROW_NSTRINGS],
				 const unsigned char *uuid);
/* What r->id holds while a generated id (given to sink_item_pack as bytes)
 * goes through the row's checks. */
#define SINK_UUID_PLACEHOLDER "00000000-0000-4000-8000-000000000000"
/* Unpacks it into r; r's strings point into the item (id into idbuf). */
void sink_item_row(const struct sink_item *it, struct row *r, char idbuf[37]);
void sink_item_free(struct sink_item *it);
/* Writes 16 bytes as a UUID's 36 characters (lower-case hex) plus NUL. */
void sink_item_uuid_format(const unsigned char u[16], char out[37]);
/* Frees a whole ->next chain. */
void sink_items_free_list(struct sink_item *it);

/* sink_batch.c */
struct sink_batch *sink_batch_from_items(struct sink_item *items, int n, char *err, size_t errlen);
/* Splits a batch's rows in two halves (for a 413); false if it has one row. */
bool sink_batch_split(const struct sink_batch *b, struct sink_batch **a, struct sink_batch **c,
		      char *err, size_t errlen);
void sink_batch_free(struct sink_batch *b);

/* sink_spool.c */
struct spool *spool_open(const char *dir, size_t max_bytes, char *err, size_t errlen);
void spool_close(struct spool *sp);
enum spool_result {
	SPOOL_WRITTEN, /* b->file_seq is set */
	SPOOL_FULL,    /* no room beside the pending files: nothing was touched */
	SPOOL_FAILED,  /* an I/O error, in err */
};
/* True when len bytes fit beside the pending files (rejected files make way). */
bool spool_fits(const struct spool *sp, size_t len);
/* Writes a batch as a new pending file (crash-consistent). Whether it fits is
 * decided first; only then do the oldest rejected files make room (counted in
 * rej_discarded). A pending file is never removed to make room. */
enum spool_result spool_write(struct spool *sp, struct sink_batch *b, char *err, size_t errlen);
/* Loads the oldest pending file (not already loaded) as a batch. NULL with
 * err on a read error: the file is forgotten, *lost_rows says how many rows. */
struct sink_batch *spool_load_oldest(struct spool *sp, int *lost_rows, char *err, size_t errlen);
/* The batch of file seq was answered: delete it, or with rejected move it to
 * rejected/. */
void spool_done(struct spool *sp, uint64_t seq, bool rejected);
/* Keeps a rejected memory batch in rejected/, removing older rejected files
 * to make room; false (rows counted in rej_discarded) when it cannot. */
bool spool_write_rejected(struct spool *sp, const struct sink_batch *b, char *err, size_t errlen);
bool spool_has(const struct spool *sp, uint64_t seq);
/* Accessors for the rest of the sink (sender thread only). */
size_t spool_max_bytes(const struct spool *sp);
bool spool_pending(const struct spool *sp); /* a pending file waits to be sent */
/* Rows and bytes in the pending files; rejected/'s bytes; rej_discarded. */
struct spool_gauges {
	uint64_t rows, bytes, rej_bytes, rej_discarded;
};
void spool_gauges_get(const struct spool *sp, struct spool_gauges *g);
/* The smallest row seq this process wrote into a pending file (UINT64_MAX:
 * none), and how many pending files were there at spool_open. */
uint64_t spool_min_seq(const struct spool *sp);
int spool_initial_left(const struct spool *sp);

#endif
