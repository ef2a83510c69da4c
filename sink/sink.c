/* libvgsink's public API: config, open/close, the recording hot path (validate
 * and measure once, stamp id and time, pack into the thread's chunk, append to
 * the thread's queue shard), flush, stats and fork detection. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>

#include "clock.h"
#include "jsoncheck.h"
#include "sink_int.h"

#define FORKED_MSG "process forked after vgsink_open; open a new sink in the child"

static _Thread_local char sink_errbuf[SINK_ERR_MAX];
static _Atomic unsigned sink_fork_gen; /* bumped in every child */
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;

/* Per-thread random bytes for UUIDs, refilled from OpenSSL's CSPRNG. Thrown
 * away in a forked child so parent and child never share ids. 4 KiB: a refill
 * (a few µs) comes once in 256 rows, out of the p99. */
static _Thread_local struct {
	unsigned char bytes[4096];
	unsigned used;
	unsigned gen;
	bool filled;
} sink_rand;

static void sink_atfork_child(void)
{
	atomic_fetch_add(&sink_fork_gen, 1);
}

static void sink_init_once(void)
{
	pthread_atfork(NULL, NULL, sink_atfork_child);
}

int sink_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sink_errbuf, sizeof(sink_errbuf), fmt, ap);
	va_end(ap);
	return -1;
}

void sink_log(struct vgsink *s, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	bool note = level <= VGSINK_LOG_WARN && s->heartbeat; /* the beat's last_error */

	if (!s->cfg.log && !note)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (note)
		sink_heartbeat_note_error(s, msg);
	if (s->cfg.log)
		s->cfg.log(level, msg, s->cfg.log_arg);
}

bool sink_forked(const struct vgsink *s)
{
	return atomic_load_explicit(&sink_fork_gen, memory_order_relaxed) != s->fork_gen;
}

/* ---- sizes: the ABI rule of vgsink.h ------------------------------------------- */

/* The first header's (0.1.0) structs end with these fields: the plain entry
 * points read and write exactly that much. Frozen: never change them. */
#define SINK_CONFIG_V0 (offsetof(vgsink_config, heartbeat_interval_ms) + sizeof(int))
#define SINK_ROW_V0 (offsetof(vgsink_row, turn_index) + sizeof(int))
#define SINK_STATS_V0 (offsetof(vgsink_stats, invalid) + sizeof(uint64_t))
/* Where today's vgsink_config's last field ends: a newer header's field may
 * sit in the padding after it, so the check below starts here, not at
 * sizeof. Move it with every field added. (vgsink_config_init zeroes the
 * padding; rows have no init call, so for them the check starts at sizeof,
 * and a field added to vgsink_row must start a new 8-byte word.) */
#define SINK_CONFIG_END (offsetof(vgsink_config, heartbeat_interval_ms) + sizeof(int))

/* A caller's struct of size bytes, where ours has its fields up to byte
 * known: true when we can read it (it is no smaller than the first header's,
 * and any bytes past known are zero), else a message naming what. */
static bool sink_size_ok(const char *what, const void *p, size_t size, size_t v0, size_t known,
			 char *err, size_t errlen)
{
	if (size < v0) {
		snprintf(err, errlen,
			 "%s of %zu bytes: smaller than any vgsink.h made (%zu); the program "
			 "passed a wrong size",
			 what, size, v0);
		return false;
	}
	for (size_t i = known; i < size; i++)
		if (((const unsigned char *)p)[i]) {
			snprintf(err, errlen,
				 "%s of %zu bytes sets a field past byte %zu, which this libvgsink "
				 "(%s) does not know: install the libvgsink the program was "
				 "built against, or a newer one",
				 what, size, known, VGSINK_VERSION);
			return false;
		}
	return true;
}

static void sink_config_defaults(vgsink_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->batch_rows = 500;
	cfg->batch_bytes = 1 << 20;
	cfg->flush_interval_ms = 1000;
	cfg->queue_max_rows = 100000;
	cfg->spool_max_bytes = (size_t)1 << 30;
	cfg->request_timeout_ms = 10000;
	cfg->retry_initial_ms = 200;
	cfg->retry_max_ms = 30000;
	cfg->queue_shards = 16;
	cfg->heartbeat_interval_ms = 15000;
	cfg->url = getenv("VOICEGW_COLLECTOR_URL");
	cfg->api_key = getenv("VOICEGW_API_KEY");
}

