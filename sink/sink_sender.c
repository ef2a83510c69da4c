/* The sender thread: its own libevent loop forms batches (spool first, then
 * memory), POSTs them one at a time over a kept-alive connection with
 * libevent's HTTP client (TLS through bufferevent_openssl, chain and hostname
 * verified), and applies the delivery rules (sink_answer_of): retry with
 * capped exponential backoff and jitter honouring Retry-After, split on 413,
 * and give up only on the client's own faults. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sink_int.h"

#define SINK_USER_AGENT "libvgsink/" VGSINK_VERSION
#define SINK_RETRY_AFTER_MAX_S 600

static pthread_once_t sender_once = PTHREAD_ONCE_INIT;
static bool sender_threads_ok;

static void sender_kick(struct vgsink *s);

static void sender_init_once(void)
{
	sender_threads_ok = evthread_use_pthreads() == 0;
}

/* A change in where rows are. sender_settle applies it under the lock in one
 * go, with the spool's gauges, so a reader of the stats sees every row in
 * exactly one place: recorded = sent + dropped + rejected + queued + spooled_rows. */
struct sender_delta {
	int64_t held; /* rows the sender keeps in memory with no file */
	uint64_t sent, duplicates, rejected, dropped, spooled;
};

/* Recomputes sender_floor and initial_left from the ready batches and the
 * spool, and copies the spool's gauges into stats; call with lock held. */
static void sender_update_floor_locked(struct vgsink *s)
{
	uint64_t floor = UINT64_MAX;

	for (struct sink_batch *b = s->ready; b; b = b->next)
		if (b->min_seq < floor)
			floor = b->min_seq;
	s->initial_left = 0;
	if (s->spool) {
		struct spool_gauges g;
		uint64_t spooled = spool_min_seq(s->spool);

		if (spooled < floor)
			floor = spooled;
		s->initial_left = spool_initial_left(s->spool);
		spool_gauges_get(s->spool, &g);
		s->stats.spooled_rows = g.rows;
		s->stats.spool_bytes = g.bytes;
		s->stats.rejected_bytes = g.rej_bytes;
		s->stats.rejected_discarded = g.rej_discarded;
		/* Rejected files make way for pending ones (spool_fits). */
		s->spool_room = s->spool_stuck || g.bytes >= spool_max_bytes(s->spool)
					? 0
					: spool_max_bytes(s->spool) - (size_t)g.bytes;
	}
	s->sender_floor = floor;
}

size_t sink_sender_spool_room_locked(const struct vgsink *s)
{
	return s->spool_room;
}

bool sink_sender_answered_locked(struct vgsink *s, uint64_t target)
{
	return s->sender_floor >= target && s->initial_left == 0;
}

/* Applies d (NULL: none) and publishes what the sender holds to flushers. */
static void sender_settle(struct vgsink *s, const struct sender_delta *d)
{
	uint64_t before, after;

	pthread_mutex_lock(&s->lock);
	if (d) {
		if (d->held)
			sink_queue_hold_locked(s, d->held);
		s->stats.sent += d->sent;
		s->stats.duplicates += d->duplicates;
		s->stats.rejected += d->rejected;
		s->stats.dropped += d->dropped;
		s->stats.spooled += d->spooled;
	}
	before = s->stats.rejected_discarded;
	sender_update_floor_locked(s);
	after = s->stats.rejected_discarded;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (after > before)
		sink_log(s, VGSINK_LOG_WARN,
			 "vgsink: removed the files of %llu rejected rows from SPOOL/rejected/ to "
			 "stay under spool_max_bytes (%zu bytes); they stay counted as rejected",
			 (unsigned long long)(after - before), spool_max_bytes(s->spool));
}

static void sender_count(struct vgsink *s, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&s->lock);
	*field += n;
	pthread_mutex_unlock(&s->lock);
}

/* Takes up to batch_rows rows (and about batch_bytes) off the queue. With
 * all, takes whatever is there; else only a full batch unless the interval
 * passed or someone flushes. */
static struct sink_item *sender_take(struct vgsink *s, bool all, int *n)
{
	struct sink_item *first;

