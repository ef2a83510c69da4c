/* Both ends of a sink-to-collector connection run with TCP_NODELAY: a batch
 * or a reply written in several pieces must not wait for a delayed ACK. The
 * collector's HTTP front and a real sink run in this process, so both sockets
 * can be inspected here. */
#include <arpa/inet.h>
#include <dirent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "sinkrow.h"
#include "unit.h"
#include "vgsink.h"

static int nodelay_requests;

static void nodelay_ingest(struct http_req *hr)
{
	nodelay_requests++;
	http_reply_json(hr, 200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":0,\"errors\":[]}");
}

static const struct http_route nodelay_routes[] = {
	{ "/v1/ingest", HTTP_POST, HTTP_OPEN, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY,
	  nodelay_ingest },
	{ NULL, 0, 0, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY, NULL },
};

static double nodelay_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Starts the HTTP front on a free loopback port; 0 when none would bind. */
static int nodelay_listen(struct server *srv)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t len = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		char listen[64], err[256];
		int port = 0;

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
			port = ntohs(a.sin_port);
		if (fd >= 0)
			close(fd);
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
		if (port && config_set(&srv->cfg, "listen", listen, "test", err, sizeof(err)) &&
		    http_routes_set(nodelay_routes, err, sizeof(err)) &&
		    http_start(srv, err, sizeof(err)))
			return port;
		/* Someone took the port between our close and the bind: another. */
		http_free(srv);
	}
	return 0;
}

/* The TCP_NODELAY of this process's sockets on either end of port: one whose
 * peer is the port (the sink's) and one whose local end is (the accepted). */
static void nodelay_of_sockets(int port, int *client, int *accepted)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	*client = *accepted = -1;
	while (d && (e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name), on = 0;
		struct sockaddr_in local, peer;
		socklen_t ll = sizeof(local), pl = sizeof(peer), ol = sizeof(on);
		struct stat st;

		if (e->d_name[0] == '.' || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
		    getsockname(fd, (struct sockaddr *)&local, &ll) != 0 ||
		    local.sin_family != AF_INET ||
		    getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 ||
		    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &ol) != 0)
			continue;
		if (ntohs(peer.sin_port) == port)
			*client = on;
		else if (ntohs(local.sin_port) == port)
			*accepted = on;
	}
	if (d)
		closedir(d);
}

UNIT_TEST(sink_and_collector_sockets_use_tcp_nodelay)
{
	struct server srv;
	struct auth_key key;
	struct auth_cache keys = { &key, 1 };
	vgsink_config cfg;
	vgsink *s = NULL;
	vgsink_row row;
	vgsink_stats st = { 0 };
	char url[64], err[512] = "";
	int port, client = -1, accepted = -1;
	double deadline;

	memset(&srv, 0, sizeof(srv));
	/* The front's gate reads no body without a known key: know the sink's. */
	memset(&key, 0, sizeof(key));
	auth_digest("k", key.digest);
	srv.keys = &keys;
	log_configure(LOG_LVL_WARN, LOG_FMT_LOGFMT); /* no "listening on" line in the output */
	srv.base = event_base_new();
	config_init(&srv.cfg);
	port = srv.base ? nodelay_listen(&srv) : 0;
	CHECK_MSG(port != 0, "the HTTP front did not start on any loopback port");
	if (port) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
		vgsink_config_init(&cfg);
		cfg.url = url;
		cfg.api_key = "k";
		cfg.batch_rows = 1; /* the first row goes out at once */
		s = vgsink_open(&cfg, err, sizeof(err));
		CHECK_MSG(s != NULL, "%s", err);
	}
	if (s) {
		row = sinkrow_minimal();
		CHECK(vgsink_record(s, &row) == 0);
		/* Once the request has arrived, the sink set its option long ago:
		 * it does so before the connection is even writable. */
		deadline = nodelay_now() + 10;
		while (nodelay_requests == 0 && nodelay_now() < deadline) {
			event_base_loop(srv.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
			usleep(1000);
		}
		CHECK_MSG(nodelay_requests == 1, "the collector saw %d requests", nodelay_requests);
		nodelay_of_sockets(port, &client, &accepted);
		CHECK_MSG(client == 1 && accepted == 1,
			  "TCP_NODELAY: sink socket %d, collector socket %d (-1: not found)",
			  client, accepted);
		/* Let the reply reach the sink before closing it. */
		while (st.sent == 0 && nodelay_now() < deadline) {
			event_base_loop(srv.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
			usleep(1000);
			vgsink_stats_get(s, &st);
		}
		CHECK_MSG(st.sent == 1, "the sink counted %llu rows sent",
			  (unsigned long long)st.sent);
		vgsink_close(s, 0);
	}
	http_free(&srv);
	config_free(&srv.cfg);
	if (srv.base)
		event_base_free(srv.base);
	log_configure(LOG_LVL_INFO, LOG_FMT_LOGFMT);
}