void vgsink_config_init_sized(vgsink_config *cfg, size_t cfg_size)
{
	vgsink_config full;

	sink_config_defaults(&full);
	if (cfg_size > sizeof(full)) {
		memset((char *)cfg + sizeof(full), 0, cfg_size - sizeof(full));
		cfg_size = sizeof(full);
	}
	memcpy(cfg, &full, cfg_size);
}

void(vgsink_config_init)(vgsink_config *cfg)
{
	vgsink_config_init_sized(cfg, SINK_CONFIG_V0);
}

/* A random (version 4) UUID's 16 bytes. The text form is made only when the
 * row is sent (sink_item_row), off the recording thread. */
static bool sink_uuid(unsigned char out[16])
{
	unsigned gen = atomic_load_explicit(&sink_fork_gen, memory_order_relaxed);
	unsigned char *u;

	if (!sink_rand.filled || sink_rand.gen != gen ||
	    sink_rand.used + 16 > sizeof(sink_rand.bytes)) {
		if (RAND_bytes(sink_rand.bytes, sizeof(sink_rand.bytes)) != 1)
			return false;
		sink_rand.used = 0;
		sink_rand.gen = gen;
		sink_rand.filled = true;
	}
	u = sink_rand.bytes + sink_rand.used;
	sink_rand.used += 16;
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	memcpy(out, u, 16);
	return true;
}

/* ---- open / close ------------------------------------------------------------ */

static char *sink_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static bool sink_parse_url(struct vgsink *s, char *err, size_t errlen)
{
	struct evhttp_uri *uri = evhttp_uri_parse(s->url);
	const char *scheme, *host, *path;
	size_t plen;

	if (!uri) {
		snprintf(err, errlen, "url \"%.200s\": not a valid URL", s->url);
		return false;
	}
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	path = evhttp_uri_get_path(uri);
	if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) || !host ||
	    !host[0]) {
		snprintf(err, errlen, "url \"%.200s\": must be http://HOST[:PORT] or https://...",
			 s->url);
		evhttp_uri_free(uri);
		return false;
	}
	s->https = strcmp(scheme, "https") == 0;
	s->port = evhttp_uri_get_port(uri);
	if (s->port < 0)
		s->port = s->https ? 443 : 80;
	s->host = strdup(host);
	plen = path ? strlen(path) : 0;
	while (plen > 0 && path[plen - 1] == '/')
		plen--;
	s->path = malloc(plen + sizeof("/v1/ingest"));
	s->host_header = malloc(strlen(host) + 16);
	if (s->path) {
		memcpy(s->path, path ? path : "", plen);
		memcpy(s->path + plen, "/v1/ingest", sizeof("/v1/ingest"));
	}
	if (s->host_header)
		snprintf(s->host_header, strlen(host) + 16, "%s:%d", host, s->port);
	evhttp_uri_free(uri);
	if (!s->host || !s->path || !s->host_header) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	return true;
}

static bool sink_tls_init(struct vgsink *s, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		snprintf(err, errlen, "TLS: cannot create a context");
		return false;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		/* No system CA store is not fatal when ca_file is given. */
		if (!s->ca_file) {
			SSL_CTX_free(ctx);
			snprintf(err, errlen, "TLS: cannot load the system CA certificates");
			return false;
		}
	}
	if (s->ca_file && SSL_CTX_load_verify_locations(ctx, s->ca_file, NULL) != 1) {
		SSL_CTX_free(ctx);
		snprintf(err, errlen, "TLS: ca_file %s: not a readable PEM CA bundle", s->ca_file);
		return false;
	}
	s->ssl_ctx = (struct ssl_ctx_st *)ctx;
	return true;
}

static void sink_free(struct vgsink *s)
{
	sink_heartbeat_close(s);
	sink_queue_free(s);
	while (s->ready) {
		struct sink_batch *next = s->ready->next;
		sink_batch_free(s->ready);
		s->ready = next;
	}
	spool_close(s->spool);
	if (s->ssl_ctx)
		SSL_CTX_free((SSL_CTX *)s->ssl_ctx);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->fork_cond);
	free(s->url);
	free(s->api_key);
	free(s->spool_dir);
	free(s->ca_file);
	free(s->host);
	free(s->path);
	free(s->host_header);
	free(s);
}