	*n = 0;
	pthread_mutex_lock(&s->lock);
	/* Rows still in shards go out with a timed, forced or final batch. */
	if (all || s->interval_due || s->flushers || s->stopping)
		sink_queue_collect_locked(s);
	if (!all && sink_queue_length_locked(s) < (size_t)s->cfg.batch_rows && !s->interval_due &&
	    s->flushers == 0 && !s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	first = sink_queue_take_locked(s, s->cfg.batch_rows, s->cfg.batch_bytes, n);
	if (!first) {
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	/* Until the batch is formed the sender holds these rows. */
	if (first->seq < s->sender_floor)
		s->sender_floor = first->seq;
	s->interval_due = false;
	pthread_mutex_unlock(&s->lock);
	return first;
}

static struct sink_batch *sender_form(struct vgsink *s, bool all)
{
	char err[256] = "";
	int n;
	struct sink_item *items = sender_take(s, all, &n);
	struct sink_batch *b;

	if (!items)
		return NULL;
	b = sink_batch_from_items(items, n, err, sizeof(err));
	sink_items_free_list(items);
	if (!b) {
		struct sender_delta d = { .held = -(int64_t)n, .dropped = (uint64_t)n };
		sink_log(s, VGSINK_LOG_ERROR, "vgsink: %d rows dropped: %s", n, err);
		sender_settle(s, &d);
	}
	return b;
}

/* Puts b (alone, not in a list) on disk. A batch larger than spool_max_bytes
 * is split in halves until each piece could fit. A piece that finds no room
 * beside the pending files, or meets an I/O error, stays in memory, and so
 * does every piece after it (*stuck): nothing already on disk is ever removed
 * for it. Returns the pieces in order (b itself when it was not split); those
 * on disk have file_seq set, and *written counts their rows. */
static struct sink_batch *sender_store(struct vgsink *s, struct sink_batch *b, uint64_t *written,
				       bool *stuck)
{
	char err[512] = "";
	struct sink_batch *a, *c, *last;

	if (*stuck)
		return b;
	if (b->body.len > spool_max_bytes(s->spool) && b->nrows > 1) {
		if (!sink_batch_split(b, &a, &c, err, sizeof(err))) {
			sink_log(s, VGSINK_LOG_WARN,
				 "vgsink: cannot split a batch of %d rows for the spool (%s): kept "
				 "in memory",
				 b->nrows, err);
			*stuck = true;
			return b;
		}
		sink_batch_free(b);
		a = sender_store(s, a, written, stuck);
		c = sender_store(s, c, written, stuck);
		for (last = a; last->next; last = last->next)
			;
		last->next = c;
		return a;
	}
	if (spool_write(s->spool, b, err, sizeof(err)) == SPOOL_WRITTEN) {
		*written += (uint64_t)b->nrows;
		if (s->spool_stuck)
			sink_log(s, VGSINK_LOG_INFO, "vgsink: the spool takes batches again");
		s->spool_stuck = false;
		return b;
	}
	/* Said once per episode: every retry tries again. */
	if (!s->spool_stuck)
		sink_log(s, VGSINK_LOG_WARN,
			 "vgsink: %d rows stay in memory, not on disk, until the spool takes them "
			 "or they are sent: %s",
			 b->nrows, err);
	s->spool_stuck = true;
	*stuck = true;
	return b;
}

/* Puts the memory-only batches of the ready list on disk (the head too,
 * unless it is in flight). False when one had to stay in memory. */
static bool sender_store_ready(struct vgsink *s)
{
	struct sink_batch **pp = &s->ready;
	struct sender_delta d = { 0 };
	bool stuck = false;

	if (s->in_flight && *pp)
		pp = &(*pp)->next;
	while (*pp && !stuck) {
		struct sink_batch *b = *pp, *next = b->next, *last;
		uint64_t written = 0;

		if (b->file_seq) {
			pp = &b->next;
			continue;
		}
		b->next = NULL;
		*pp = sender_store(s, b, &written, &stuck);
		for (last = *pp; last->next; last = last->next)
			;
		last->next = next;
		pp = &last->next;
		d.held -= (int64_t)written;
		d.spooled += written;
	}
	if (d.spooled || stuck) /* stuck: the queue's bound learns the spool has no room */
		sender_settle(s, &d);
	return !stuck;
}

/* While the collector cannot be reached, full batches go to disk, so a crash
 * of the worker loses nothing. With all, every queued row goes. Stops when
 * the spool has no room (or fails): the rows wait in memory, where the
 * queue's bound applies. */
static void sender_spill(struct vgsink *s, bool all)
{
	struct sink_batch *b, **tail;

	if (!s->spool || !sender_store_ready(s))
		return;
	for (;;) {
		struct sender_delta d = { 0 };
		uint64_t written = 0;
		bool stuck = false;

		pthread_mutex_lock(&s->lock);
		if (all)
			sink_queue_collect_locked(s);
		size_t queued = sink_queue_length_locked(s);
		bool more = queued > 0 && (all || queued >= (size_t)s->cfg.batch_rows);
		pthread_mutex_unlock(&s->lock);
		if (!more || !(b = sender_form(s, true)))
			break;
		b = sender_store(s, b, &written, &stuck);
		/* What is on disk leaves memory; the rest waits its turn to be sent. */
		for (tail = &s->ready; *tail; tail = &(*tail)->next)
			;
		while (b) {
			struct sink_batch *next = b->next;

			b->next = NULL;
			if (b->file_seq) {
				sink_batch_free(b);
			} else {
				*tail = b;
				tail = &b->next;
			}
			b = next;
		}
		d.held = -(int64_t)written;
		d.spooled = written;
		sender_settle(s, &d);
		if (stuck)
			break;
	}
}

/* ---- the connection ---------------------------------------------------------- */

static void sender_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct vgsink *s = arg;

	(void)evcon;
	s->conn_closed = true; /* replaced before the next request, see sender_conn */
}

static void sender_conn_drop(struct vgsink *s)
{
	if (s->evcon)
		evhttp_connection_free(s->evcon);
	s->evcon = NULL;
	s->conn_closed = false;
}

/* Resolves the URL's host and writes its address number addr_next (wrapping)
 * as text. libevent would connect to the first address only, so a name whose
 * first address refuses (::1 where the collector listens on 127.0.0.1) could
 * never be reached; the sender walks the list instead. The lookup blocks this
 * thread, as libevent's own would: recording threads never wait for it. */
bool sink_sender_pick_address(struct vgsink *s, int *next, int *count, char *out, size_t outlen,
			      char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *list = NULL, *ai;
	char host[256];
	size_t len = strlen(s->host);
	int n = 0, rc;

	/* An IPv6 literal comes bracketed from the URL. */
	if (len >= 2 && s->host[0] == '[' && s->host[len - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(len - 2), s->host + 1);
	else
		snprintf(host, sizeof(host), "%s", s->host);
	rc = getaddrinfo(host, NULL, &hints, &list);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return false;
	}
	for (ai = list; ai; ai = ai->ai_next)
		n++;
	*count = n;
	if (*next >= n)
		*next = 0;
	ai = list;
	for (int i = 0; i < *next; i++)
		ai = ai->ai_next;
	rc = getnameinfo(ai->ai_addr, ai->ai_addrlen, out, (socklen_t)outlen, NULL, 0,
			 NI_NUMERICHOST);
	freeaddrinfo(list);
	if (rc != 0) {
		snprintf(err, errlen, "cannot use an address of %s: %s", host, gai_strerror(rc));
		return false;
	}
	return true;
}

struct evhttp_connection *sink_sender_conn_new(struct vgsink *s, const char *addr)
{
	struct evhttp_connection *evcon;
	struct bufferevent *bev;

