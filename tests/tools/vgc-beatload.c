/* Heartbeat load for `make bench-roster`: a fleet of workers beating POST
 * /v1/agents/heartbeat at a fixed total rate over keep-alive HTTP/1.1
 * connections to 127.0.0.1, paced per connection, with one JSON line of
 * counts and latency percentiles at the end. Bounded: --conns connections,
 * --seconds of sending, then at most 10 s waiting for answers. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BEATLOAD_MAX_CONNS 1024
#define BEATLOAD_MAX_KEYS 64
#define BEATLOAD_IN_MAX 16384
#define BEATLOAD_DRAIN_S 10.0

/* Connection states: CONNECTING until writable, then IDLE (waiting for its
 * next due time) and BUSY (a request sent or being sent, its answer awaited). */
enum beatload_state { BEATLOAD_CONNECTING, BEATLOAD_IDLE, BEATLOAD_BUSY };

struct beatload_conn {
	int fd;
	int index; /* handles workers w with w % conns == index */
	enum beatload_state state;
	long long beats; /* beats sent on this connection so far */
	double due;	 /* monotonic seconds the next beat is due */
	double sent_at;
	char out[2048];
	size_t out_len, out_off;
	char in[BEATLOAD_IN_MAX];
	size_t in_len;
};

struct beatload {
	int port, conns, workers, nkeys, epfd;
	double rate, seconds, t0;
	char *keys[BEATLOAD_MAX_KEYS];
	struct beatload_conn *c;
	double *lat; /* ms per answered beat */
	size_t nlat, caplat;
	long long sent, ok, st429, st503, st_other, io_errors, reconnects;
	double late_max; /* seconds a beat was sent after it was due */
};

static double beatload_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool beatload_connect(struct beatload *b, struct beatload_conn *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)b->port) };
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
	int one = 1;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return false;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(c->fd);
		return false;
	}
	c->state = BEATLOAD_CONNECTING;
	c->in_len = 0;
	return epoll_ctl(b->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0;
}

/* After an error: drop the connection and open a new one; the beat in flight
 * counts as an I/O error. */
static void beatload_reconnect(struct beatload *b, struct beatload_conn *c)
{
	if (c->state == BEATLOAD_BUSY)
		b->io_errors++;
	epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	b->reconnects++;
	if (!beatload_connect(b, c)) {
		fprintf(stderr, "vgc-beatload: cannot reconnect: %s\n", strerror(errno));
		exit(2);
	}
}

/* The next beat of connection c into c->out: worker index + conns * k. */
static void beatload_build(struct beatload *b, struct beatload_conn *c)
{
	int per_conn = (b->workers - c->index + b->conns - 1) / b->conns;
	long long k = c->beats % per_conn, round = c->beats / per_conn;
	int w = c->index + (int)k * b->conns;
	char body[1024];
	int blen;
	struct timespec rt;

	clock_gettime(CLOCK_REALTIME, &rt);
	blen = snprintf(body, sizeof(body),
			"{\"agent_id\":\"w-%06d\",\"agent_name\":\"voice\",\"status\":\"%s\","
			"\"active_sessions\":%d,\"version\":\"0.13.0\",\"project\":\"p%d\","
			"\"region\":\"iad\",\"host\":\"h-%06d\",\"started_at\":1783200000,"
			"\"ts\":%lld.%03ld,\"sink\":{\"recorded\":%lld,\"sent\":%lld,\"dropped\":0,"
			"\"rejected\":0,\"queued\":0,\"spooled_rows\":0,\"spool_bytes\":0,"
			"\"last_error\":null}}",
			w, (w + round) % 3 ? "busy" : "idle", (int)((w + round) % 3), w % 7, w,
			(long long)rt.tv_sec, rt.tv_nsec / 1000000, 100 + round * 10,
			100 + round * 10);
	c->out_len =
		(size_t)snprintf(c->out, sizeof(c->out),
				 "POST /v1/agents/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				 "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
				 "Content-Length: %d\r\n\r\n%s",
				 b->keys[w % b->nkeys], blen, body);
	c->out_off = 0;
}