vgsink *vgsink_open_sized(const vgsink_config *caller, size_t cfg_size, char *err, size_t errlen)
{
	struct vgsink *s;
	pthread_condattr_t ca;
	vgsink_config full, *cfg = &full;

	pthread_once(&sink_once, sink_init_once);
	if (!caller) {
		snprintf(err, errlen, "vgsink_open: NULL config");
		return NULL;
	}
	if (!sink_size_ok("vgsink_config", caller, cfg_size, SINK_CONFIG_V0, SINK_CONFIG_END, err,
			  errlen))
		return NULL;
	/* Fields past the caller's struct keep their defaults. */
	sink_config_defaults(&full);
	memcpy(&full, caller, cfg_size < sizeof(full) ? cfg_size : sizeof(full));
	if (!cfg->url || !cfg->url[0]) {
		snprintf(err, errlen, "url is required (or set VOICEGW_COLLECTOR_URL)");
		return NULL;
	}
	if (!cfg->api_key || !cfg->api_key[0]) {
		snprintf(err, errlen, "api_key is required (or set VOICEGW_API_KEY)");
		return NULL;
	}
	if (cfg->batch_rows < 1 || cfg->batch_bytes < 1024 || cfg->flush_interval_ms < 1 ||
	    cfg->queue_max_rows < (size_t)cfg->batch_rows || cfg->request_timeout_ms < 1 ||
	    cfg->retry_initial_ms < 1 || cfg->retry_max_ms < cfg->retry_initial_ms ||
	    (cfg->spool_dir && cfg->spool_max_bytes < 4096) || cfg->queue_shards < 1 ||
	    cfg->queue_shards > 256) {
		snprintf(
			err, errlen,
			"bad config: need batch_rows >= 1, batch_bytes >= 1024, flush_interval_ms >= 1, "
			"queue_max_rows >= batch_rows, request_timeout_ms >= 1, "
			"1 <= retry_initial_ms <= retry_max_ms, spool_max_bytes >= 4096, "
			"1 <= queue_shards <= 256");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	s->url = sink_strdup(cfg->url);
	s->api_key = sink_strdup(cfg->api_key);
	s->spool_dir = sink_strdup(cfg->spool_dir);
	s->ca_file = sink_strdup(cfg->ca_file);
	s->cfg.url = s->url;
	s->cfg.api_key = s->api_key;
	s->cfg.spool_dir = s->spool_dir;
	s->cfg.ca_file = s->ca_file;
	row_limits_default(&s->limits);
	s->fork_gen = atomic_load(&sink_fork_gen);
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->fork_cond, NULL);
	if (!s->url || !s->api_key || (cfg->spool_dir && !s->spool_dir) ||
	    (cfg->ca_file && !s->ca_file) || !sink_queue_init(s)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!sink_parse_url(s, err, errlen) || (s->https && !sink_tls_init(s, err, errlen)) ||
	    !sink_heartbeat_open(s, err, errlen))
		goto fail;
	if (s->spool_dir) {
		struct spool_gauges g;

		s->spool = spool_open(s->spool_dir, cfg->spool_max_bytes, err, errlen);
		if (!s->spool)
			goto fail;
		spool_gauges_get(s->spool, &g);
		if (g.rej_discarded)
			sink_log(s, VGSINK_LOG_WARN,
				 "vgsink: removed the files of %llu rejected rows from "
				 "SPOOL/rejected/ to stay under spool_max_bytes (%zu bytes)",
				 (unsigned long long)g.rej_discarded, cfg->spool_max_bytes);
	}
	if (!sink_sender_start(s, err, errlen))
		goto fail;
	sink_fork_register(s);
	return s;
fail:
	sink_free(s);
	return NULL;
}

vgsink *(vgsink_open)(const vgsink_config *cfg, char *err, size_t errlen)
{
	return vgsink_open_sized(cfg, SINK_CONFIG_V0, err, errlen);
}

int vgsink_close(vgsink *s, int timeout_ms)
{
	int rc;

	if (!s)
		return sink_fail("vgsink_close: NULL sink");
	if (sink_forked(s))
		return sink_fail(FORKED_MSG);
	rc = vgsink_flush(s, timeout_ms);
	sink_fork_unregister(s); /* before the sender stops: a fork would wait for it */
	sink_sender_stop(s);
	sink_free(s);
	return rc;
}