	if (s->https) {
		SSL *ssl = SSL_new((SSL_CTX *)s->ssl_ctx);
		struct in6_addr a6;
		struct in_addr a4;

		if (!ssl)
			return NULL;
		SSL_set_tlsext_host_name(ssl, s->host);
		if (inet_pton(AF_INET, s->host, &a4) == 1 || inet_pton(AF_INET6, s->host, &a6) == 1)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), s->host);
		else
			SSL_set1_host(ssl, s->host);
		bev = bufferevent_openssl_socket_new(s->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE |
							     BEV_OPT_DEFER_CALLBACKS);
		if (bev)
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else {
		bev = bufferevent_socket_new(s->base, -1,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	if (!bev)
		return NULL;
	/* Certificate checks and the Host header use s->host, not this address. */
	evcon = evhttp_connection_base_bufferevent_new(s->base, NULL, bev, addr,
						       (unsigned short)s->port);
	if (!evcon) {
		bufferevent_free(bev);
		return NULL;
	}
	struct timeval tv = { s->cfg.request_timeout_ms / 1000,
			      (s->cfg.request_timeout_ms % 1000) * 1000 };
	evhttp_connection_set_timeout_tv(evcon, &tv);
	evhttp_connection_set_retries(evcon, 0);
	return evcon;
}

static struct evhttp_connection *sender_conn(struct vgsink *s, char *err, size_t errlen)
{
	/* A TLS bufferevent cannot be reconnected: a closed connection is
	 * replaced, plain or not. */
	if (s->evcon && s->conn_closed)
		sender_conn_drop(s);
	if (s->evcon)
		return s->evcon;
	if (!sink_sender_pick_address(s, &s->addr_next, &s->addr_count, s->addr_text,
				      sizeof(s->addr_text), err, errlen))
		return NULL;
	s->evcon = sink_sender_conn_new(s, s->addr_text);
	if (s->evcon)
		evhttp_connection_set_closecb(s->evcon, sender_on_close, s);
	return s->evcon;
}

/* ---- answers ------------------------------------------------------------------- */

/* The head batch is answered: drop it from the ready list (and the spool),
 * and settle d, the answer's counts, with it. */
static void sender_finish(struct vgsink *s, bool rejected, struct sender_delta *d)
{
	struct sink_batch *b = s->ready;

	s->ready = b->next;
	if (b->file_seq && s->spool) {
		spool_done(s->spool, b->file_seq, rejected);
	} else {
		d->held -= b->nrows;
		if (rejected && s->spool) {
			char err[512];
			if (!spool_write_rejected(s->spool, b, err, sizeof(err)))
				sink_log(s, VGSINK_LOG_ERROR,
					 "vgsink: a rejected batch of %d rows is not kept in "
					 "SPOOL/rejected/: %s",
					 b->nrows, err);
		}
	}
	sink_batch_free(b);
	sender_settle(s, d);
}

static int sender_retry_after(struct evhttp_request *req)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Retry-After");
	struct tm tm;
	char *end;
	long n;

	if (!v)
		return -1;
	n = strtol(v, &end, 10);
	if (end != v && *end == '\0')
		return n < 0 ? 0 : n > SINK_RETRY_AFTER_MAX_S ? SINK_RETRY_AFTER_MAX_S : (int)n;
	memset(&tm, 0, sizeof(tm));
	if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
		long d = (long)(timegm(&tm) - time(NULL));
		return d < 0 ? 0 : d > SINK_RETRY_AFTER_MAX_S ? SINK_RETRY_AFTER_MAX_S : (int)d;
	}
	return -1;
}