static void beatload_send(struct beatload *b, struct beatload_conn *c, double now)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	ssize_t n;

	if (c->state == BEATLOAD_IDLE) {
		beatload_build(b, c);
		if (now - c->due > b->late_max)
			b->late_max = now - c->due;
		c->sent_at = now;
		c->state = BEATLOAD_BUSY;
		c->beats++;
		b->sent++;
		c->due += b->conns / b->rate;
	}
	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev.events = EPOLLIN | EPOLLOUT;
			epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev);
			return;
		}
		if (n <= 0) {
			beatload_reconnect(b, c);
			return;
		}
		c->out_off += (size_t)n;
	}
	epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One whole answer at the start of c->in: its length, or 0 while incomplete. */
static size_t beatload_answer_len(struct beatload_conn *c, int *status, bool *close_after)
{
	char *end, *p;
	long clen = -1;

	c->in[c->in_len] = '\0';
	if (!(end = strstr(c->in, "\r\n\r\n")))
		return 0;
	*status = atoi(c->in + 9);
	*close_after = false;
	for (p = strstr(c->in, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
			clen = atol(p + 17);
		else if (strncasecmp(p + 2, "Connection: close", 17) == 0)
			*close_after = true;
	}
	if (clen < 0)
		clen = 0;
	if ((size_t)(end + 4 - c->in) + (size_t)clen > c->in_len)
		return 0;
	return (size_t)(end + 4 - c->in) + (size_t)clen;
}

static void beatload_read(struct beatload *b, struct beatload_conn *c, double now)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, BEATLOAD_IN_MAX - 1 - c->in_len, 0);
	size_t len;
	int status = 0;
	bool close_after;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0 || c->state != BEATLOAD_BUSY) {
		beatload_reconnect(b, c);
		return;
	}
	c->in_len += (size_t)n;
	if (!(len = beatload_answer_len(c, &status, &close_after))) {
		if (c->in_len >= BEATLOAD_IN_MAX - 1)
			beatload_reconnect(b, c);
		return;
	}
	if (b->nlat == b->caplat) {
		b->caplat = b->caplat ? b->caplat * 2 : 65536;
		if (!(b->lat = realloc(b->lat, b->caplat * sizeof(*b->lat)))) {
			fprintf(stderr, "vgc-beatload: out of memory\n");
			exit(2);
		}
	}
	b->lat[b->nlat++] = (now - c->sent_at) * 1000.0;
	if (status == 200)
		b->ok++;
	else if (status == 429)
		b->st429++;
	else if (status == 503)
		b->st503++;
	else
		b->st_other++;
	memmove(c->in, c->in + len, c->in_len - len);
	c->in_len -= len;
	c->state = BEATLOAD_IDLE;
	if (close_after) {
		c->state = BEATLOAD_IDLE;
		epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		b->reconnects++;
		if (!beatload_connect(b, c))
			exit(2);
	}
}

static int beatload_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double beatload_pct(const struct beatload *b, double p)
{
	size_t i;

	if (!b->nlat)
		return 0;
	i = (size_t)(p * (double)(b->nlat - 1));
	return b->lat[i];
}

static int beatload_keys(struct beatload *b, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[256];

	if (!f)
		return -1;
	while (b->nkeys < BEATLOAD_MAX_KEYS && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0])
			b->keys[b->nkeys++] = strdup(line);
	}
	fclose(f);
	return b->nkeys ? 0 : -1;
}

