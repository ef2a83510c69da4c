/* The key watcher thread. It owns one PostgreSQL connection with LISTEN
 * vgc_keys and waits on its socket with poll(); a notification, the refresh
 * timer or a poke (through a pipe) reloads the whole cache. A lost connection
 * is retried every second; the old cache stays in force meanwhile. */
#include "keywatch.h"

#include <errno.h>
#include <math.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "db.h"
#include "log.h"

#define KEYWATCH_USED_MAX 1024
#define KEYWATCH_TOUCH_EVERY_S 10

struct keywatch {
	struct event_base *base;
	char *conninfo;
	_Atomic int refresh_s;
	keywatch_fn fn;
	void *arg;
	pthread_t thread;
	int wake[2]; /* pipe: the loop pokes or stops the thread */
	_Atomic bool stopping;
	_Atomic bool connected;

	pthread_mutex_t lock;
	struct auth_cache *pending; /* built by the thread, not yet on the loop; under lock */
	long long used[KEYWATCH_USED_MAX]; /* key ids used since the last touch; under lock */
	int used_count;
	struct event *deliver_ev;
};

static void keywatch_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct keywatch *kw = arg;
	struct auth_cache *c;

	pthread_mutex_lock(&kw->lock);
	c = kw->pending;
	kw->pending = NULL;
	pthread_mutex_unlock(&kw->lock);
	if (c)
		kw->fn(c, kw->arg);
}

static bool keywatch_reload(struct keywatch *kw, PGconn *conn)
{
	char err[512];
	struct auth_cache *c = auth_cache_load(conn, err, sizeof(err));

	if (!c) {
		log_warn("key cache reload failed, keeping the old one: %s", err);
		return false;
	}
	pthread_mutex_lock(&kw->lock);
	auth_cache_free(kw->pending);
	kw->pending = c;
	pthread_mutex_unlock(&kw->lock);
	event_active(kw->deliver_ev, EV_READ, 0);
	return true;
}

/* Writes last_used_at for keys used since the previous call. */
static void keywatch_touch(struct keywatch *kw, PGconn *conn)
{
	char ids[KEYWATCH_USED_MAX * 21 + 3];
	size_t pos = 0;
	const char *params[1] = { ids };
	PGresult *res;
	int n;

	pthread_mutex_lock(&kw->lock);
	n = kw->used_count;
	ids[pos++] = '{';
	for (int i = 0; i < n; i++)
		pos += (size_t)snprintf(ids + pos, sizeof(ids) - pos, "%s%lld", i ? "," : "",
					kw->used[i]);
	kw->used_count = 0;
	pthread_mutex_unlock(&kw->lock);
	ids[pos++] = '}';
	ids[pos] = '\0';
	if (n == 0)
		return;
	res = PQexecParams(conn,
			   "UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::bigint[])",
			   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		char err[256];
		db_result_error(conn, res, err, sizeof(err));
		log_warn("recording key last_used_at failed: %s", err);
	}
	PQclear(res);
}