static void sender_retry(struct vgsink *s, const char *why, int retry_after_s)
{
	struct sink_batch *b = s->ready;
	int shift = b->attempts > 20 ? 20 : b->attempts - 1;
	long delay = (long)s->cfg.retry_initial_ms << (shift < 0 ? 0 : shift);
	struct timeval tv;

	if (delay > s->cfg.retry_max_ms)
		delay = s->cfg.retry_max_ms;
	delay = delay / 2 + (long)(random() % (delay / 2 + 1)); /* jitter: [d/2, d] */
	if (retry_after_s >= 0 && (long)retry_after_s * 1000 > delay)
		delay = (long)retry_after_s * 1000;
	sender_count(s, &s->stats.retries, 1);
	sink_log(s, VGSINK_LOG_WARN,
		 "vgsink: batch of %d rows not delivered (%s); retry %d in %ld ms", b->nrows, why,
		 b->attempts, delay);
	s->backing_off = true;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(s->retry_timer, &tv);
	/* The collector is unreachable or busy: keep the batch (and what waits
	 * behind it) on disk meanwhile. The head may be split doing so. */
	sender_spill(s, false);
}

static void sender_accepted(struct vgsink *s, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	cJSON *j = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, -1), len);
	double acc = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "accepted"));
	double dup = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "duplicates"));
	double rej = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "rejected"));
	int nrows = s->ready->nrows;
	struct sender_delta d = { 0 };

	cJSON_Delete(j);
	if (acc != acc || dup != dup || rej != rej) { /* not the expected answer: count as sent */
		dup = rej = 0;
	}
	/* Every row of the batch is counted once, whatever the numbers say. */
	rej = rej < 0 ? 0 : rej > nrows ? nrows : rej;
	dup = dup < 0 ? 0 : dup > nrows - rej ? nrows - rej : dup;
	d.rejected = (uint64_t)rej;
	d.sent = (uint64_t)nrows - d.rejected;
	d.duplicates = (uint64_t)dup;
	if (rej > 0)
		sink_log(s, VGSINK_LOG_WARN,
			 "vgsink: collector rejected %.0f of %d rows (kept in its ingest_rejects)",
			 rej, nrows);
	sender_finish(s, false, &d);
}

