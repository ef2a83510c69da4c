/* The heartbeat: with vgsink_config.agent_id set, the sender thread POSTs the
 * worker's presence and one consistent snapshot of the sink's counters to
 * URL/v1/agents/heartbeat every heartbeat_interval_ms, on a connection of
 * its own so a beat never waits behind a batch. A beat is fire and forget:
 * one at a time, never retried or spooled; the next one supersedes it. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "sink_int.h"

#define HEARTBEAT_ID_MAX_CHARS 128
#define HEARTBEAT_STRING_MAX_CHARS 256 /* the collector's default max_string_chars */
#define HEARTBEAT_ERROR_MAX 300	       /* bytes of last_error a beat carries */

/* Presence, packed in one atomic word so a beat never sees a status of one
 * call with the count of another: status in the high half, sessions low. */
enum { PRESENCE_UNSAID = 0, PRESENCE_IDLE = 1, PRESENCE_BUSY = 2 };

struct sink_heartbeat {
	/* Set by sink_heartbeat_open, read-only after it. */
	char *agent_id, *agent_name, *version, *region, *host;
	char *path; /* the URL's path + /v1/agents/heartbeat */
	double started_at;

	_Atomic uint64_t presence; /* any thread: vgsink_set_presence */

	pthread_mutex_t err_lock; /* guards last_error only */
	char last_error[HEARTBEAT_ERROR_MAX + 1];

	/* The sender thread's own. */
	struct event *timer;
	struct evhttp_connection *evcon;
	bool conn_closed; /* replace the connection before the next beat */
	bool in_flight;
	bool failing;		   /* the last beat failed: said once per episode */
	int addr_next, addr_count; /* which of the host's addresses; walked as the sender does */
	char addr_text[64];
};

static size_t heartbeat_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* Copies one config string after the collector's checks; false with err. */
static bool heartbeat_copy(const char *name, const char *v, size_t max_chars, char **out, char *err,
			   size_t errlen)
{
	*out = NULL;
	if (!v)
		return true;
	if (!row_utf8_valid(v, strlen(v)) || heartbeat_chars(v) > max_chars) {
		snprintf(err, errlen, "%s: must be at most %zu characters of UTF-8", name,
			 max_chars);
		return false;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7F) {
			snprintf(err, errlen, "%s: control characters are not allowed", name);
			return false;
		}
	}
	if (!(*out = strdup(v))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	return true;
}