static void beatload_usage(void)
{
	fprintf(stderr,
		"usage: vgc-beatload --port P --keys FILE [--rate 6667] [--seconds 60]\n"
		"                    [--conns 64] [--workers 100000]\n"
		"Worker w (\"w-%%06d\", project \"p<w%%7>\") beats with key line w %% nkeys,\n"
		"on connection w %% conns.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct beatload b = { .rate = 6667, .seconds = 60, .conns = 64, .workers = 100000 };
	const char *keyfile = NULL;
	struct epoll_event evs[256];
	double end, now, stop_at;
	long long inflight;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			b.port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--keys"))
			keyfile = argv[i + 1];
		else if (!strcmp(argv[i], "--rate"))
			b.rate = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			b.seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--conns"))
			b.conns = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--workers"))
			b.workers = atoi(argv[i + 1]);
		else
			beatload_usage();
	}
	if (argc % 2 != 1 || !b.port || !keyfile || b.rate <= 0 || b.seconds <= 0 || b.conns < 1 ||
	    b.conns > BEATLOAD_MAX_CONNS || b.workers < b.conns)
		beatload_usage();
	if (beatload_keys(&b, keyfile) < 0) {
		fprintf(stderr, "vgc-beatload: no keys in %s\n", keyfile);
		return 2;
	}
	if ((b.epfd = epoll_create1(0)) < 0 || !(b.c = calloc((size_t)b.conns, sizeof(*b.c))))
		return 2;
	b.t0 = beatload_now();
	for (int i = 0; i < b.conns; i++) {
		b.c[i].index = i;
		/* Spread the connections' first beats over one pacing interval. */
		b.c[i].due = b.t0 + 0.2 + (double)i / b.rate;
		if (!beatload_connect(&b, &b.c[i])) {
			fprintf(stderr, "vgc-beatload: cannot connect: %s\n", strerror(errno));
			return 2;
		}
	}
	end = b.t0 + 0.2 + b.seconds;
	stop_at = end + BEATLOAD_DRAIN_S;
	for (;;) {
		double next = stop_at;
		int timeout_ms, n;

		now = beatload_now();
		inflight = 0;
		for (int i = 0; i < b.conns; i++) {
			struct beatload_conn *c = &b.c[i];

			if (c->state == BEATLOAD_IDLE && now < end && c->due <= now)
				beatload_send(&b, c, now);
			if (c->state == BEATLOAD_IDLE && c->due < next && now < end)
				next = c->due;
			inflight += c->state != BEATLOAD_IDLE;
		}
		if ((now >= end && inflight == 0) || now >= stop_at)
			break;
		timeout_ms = (int)((next - now) * 1000.0);
		if (timeout_ms < 0)
			timeout_ms = 0;
		if (timeout_ms > 100)
			timeout_ms = 100;
		n = epoll_wait(b.epfd, evs, 256, timeout_ms);
		now = beatload_now();
		for (int i = 0; i < n; i++) {
			struct beatload_conn *c = evs[i].data.ptr;

			if (c->state == BEATLOAD_CONNECTING) {
				int e = 0;
				socklen_t el = sizeof(e);
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
				if (e) {
					fprintf(stderr, "vgc-beatload: connect: %s\n", strerror(e));
					return 2;
				}
				c->state = BEATLOAD_IDLE;
				epoll_ctl(b.epfd, EPOLL_CTL_MOD, c->fd, &ev);
				continue;
			}
			if (evs[i].events & EPOLLOUT && c->state == BEATLOAD_BUSY)
				beatload_send(&b, c, now);
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				beatload_read(&b, c, now);
		}
	}
	now = beatload_now();
	qsort(b.lat, b.nlat, sizeof(*b.lat), beatload_cmp);
	printf("{\"sent\":%lld,\"answered\":%zu,\"ok\":%lld,\"status_429\":%lld,"
	       "\"status_503\":%lld,\"status_other\":%lld,\"io_errors\":%lld,"
	       "\"unanswered\":%lld,\"reconnects\":%lld,\"seconds\":%.3f,\"beats_per_s\":%.1f,"
	       "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"late_max_ms\":%.1f}\n",
	       b.sent, b.nlat, b.ok, b.st429, b.st503, b.st_other, b.io_errors, inflight,
	       b.reconnects, b.seconds, (double)b.ok / b.seconds, beatload_pct(&b, 0.50),
	       beatload_pct(&b, 0.99), b.nlat ? b.lat[b.nlat - 1] : 0.0, b.late_max * 1000.0);
	for (int i = 0; i < b.conns; i++)
		close(b.c[i].fd);
	for (int i = 0; i < b.nkeys; i++)
		free(b.keys[i]);
	free(b.c);
	free(b.lat);
	return 0;
}