/* timeout_ms from now on CLOCK_MONOTONIC (s->cond's clock). */
static void sink_deadline(struct timespec *t, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += timeout_ms / 1000;
	t->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

/* ---- recording --------------------------------------------------------------- */

/* vgsink_row -> struct row in one pass over the field table, each field
 * checked by the collector's rule (row.c) as it goes, then the sink's own
 * defaults: a generated id (uuid, with SINK_UUID_PLACEHOLDER in r->id) and
 * now for a zero timestamp. len gets each string's length. */
static int sink_row_convert(struct vgsink *s, const vgsink_row *in, struct row *r,
			    unsigned char uuid[16], size_t len[ROW_NSTRINGS])
{
	char err[SINK_ERR_MAX];
	double now = clock_epoch();
	int n = 0;

	row_init(r);
	for (int i = 0; i < ROW_NFIELDS; i++) {
		const struct row_field *f = &row_fields[i];
		const void *from;
		void *to;
		const char *v;
		bool nul = false;
		double d;

		if (f->kind == ROW_KIND_BOOK)
			continue; /* the collector sets it, not the worker */
		from = ROW_FIELD_CPTR(in, sink_row_fields[i].offset);
		to = ROW_FIELD_PTR(r, f->offset);
		switch (f->kind) {
		case ROW_KIND_BOOK: break;
		case ROW_KIND_MODALITY:
			v = *(const char *const *)from;
			if (!v || !row_modality_parse(v, to))
				return sink_fail(
					"%s \"%.32s\": must be \"stt\", \"llm\" or \"tts\"",
					f->name, v ? v : "(null)");
			break;
		case ROW_KIND_STATUS:
			v = *(const char *const *)from;
			if (v && !row_status_parse(v, to))
				return sink_fail("%s \"%.32s\": must be \"success\", \"error\" or "
						 "\"fallback\"",
						 f->name, v);
			break;
		case ROW_KIND_TEXT:
		case ROW_KIND_JSON:
			v = *(const char *const *)from;
			if (!v && f->cap == ROW_CAP_ID) {
				if (!sink_uuid(uuid))
					return sink_fail("cannot generate a row id: OpenSSL's "
							 "RAND_bytes failed");
				v = SINK_UUID_PLACEHOLDER;
				len[n] = sizeof(SINK_UUID_PLACEHOLDER) - 1;
			} else if (!v) {
				v = f->absent;
				len[n] = 0;
				if (v && !row_check_string_field(f, v, &len[n], &s->limits, err,
								 sizeof(err)))
					return sink_fail("%s", err);
			} else if (!row_check_string_field(f, v, &len[n], &s->limits, err,
							   sizeof(err))) {
				return sink_fail("%s", err);
			}
			*(const char **)to = v;
			n++;
			if (f->kind == ROW_KIND_JSON && v) {
				if (!jsoncheck_object(v, len[n - 1], &nul))
					return sink_fail("metadata_json: must be a JSON object");
				if (nul)
					return sink_fail(
						"metadata_json: a string holds \\u0000 (NUL), "
						"which PostgreSQL cannot store");
			}
			break;
		case ROW_KIND_TIME:
			d = *(const double *)from;
			if (d == 0)
				d = now;
			if (!row_check_number_field(f, d, &s->limits, now, err, sizeof(err)))
				return sink_fail("%s", err);
			*(double *)to = d;
			break;
		case ROW_KIND_AMOUNT:
		case ROW_KIND_MEASURE:
			d = *(const double *)from;
			/* A finite d >= 0 passes either rule; only others need asking. */
			if (!(d >= 0 && d <= DBL_MAX) &&
			    !row_check_number_field(f, d, &s->limits, now, err, sizeof(err)))
				return sink_fail("%s", err);
			*(double *)to = d;
			break;
		case ROW_KIND_COUNT: {
			int t = *(const int *)from;
			*(long long *)to = t < 0 ? -1 : t;
			break;
		}
		}
	}
	return 0;
}

/* vgsink_record and vgsink_try_record: 0 taken, VGSINK_FULL (no_drop only:
 * taking it would drop a row, and nothing was taken), or -1. */
static int sink_record(vgsink *s, const vgsink_row *in, bool no_drop)
{
	struct sink_item *it;
	size_t len[ROW_NSTRINGS];
	struct row r;
	unsigned char uuid[16];
	bool wake;

	if (!s || !in)
		return sink_fail("vgsink_record: NULL argument");
	if (sink_forked(s))
		return sink_fail(FORKED_MSG);
	if (sink_row_convert(s, in, &r, uuid, len) != 0) {
		atomic_fetch_add_explicit(&s->invalid, 1, memory_order_relaxed);
		return -1;
	}
	it = sink_item_pack(&r, len, in->id ? NULL : uuid);
	if (!it)
		return sink_fail("out of memory");
	if (!no_drop) {
		wake = sink_queue_push(s, it);
	} else if (!sink_queue_push_if_room(s, it, &wake)) {
		sink_item_free(it);
		if (wake)
			sink_sender_wake(s);
		return VGSINK_FULL;
	}
	if (wake)
		sink_sender_wake(s);
	return 0;
}

int vgsink_record_sized(vgsink *s, const vgsink_row *in, size_t row_size, unsigned flags)
{
	char err[SINK_ERR_MAX];
	vgsink_row full;

	if (row_size == sizeof(full) || !in) /* the caller's header is ours */
		return sink_record(s, in, flags & VGSINK_RECORD_NO_DROP);
	if (!sink_size_ok("vgsink_row", in, row_size, SINK_ROW_V0, sizeof(full), err, sizeof(err)))
		return sink_fail("%s", err);
	/* An older caller's row: the fields it lacks are absent (0 or NULL). */
	memset(&full, 0, sizeof(full));
	memcpy(&full, in, row_size < sizeof(full) ? row_size : sizeof(full));
	return sink_record(s, &full, flags & VGSINK_RECORD_NO_DROP);
}

int(vgsink_record)(vgsink *s, const vgsink_row *row)
{
	return vgsink_record_sized(s, row, SINK_ROW_V0, 0);
}

/* What vgsink_wait_room makes room for: a typical row's JSON is a few hundred
 * bytes, so a spool with this much room left takes the next one. */
#define SINK_ROOM_ROW_BYTES 4096

int vgsink_wait_room(vgsink *s, int timeout_ms)
{
	struct timespec deadline;

	if (!s)
		return sink_fail("vgsink_wait_room: NULL sink");
	if (sink_forked(s))
		return sink_fail(FORKED_MSG);
	sink_deadline(&deadline, timeout_ms);
	if (!sink_queue_room_wait(s, SINK_ROOM_ROW_BYTES, &deadline))
		return sink_fail("vgsink_wait_room: no room after %d ms (the collector is slow or "
				 "down, and %s)",
				 timeout_ms, s->spool ? "the spool is full" : "there is no spool");
	return 0;
}

/* ---- flush, stats -------------------------------------------------------------- */

/* Every row recorded before target was taken, and answered, by the sender. */
static bool sink_flushed_locked(struct vgsink *s, uint64_t target)
{
	return sink_queue_clear_below_locked(s, target) && sink_sender_answered_locked(s, target);
}

int vgsink_flush(vgsink *s, int timeout_ms)
{
	struct timespec deadline;
	uint64_t target;
	int rc = 0;

	if (!s)
		return sink_fail("vgsink_flush: NULL sink");
	if (sink_forked(s))
		return sink_fail(FORKED_MSG);
	sink_deadline(&deadline, timeout_ms);
	pthread_mutex_lock(&s->lock);
	target = sink_queue_mark_locked(s);
	s->flushers++;
	pthread_mutex_unlock(&s->lock);
	sink_sender_wake(s);
	pthread_mutex_lock(&s->lock);
	while (!sink_flushed_locked(s, target)) {
		if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) == ETIMEDOUT) {
			if (!sink_flushed_locked(s, target))
				rc = sink_fail(
					"vgsink_flush: timed out after %d ms with rows unsent "
					"(%zu queued in memory)",
					timeout_ms, sink_queue_in_memory_locked(s));
			break;
		}
	}
	s->flushers--;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void vgsink_stats_get_sized(vgsink *s, vgsink_stats *out, size_t out_size)
{
	vgsink_stats st;

	memset(&st, 0, sizeof(st));
	if (s && !sink_forked(s)) {
		pthread_mutex_lock(&s->lock);
		st = s->stats;
		sink_queue_count_locked(s, &st.recorded, &st.queued);
		st.invalid = atomic_load_explicit(&s->invalid, memory_order_relaxed);
		pthread_mutex_unlock(&s->lock);
	}
	if (out_size > sizeof(st)) {
		memset((char *)out + sizeof(st), 0, out_size - sizeof(st));
		out_size = sizeof(st);
	}
	memcpy(out, &st, out_size);
}

void(vgsink_stats_get)(vgsink *s, vgsink_stats *out)
{
	vgsink_stats_get_sized(s, out, SINK_STATS_V0);
}

const char *vgsink_errstr(vgsink *s)
{
	(void)s;
	return sink_errbuf;
}