static void sender_rejected(struct vgsink *s, int code, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	int nrows = s->ready->nrows;
	struct sender_delta d = { .rejected = (uint64_t)nrows };

	sink_log(s, VGSINK_LOG_ERROR, "vgsink: batch of %d rows rejected with %d: %.*s%s", nrows,
		 code, (int)(len > 300 ? 300 : len), (const char *)evbuffer_pullup(in, -1),
		 s->spool ? " (kept in SPOOL/rejected/)" : "");
	sender_finish(s, true, &d);
}

/* 413: replace the head batch by its halves (on disk too, when spooled). */
static void sender_split(struct vgsink *s, struct evhttp_request *req)
{
	struct sink_batch *b = s->ready, *a, *c;
	char err[256] = "";

	if (!sink_batch_split(b, &a, &c, err, sizeof(err))) {
		sender_rejected(s, 413, req);
		return;
	}
	sink_log(s, VGSINK_LOG_WARN, "vgsink: batch of %d rows too large (413): split in %d + %d",
		 b->nrows, a->nrows, c->nrows);
	if (b->file_seq && s->spool) {
		/* The halves replace the file: on disk where they fit, else in
		 * memory. Written before the file goes, so a crash loses nothing. */
		struct sender_delta d = { 0 };
		uint64_t written = 0;
		bool stuck = false;
		struct sink_batch *la = sender_store(s, a, &written, &stuck), *last;
		struct sink_batch *lc = sender_store(s, c, &written, &stuck);

		for (last = la; last->next; last = last->next)
			;
		last->next = lc;
		for (; last->next; last = last->next)
			;
		last->next = b->next;
		s->ready = la;
		spool_done(s->spool, b->file_seq, false);
		d.held = (int64_t)b->nrows - (int64_t)written;
		d.spooled = written;
		sink_batch_free(b);
		sender_settle(s, &d);
		return;
	}
	a->next = c;
	c->next = b->next;
	s->ready = a;
	sink_batch_free(b);
	sender_settle(s, NULL);
}

enum sink_answer sink_answer_of(int status)
{
	switch (status) {
	case 200: return SINK_ANSWER_STORED;
	/* The client's own faults: sending again cannot help. */
	case 400:
	case 401:
	case 403:
	case 404:
	case 415: return SINK_ANSWER_REJECT;
	case 413: return SINK_ANSWER_SPLIT; /* a single row that gets 413 is rejected */
	default:
		/* No answer, 408, 429, every 5xx (a database that is read-only
		 * or restarting answers 500 or 503), anything unlisted. */
		return SINK_ANSWER_RETRY;
	}
}

static void sender_on_response(struct evhttp_request *req, void *arg)
{
	struct vgsink *s = arg;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	char why[64];

	s->in_flight = false;
	if (s->stopping_thread || !s->ready)
		return;
	switch (sink_answer_of(code)) {
	case SINK_ANSWER_STORED: sender_accepted(s, req); break;
	case SINK_ANSWER_REJECT: sender_rejected(s, code, req); break;
	case SINK_ANSWER_SPLIT: sender_split(s, req); break;
	case SINK_ANSWER_RETRY:
		if (code != 0) {
			snprintf(why, sizeof(why), "HTTP %d", code);
			sender_retry(s, why, sender_retry_after(req));
			break;
		}
		sender_conn_drop(s);
		if (++s->addr_next < s->addr_count) {
			/* The kick below sends again at once, to the next address. */
			sink_log(s, VGSINK_LOG_WARN,
				 "vgsink: %s at %s: connection failed or timed out; trying its "
				 "next address",
				 s->host, s->addr_text);
		} else {
			s->addr_next = 0;
			sender_retry(s, "connection failed or timed out", -1);
		}
		break;
	}
	sender_kick(s);
}

/* ---- the loop ------------------------------------------------------------------ */

/* A batch leaves in several writes (16 KiB each, or TLS records). With Nagle
 * on, the last one waits for the collector's delayed ACK, some 40 ms a batch.
 * libevent made the socket while connecting, so it is there to set now. */
