/* Reads on a hot standby: the read pool on read_db and the thread that tracks
 * the standby's lag. The HTTP front asks replica_choose for a pool; it hands
 * back the standby's while it is up and within read_max_lag_s, else the
 * primary's (a fallback, counted). A read whose standby connection fails is
 * retried on the primary, and the standby counts as down until the tracker
 * reconnects. A read the standby fails because it lacks a relation, function
 * or column (a migration not replayed yet) is retried on the primary too,
 * counted, and the standby stays in use. State is owned by replica.c: the
 * tracker thread writes it, the loop reads it through atomics. */
#ifndef VGC_REPLICA_H
#define VGC_REPLICA_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct pool;
struct buf;

enum replica_state {
	REPLICA_OFF = 0, /* no read_db: every read goes to the primary */
	REPLICA_UNKNOWN, /* not probed yet */
	REPLICA_OK,	 /* up and at most read_max_lag_s behind */
	REPLICA_LAGGING, /* up, further behind than read_max_lag_s */
	REPLICA_DOWN	 /* unreachable, or not answering the probe */
};

/* The request header a client sends to read its own latest writes: with the
 * value "primary", a read endpoint reads the primary whatever the standby's
 * state. The answer says where every read went in REPLICA_SOURCE_HEADER. */
#define REPLICA_CONSISTENCY_HEADER "X-Vgc-Consistency"
#define REPLICA_SOURCE_HEADER "X-Vgc-Read-Source"

/* read_conninfo empty: a tracker in REPLICA_OFF with no pool or thread.
 * primary_conninfo is where the probe reads pg_current_wal_lsn() (db_direct
 * or db). Pool sizing follows the primary pool's. A read whose standby
 * connection fails runs again on primary (when not NULL) and marks the
 * standby down until the tracker reconnects to it; a read whose statement
 * the standby fails for lack of schema (undefined table, function or
 * column) runs again on primary once. Owns what it allocates;
 * free with replica_free, before primary. NULL with err when a thread cannot
 * start. */
struct replica *replica_new(struct event_base *base, const char *read_conninfo,
			    const char *primary_conninfo, struct pool *primary, int pool_size,
			    int queue_max, int connect_timeout_s, int max_lag_s, char *err,
			    size_t errlen);
void replica_free(struct replica *r);
void replica_set_max_lag(struct replica *r, int max_lag_s);
void replica_set_queue_max(struct replica *r, int queue_max);

/* Where one read runs, and why. */
struct replica_choice {
	struct pool *pool;	  /* the standby's, or primary */
	bool on_replica;	  /* pool is the standby's */
	enum replica_state state; /* the standby's state when the choice was made */
};

/* Loop thread: the pool a read-only request runs on: the standby's while it is
 * REPLICA_OK, unless primary_asked (the client's REPLICA_CONSISTENCY_HEADER),
 * else primary. Counts the choice; the caller tells the client (the HTTP
 * front sets REPLICA_SOURCE_HEADER). */
struct replica_choice replica_choose(struct replica *r, struct pool *primary, bool primary_asked);

enum replica_state replica_state(const struct replica *r);
const char *replica_state_name(enum replica_state s);
/* Seconds the standby's data is behind the primary's; negative when unknown. */
double replica_lag_s(const struct replica *r);
/* True when every read job of the pool has finished (drain). */
bool replica_idle(const struct replica *r);

/* Appends the replica's JSON object ({"state":..,"lag_s":..,"max_lag_s":..}). */
void replica_status_json(const struct replica *r, struct buf *out);
/* Appends the vgcollector_replica_* metrics in Prometheus text format. */
void replica_metrics_render(const struct replica *r, struct buf *out);

#endif