static void *keywatch_thread(void *arg)
{
	struct keywatch *kw = arg;
	PGconn *conn = NULL;
	double next_refresh = 0, next_touch = clock_monotonic() + KEYWATCH_TOUCH_EVERY_S;
	char err[512];
	bool warned = false;

	while (!atomic_load(&kw->stopping)) {
		struct pollfd pfd[2];
		double now = clock_monotonic();
		bool reload = false;
		int timeout_ms;
		char drain[64];

		if (!conn) {
			conn = db_connect(kw->conninfo, 5, err, sizeof(err));
			if (!conn || !db_exec(conn, "LISTEN vgc_keys", err, sizeof(err))) {
				if (!warned)
					log_warn(
						"key watcher cannot reach PostgreSQL, retrying every second: %s",
						err);
				warned = true;
				if (conn)
					PQfinish(conn);
				conn = NULL;
				atomic_store(&kw->connected, false);
				pfd[0].fd = kw->wake[0];
				pfd[0].events = POLLIN;
				if (poll(pfd, 1, 1000) > 0 &&
				    read(kw->wake[0], drain, sizeof(drain)) < 0) {
					/* nothing to drain */
				}
				continue;
			}
			if (warned)
				log_info("key watcher reconnected to PostgreSQL");
			warned = false;
			if (keywatch_reload(kw, conn))
				atomic_store(&kw->connected, true);
			next_refresh = now + atomic_load(&kw->refresh_s);
		}
		if (now >= next_touch) {
			keywatch_touch(kw, conn);
			next_touch = now + KEYWATCH_TOUCH_EVERY_S;
		}
		timeout_ms = (int)((fmin(next_refresh, next_touch) - now) * 1000);
		if (timeout_ms < 0)
			timeout_ms = 0;
		pfd[0].fd = PQsocket(conn);
		pfd[0].events = POLLIN;
		pfd[1].fd = kw->wake[0];
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, timeout_ms) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & POLLIN) {
			if (read(kw->wake[0], drain, sizeof(drain)) < 0) {
				/* spurious wake-up */
			}
			reload = true;
		}
		if (pfd[0].revents) {
			PGnotify *n;
			if (!PQconsumeInput(conn)) {
				db_error(conn, err, sizeof(err));
				log_warn("key watcher lost its connection: %s", err);
				PQfinish(conn);
				conn = NULL;
				atomic_store(&kw->connected, false);
				continue;
			}
			while ((n = PQnotifies(conn)) != NULL) {
				reload = true;
				PQfreemem(n);
			}
		}
		if (clock_monotonic() >= next_refresh)
			reload = true;
		if (reload && !atomic_load(&kw->stopping)) {
			if (PQstatus(conn) != CONNECTION_OK || !keywatch_reload(kw, conn)) {
				PQfinish(conn);
				conn = NULL;
				atomic_store(&kw->connected, false);
				continue;
			}
			next_refresh = clock_monotonic() + atomic_load(&kw->refresh_s);
		}
	}
	if (conn) {
		keywatch_touch(kw, conn);
		PQfinish(conn);
	}
	return NULL;
}

struct keywatch *keywatch_new(struct event_base *base, const char *conninfo, int refresh_s,
			      keywatch_fn fn, void *arg, char *err, size_t errlen)
{
	struct keywatch *kw = calloc(1, sizeof(*kw));

	if (!kw || !(kw->conninfo = strdup(conninfo))) {
		snprintf(err, errlen, "out of memory");
		free(kw);
		return NULL;
	}
	kw->base = base;
	atomic_store(&kw->refresh_s, refresh_s);
	kw->fn = fn;
	kw->arg = arg;
	pthread_mutex_init(&kw->lock, NULL);
	if (pipe2(kw->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	kw->deliver_ev = event_new(base, -1, 0, keywatch_deliver, kw);
	if (!kw->deliver_ev) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (pthread_create(&kw->thread, NULL, keywatch_thread, kw) != 0) {
		snprintf(err, errlen, "cannot start the key watcher thread");
		event_free(kw->deliver_ev);
		goto fail;
	}
	return kw;
fail:
	free(kw->conninfo);
	free(kw);
	return NULL;
}

void keywatch_free(struct keywatch *kw)
{
	if (!kw)
		return;
	atomic_store(&kw->stopping, true);
	if (write(kw->wake[1], "x", 1) < 0) {
		/* the pipe is full: the thread wakes anyway */
	}
	pthread_join(kw->thread, NULL);
	close(kw->wake[0]);
	close(kw->wake[1]);
	event_free(kw->deliver_ev);
	auth_cache_free(kw->pending);
	pthread_mutex_destroy(&kw->lock);
	free(kw->conninfo);
	free(kw);
}

void keywatch_set_refresh(struct keywatch *kw, int refresh_s)
{
	atomic_store(&kw->refresh_s, refresh_s);
}

void keywatch_poke(struct keywatch *kw)
{
	if (write(kw->wake[1], "r", 1) < 0) {
		/* already poked */
	}
}

void keywatch_note_used(struct keywatch *kw, long long key_id)
{
	pthread_mutex_lock(&kw->lock);
	for (int i = 0; i < kw->used_count; i++) {
		if (kw->used[i] == key_id) {
			pthread_mutex_unlock(&kw->lock);
			return;
		}
	}
	if (kw->used_count < KEYWATCH_USED_MAX)
		kw->used[kw->used_count++] = key_id;
	pthread_mutex_unlock(&kw->lock);
}

bool keywatch_connected(struct keywatch *kw)
{
	return atomic_load(&kw->connected);
}