static void sender_nodelay(struct evhttp_connection *evcon)
{
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	int one = 1;

	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void sender_send(struct vgsink *s)
{
	struct sink_batch *b = s->ready;
	char err[320] = "cannot open a connection";
	struct evhttp_connection *evcon = sender_conn(s, err, sizeof(err));
	struct evhttp_request *req;
	struct evkeyvalq *h;
	char auth[600];

	b->attempts++;
	req = evcon ? evhttp_request_new(sender_on_response, s) : NULL;
	if (!req) {
		sender_retry(s, err, -1);
		return;
	}
	h = evhttp_request_get_output_headers(req);
	snprintf(auth, sizeof(auth), "Bearer %s", s->api_key);
	evhttp_add_header(h, "Host", s->host_header);
	evhttp_add_header(h, "Authorization", auth);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Content-Encoding", "gzip");
	evhttp_add_header(h, "User-Agent", SINK_USER_AGENT);
	evbuffer_add(evhttp_request_get_output_buffer(req), b->body.data, b->body.len);
	s->in_flight = true;
	if (evhttp_make_request(evcon, req, EVHTTP_REQ_POST, s->path) != 0) {
		s->in_flight = false; /* libevent freed req */
		sender_conn_drop(s);
		sender_retry(s, "cannot send the request", -1);
		return;
	}
	sender_nodelay(evcon);
}

/* With a spool, rows past the queue's bound go to disk rather than be dropped,
 * also while a slow collector holds the one request in flight. */
static bool sender_over_bound(struct vgsink *s)
{
	return sink_queue_tight(s); /* queued > central_max */
}

static void sender_kick(struct vgsink *s)
{
	if (s->stopping_thread)
		return;
	if (s->in_flight) {
		if (s->spool && sender_over_bound(s))
			sender_spill(s, false);
		return;
	}
	if (s->backing_off) {
		sender_spill(s, false);
		return;
	}
	if (!s->ready && s->spool && spool_pending(s->spool)) {
		char err[512] = "";
		int lost = 0;

		s->ready = spool_load_oldest(s->spool, &lost, err, sizeof(err));
		if (!s->ready && err[0]) {
			struct sender_delta d = { .dropped = (uint64_t)lost };
			sink_log(s, VGSINK_LOG_ERROR, "vgsink: %d rows lost: %s", lost, err);
			sender_settle(s, &d);
		}
	}
	if (!s->ready) {
		s->ready = sender_form(s, false);
		if (s->ready)
			sender_settle(s, NULL);
	}
	if (s->ready)
		sender_send(s);
	/* The wake this kick answers may have been for the bound: sending does
	 * not lower it (the batch in flight is still in memory), and no other
	 * wake comes while memory stays past central_max. */
	if (s->in_flight && s->spool && sender_over_bound(s))
		sender_spill(s, false);
}

static void sender_on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sender_kick(arg);
}

/* A fork in another thread waits until the sender is here, between callbacks
 * and holding nothing, and releases it when the fork is done (sink_fork.c). */
static void sender_on_fork(evutil_socket_t fd, short what, void *arg)
{
	struct vgsink *s = arg;

	(void)fd, (void)what;
	pthread_mutex_lock(&s->lock);
	s->fork_paused = true;
	pthread_cond_broadcast(&s->fork_cond);
	while (s->fork_pause)
		pthread_cond_wait(&s->fork_cond, &s->lock);
	s->fork_paused = false;
	pthread_mutex_unlock(&s->lock);
}

static void sender_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct vgsink *s = arg;

	(void)fd, (void)what;
	pthread_mutex_lock(&s->lock);
	s->interval_due = true;
	pthread_mutex_unlock(&s->lock);
	sender_kick(s);
}

static void sender_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct vgsink *s = arg;

	(void)fd, (void)what;
	s->backing_off = false;
	sender_kick(s);
}

/* Last act of the thread: whatever is unsent goes to the spool. What can go
 * nowhere (no spool, or no room) is lost now, and counted once. */
static void sender_on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct vgsink *s = arg;
	uint64_t lost;

	(void)fd, (void)what;
	s->stopping_thread = true;
	s->in_flight = false; /* its answer will not be read: spool the head too */
	sender_spill(s, true);
	pthread_mutex_lock(&s->lock);
	lost = sink_queue_abandon_locked(s);
	s->stats.dropped += lost;
	pthread_mutex_unlock(&s->lock);
	while (s->ready) {
		struct sink_batch *b = s->ready;
		s->ready = b->next;
		sink_batch_free(b);
	}
	if (lost)
		sink_log(s, VGSINK_LOG_WARN, "vgsink: closed with %llu rows unsent and %s: lost",
			 (unsigned long long)lost,
			 s->spool ? "no room for them in the spool" : "no spool");
	sender_settle(s, NULL);
	event_base_loopbreak(s->base);
}