bool sink_heartbeat_open(struct vgsink *s, char *err, size_t errlen)
{
	struct sink_heartbeat *hb;
	char hostname[256] = "";
	const char *host = s->cfg.host;
	size_t plen = strlen(s->path) - strlen("/v1/ingest"); /* s->path ends so */

	if (!s->cfg.agent_id)
		return true;
	if (!s->cfg.agent_id[0]) {
		snprintf(err, errlen, "agent_id: must not be empty (NULL turns the heartbeat off)");
		return false;
	}
	if (s->cfg.heartbeat_interval_ms < 0) {
		snprintf(err, errlen, "heartbeat_interval_ms: must be >= 1 (0: the default 15000)");
		return false;
	}
	if (s->cfg.heartbeat_interval_ms == 0)
		s->cfg.heartbeat_interval_ms = 15000;
	if (!host && gethostname(hostname, sizeof(hostname) - 1) == 0)
		host = hostname;
	if (!(hb = calloc(1, sizeof(*hb)))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	s->heartbeat = hb;
	pthread_mutex_init(&hb->err_lock, NULL);
	hb->started_at = clock_epoch();
	if (!heartbeat_copy("agent_id", s->cfg.agent_id, HEARTBEAT_ID_MAX_CHARS, &hb->agent_id, err,
			    errlen) ||
	    !heartbeat_copy("agent_name", s->cfg.agent_name, HEARTBEAT_STRING_MAX_CHARS,
			    &hb->agent_name, err, errlen) ||
	    !heartbeat_copy("version", s->cfg.version, HEARTBEAT_STRING_MAX_CHARS, &hb->version,
			    err, errlen) ||
	    !heartbeat_copy("region", s->cfg.region, HEARTBEAT_STRING_MAX_CHARS, &hb->region, err,
			    errlen) ||
	    !heartbeat_copy("host", host[0] ? host : NULL, HEARTBEAT_STRING_MAX_CHARS, &hb->host,
			    err, errlen))
		return false; /* sink_free frees what was made */
	if (!(hb->path = malloc(plen + sizeof("/v1/agents/heartbeat")))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	memcpy(hb->path, s->path, plen);
	memcpy(hb->path + plen, "/v1/agents/heartbeat", sizeof("/v1/agents/heartbeat"));
	/* The caller's strings need not outlive vgsink_open. */
	s->cfg.agent_id = hb->agent_id;
	s->cfg.agent_name = hb->agent_name;
	s->cfg.version = hb->version;
	s->cfg.region = hb->region;
	s->cfg.host = hb->host;
	return true;
}

void sink_heartbeat_close(struct vgsink *s)
{
	struct sink_heartbeat *hb = s->heartbeat;

	if (!hb)
		return;
	s->heartbeat = NULL;
	pthread_mutex_destroy(&hb->err_lock);
	free(hb->agent_id);
	free(hb->agent_name);
	free(hb->version);
	free(hb->region);
	free(hb->host);
	free(hb->path);
	free(hb);
}

int vgsink_set_presence(vgsink *s, const char *status, int active_sessions)
{
	uint64_t st;

	if (!s)
		return sink_fail("vgsink_set_presence: NULL sink");
	if (sink_forked(s))
		return sink_fail("process forked after vgsink_open; open a new sink in the child");
	if (!status)
		st = PRESENCE_UNSAID;
	else if (strcmp(status, "idle") == 0)
		st = PRESENCE_IDLE;
	else if (strcmp(status, "busy") == 0)
		st = PRESENCE_BUSY;
	else
		return sink_fail("status \"%.32s\": must be \"idle\", \"busy\" or NULL", status);
	if (active_sessions < 0)
		return sink_fail("active_sessions %d: must be >= 0", active_sessions);
	if (s->heartbeat)
		atomic_store_explicit(&s->heartbeat->presence,
				      st << 32 | (uint64_t)(unsigned)active_sessions,
				      memory_order_relaxed);
	return 0;
}

void sink_heartbeat_note_error(struct vgsink *s, const char *msg)
{
	struct sink_heartbeat *hb = s->heartbeat;

	if (!hb)
		return;
	pthread_mutex_lock(&hb->err_lock);
	snprintf(hb->last_error, sizeof(hb->last_error), "%s", msg);
	pthread_mutex_unlock(&hb->err_lock);
}

/* ---- the sender thread's side --------------------------------------------- */

static void heartbeat_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct sink_heartbeat *hb = arg;

	(void)evcon;
	hb->conn_closed = true;
}

static void heartbeat_conn_drop(struct sink_heartbeat *hb)
{
	if (hb->evcon)
		evhttp_connection_free(hb->evcon);
	hb->evcon = NULL;
	hb->conn_closed = false;
}

static void heartbeat_on_response(struct evhttp_request *req, void *arg)
{
	struct vgsink *s = arg;
	struct sink_heartbeat *hb = s->heartbeat;
	int code = req ? evhttp_request_get_response_code(req) : 0;

	if (!hb)
		return;
	hb->in_flight = false;
	if (code == 200) {
		if (hb->failing)
			sink_log(s, VGSINK_LOG_INFO, "vgsink: heartbeats are answered again");
		hb->failing = false;
		return;
	}
	/* Not a delivery problem, so said at INFO: it stays out of last_error. */
	if (!hb->failing)
		sink_log(s, VGSINK_LOG_INFO,
			 "vgsink: heartbeat not answered (%s %d); the next one follows in %d ms",
			 code ? "HTTP" : "no answer", code, s->cfg.heartbeat_interval_ms);
	hb->failing = true;
	if (!code) {
		/* Replaced before the next beat (not inside its callback), at the
		 * host's next address: a name giving ::1 first must still reach a
		 * collector on 127.0.0.1. */
		hb->conn_closed = true;
		hb->addr_next++;
	}
}

/* The beat: presence, identity, and the counters as one vgsink_stats_get
 * snapshot, so recorded = sent + dropped + rejected + queued + spooled_rows
 * holds in every beat. */
static bool heartbeat_body(struct vgsink *s, struct buf *out)
{
	struct sink_heartbeat *hb = s->heartbeat;
	uint64_t p = atomic_load_explicit(&hb->presence, memory_order_relaxed);
	unsigned st = (unsigned)(p >> 32);
	char last_error[HEARTBEAT_ERROR_MAX + 1];
	vgsink_stats stats;

	vgsink_stats_get(s, &stats);
	pthread_mutex_lock(&hb->err_lock);
	memcpy(last_error, hb->last_error, sizeof(last_error));
	pthread_mutex_unlock(&hb->err_lock);
	/* Cut inside a character, the text would be refused as bad UTF-8. */
	for (size_t n = strlen(last_error); n > 0 && !row_utf8_valid(last_error, n);)
		last_error[--n] = '\0';

	buf_puts(out, "{\"agent_id\":");
	row_json_string(out, hb->agent_id);
	buf_puts(out, ",\"agent_name\":");
	row_json_string(out, hb->agent_name);
	buf_printf(out, ",\"status\":%s",
		   st == PRESENCE_IDLE	 ? "\"idle\""
		   : st == PRESENCE_BUSY ? "\"busy\""
					 : "null");
	if (st != PRESENCE_UNSAID)
		buf_printf(out, ",\"active_sessions\":%u", (unsigned)(p & 0xffffffffu));
	else
		buf_puts(out, ",\"active_sessions\":null");
	buf_puts(out, ",\"version\":");
	row_json_string(out, hb->version);
	buf_puts(out, ",\"region\":");
	row_json_string(out, hb->region);
	buf_puts(out, ",\"host\":");
	row_json_string(out, hb->host);
	buf_printf(out, ",\"started_at\":%.3f,\"ts\":%.3f", hb->started_at, clock_epoch());
	buf_printf(out,
		   ",\"sink\":{\"recorded\":%llu,\"sent\":%llu,\"dropped\":%llu,\"rejected\":%llu,"
		   "\"queued\":%llu,\"spooled_rows\":%llu,\"spool_bytes\":%llu,\"last_error\":",
		   (unsigned long long)stats.recorded, (unsigned long long)stats.sent,
		   (unsigned long long)stats.dropped, (unsigned long long)stats.rejected,
		   (unsigned long long)stats.queued, (unsigned long long)stats.spooled_rows,
		   (unsigned long long)stats.spool_bytes);
	row_json_string(out, last_error[0] ? last_error : NULL);
	buf_puts(out, "}}");
	return !out->over;
}

static void heartbeat_beat(struct vgsink *s)
{
	struct sink_heartbeat *hb = s->heartbeat;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	struct buf body;
	char auth[600];

	if (hb->in_flight)
		return; /* the one before has not been answered: this one is skipped */
	if (hb->evcon && hb->conn_closed)
		heartbeat_conn_drop(hb);
	if (!hb->evcon) {
		char err[256];

		if (!sink_sender_pick_address(s, &hb->addr_next, &hb->addr_count, hb->addr_text,
					      sizeof(hb->addr_text), err, sizeof(err))) {
			if (!hb->failing)
				sink_log(s, VGSINK_LOG_INFO, "vgsink: heartbeat not sent: %s", err);
			hb->failing = true;
			return;
		}
		if (!(hb->evcon = sink_sender_conn_new(s, hb->addr_text)))
			return;
		evhttp_connection_set_closecb(hb->evcon, heartbeat_on_close, hb);
	}
	buf_init(&body, 0);
	if (!heartbeat_body(s, &body) || !(req = evhttp_request_new(heartbeat_on_response, s))) {
		buf_release(&body);
		return;
	}
	h = evhttp_request_get_output_headers(req);
	snprintf(auth, sizeof(auth), "Bearer %s", s->api_key);
	evhttp_add_header(h, "Host", s->host_header);
	evhttp_add_header(h, "Authorization", auth);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "User-Agent", "libvgsink/" VGSINK_VERSION);
	evbuffer_add(evhttp_request_get_output_buffer(req), body.data, body.len);
	buf_release(&body);
	hb->in_flight = true;
	if (evhttp_make_request(hb->evcon, req, EVHTTP_REQ_POST, hb->path) != 0) {
		hb->in_flight = false; /* libevent freed req */
		heartbeat_conn_drop(hb);
	}
}

static void heartbeat_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	heartbeat_beat(arg);
}

bool sink_heartbeat_start(struct vgsink *s)
{
	struct sink_heartbeat *hb = s->heartbeat;
	int ms;
	struct timeval every;

	if (!hb)
		return true;
	ms = s->cfg.heartbeat_interval_ms;
	every.tv_sec = ms / 1000;
	every.tv_usec = (ms % 1000) * 1000;
	hb->timer = event_new(s->base, -1, EV_PERSIST, heartbeat_on_timer, s);
	if (!hb->timer || event_add(hb->timer, &every) != 0)
		return false;
	event_active(hb->timer, EV_TIMEOUT, 0); /* the first beat at once */
	return true;
}

void sink_heartbeat_stop(struct vgsink *s)
{
	struct sink_heartbeat *hb = s->heartbeat;

	if (!hb)
		return;
	heartbeat_conn_drop(hb);
	hb->in_flight = false;
	if (hb->timer)
		event_free(hb->timer);
	hb->timer = NULL;
}