static void *sender_main(void *arg)
{
	struct vgsink *s = arg;

	/* So `top -H` and perf show the library's thread by name. */
	pthread_setname_np(pthread_self(), "vgsink-sender");
	event_base_dispatch(s->base);
	/* A connection freed while one of its callbacks is still deferred (a
	 * failing connect, say) is only released when that callback runs, and
	 * event_base_free does not run it: drop it here and let it run. Every
	 * other callback sees stopping_thread and does nothing. */
	sender_conn_drop(s);
	sink_heartbeat_stop(s);
	event_base_loop(s->base, EVLOOP_NONBLOCK);
	return NULL;
}

bool sink_sender_start(struct vgsink *s, char *err, size_t errlen)
{
	struct timeval every = { s->cfg.flush_interval_ms / 1000,
				 (s->cfg.flush_interval_ms % 1000) * 1000 };

	pthread_once(&sender_once, sender_init_once);
	pthread_mutex_lock(&s->lock);
	if (s->spool) {
		struct spool_gauges g;

		spool_gauges_get(s->spool, &g);
		s->stats.adopted = g.rows; /* this sink answers for them now */
	}
	sender_update_floor_locked(s);
	pthread_mutex_unlock(&s->lock);
	if (!sender_threads_ok) {
		snprintf(err, errlen, "libevent: cannot enable pthreads support");
		return false;
	}
	s->base = event_base_new();
	if (!s->base)
		goto fail;
	s->wake = event_new(s->base, -1, 0, sender_on_wake, s);
	s->stop_ev = event_new(s->base, -1, 0, sender_on_stop, s);
	s->tick = event_new(s->base, -1, EV_PERSIST, sender_on_tick, s);
	s->retry_timer = evtimer_new(s->base, sender_on_retry, s);
	s->fork_ev = event_new(s->base, -1, 0, sender_on_fork, s);
	if (!s->wake || !s->stop_ev || !s->tick || !s->retry_timer || !s->fork_ev ||
	    event_add(s->tick, &every) != 0 || !sink_heartbeat_start(s))
		goto fail;
	event_active(s->wake, EV_READ, 0); /* send what the spool holds at once */
	if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
		snprintf(err, errlen, "cannot start the sender thread");
		goto cleanup;
	}
	s->thread_started = true;
	return true;
fail:
	snprintf(err, errlen, "libevent: out of memory");
cleanup:
	sink_sender_free(s);
	return false;
}

void sink_sender_wake(struct vgsink *s)
{
	event_active(s->wake, EV_READ, 0);
}

void sink_sender_park_begin(struct vgsink *s)
{
	pthread_mutex_lock(&s->lock);
	s->fork_pause = true;
	pthread_mutex_unlock(&s->lock);
	event_active(s->fork_ev, EV_READ, 0);
}

void sink_sender_park_wait(struct vgsink *s)
{
	pthread_mutex_lock(&s->lock);
	while (!s->fork_paused)
		pthread_cond_wait(&s->fork_cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

void sink_sender_park_end(struct vgsink *s)
{
	pthread_mutex_lock(&s->lock);
	s->fork_pause = false;
	pthread_cond_broadcast(&s->fork_cond);
	pthread_mutex_unlock(&s->lock);
}

void sink_sender_stop(struct vgsink *s)
{
	if (!s->thread_started)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_mutex_unlock(&s->lock);
	event_active(s->stop_ev, EV_READ, 0);
	pthread_join(s->thread, NULL);
	s->thread_started = false;
	sink_sender_free(s);
}

void sink_sender_free(struct vgsink *s)
{
	sender_conn_drop(s);
	sink_heartbeat_stop(s);
	if (s->wake)
		event_free(s->wake);
	if (s->stop_ev)
		event_free(s->stop_ev);
	if (s->tick)
		event_free(s->tick);
	if (s->retry_timer)
		event_free(s->retry_timer);
	if (s->fork_ev)
		event_free(s->fork_ev);
	if (s->base)
		event_base_free(s->base);
	s->wake = s->stop_ev = s->tick = s->retry_timer = s->fork_ev = NULL;
	s->base = NULL;
}
