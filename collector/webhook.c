/* Webhook delivery with evhttp's client. Each post resolves its host, checks
 * every address against the policy, and gets its own connection to the
 * checked address (evhttp_connection_base_bufferevent_new over a socket or
 * OpenSSL bufferevent), freed by libevent once the request completes; a slow
 * or dead receiver holds only its own connection, for timeout_s in all. */
#include "webhook.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "webhook_policy.h"

/* A post goes RESOLVING (evdns lookup running; dns_req set, or NULL while
 * the lookup answers synchronously) -> REQUESTING (evcon owns req) -> done;
 * any failure before REQUESTING moves it to FINISHING, where the timer fires
 * at once so that done never runs inside webhook_post. The timer is the
 * post's deadline otherwise. */
enum webhook_state { WEBHOOK_RESOLVING, WEBHOOK_REQUESTING, WEBHOOK_FINISHING };

struct webhook_post {
	struct webhook *w;
	enum webhook_state state;
	struct evdns_getaddrinfo_request *dns_req; /* RESOLVING */
	struct evhttp_connection *evcon;	   /* REQUESTING; freed by libevent */
	struct evhttp_request *req;		   /* ours until handed to evcon */
	struct bufferevent *bev;
	struct event *timer; /* the deadline, or "finish now" in FINISHING */
	struct webhook_policy *policy;
	webhook_done_fn done;
	void *arg;
	char *url, *host, *target; /* host: the URL's, without brackets */
	int port;
	bool https;
	int timeout_s;
	size_t max_answer;
	bool timed_out;			 /* the deadline passed while resolving */
	int status;			 /* the answer's, once its headers arrived */
	int finish_status;		 /* FINISHING */
	char finish_why[512];		 /* FINISHING */
	enum evhttp_request_error error; /* set by the error callback */
	bool failed;
	struct webhook_post *prev, *next; /* w->posts */
};

struct webhook {
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *tls;
	struct webhook_post *posts; /* running posts; owned here */
	int inflight;
};

struct webhook *webhook_new(struct event_base *base, const char *ca_file, char *err, size_t errlen)
{
	struct webhook *w = calloc(1, sizeof(*w));

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->base = base;
	/* Names resolve through evdns, never a blocking getaddrinfo on the loop. */
	w->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					      EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!w->dns && (w->dns = evdns_base_new(base, 0)))
		evdns_base_load_hosts(w->dns, NULL);
	w->tls = SSL_CTX_new(TLS_client_method());
	if (!w->dns || !w->tls || !SSL_CTX_set_min_proto_version(w->tls, TLS1_2_VERSION) ||
	    !(ca_file && ca_file[0] ? SSL_CTX_load_verify_locations(w->tls, ca_file, NULL)
				    : SSL_CTX_set_default_verify_paths(w->tls))) {
		unsigned long e = ERR_get_error();

		snprintf(err, errlen, "webhook client: %s%s%s",
			 ca_file && ca_file[0] ? "cannot load webhook_ca_file "
					       : "cannot set up TLS",
			 ca_file && ca_file[0] ? ca_file : "",
			 e ? ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "" : "");
		webhook_free(w);
		return NULL;
	}
	SSL_CTX_set_verify(w->tls, SSL_VERIFY_PEER, NULL);
	return w;
}

static void webhook_unlink(struct webhook_post *p)
{
	struct webhook *w = p->w;

	if (p->prev)
		p->prev->next = p->next;
	else
		w->posts = p->next;
	if (p->next)
		p->next->prev = p->prev;
	w->inflight--;
}

static void webhook_post_free(struct webhook_post *p)
{
	if (p->timer)
		event_free(p->timer);
	if (p->req)
		evhttp_request_free(p->req);
	webhook_policy_free(p->policy);
	free(p->url);
	free(p->host);
	free(p->target);
	free(p);
}

void webhook_free(struct webhook *w)
{
	if (!w)
		return;
	while (w->posts) {
		struct webhook_post *p = w->posts;

		webhook_unlink(p);
		if (p->state == WEBHOOK_REQUESTING)
			evhttp_connection_free(p->evcon); /* frees its request without callbacks */
		webhook_post_free(p);
	}
	if (w->dns)
		evdns_base_free(w->dns, 0);
	if (w->tls)
		SSL_CTX_free(w->tls);
	free(w);
}

int webhook_inflight(const struct webhook *w)
{
	return w ? w->inflight : 0;
}

bool webhook_sign(const char *secret, const char *delivery, long long timestamp, const char *body,
		  size_t len, char hex[65])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
								 (char *)"SHA256", 0),
				OSSL_PARAM_construct_end() };
	unsigned char out[EVP_MAX_MD_SIZE];
	char ts[32];
	size_t outlen = 0;
	bool ok;

	snprintf(ts, sizeof(ts), ".%lld.", timestamp);
	ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) == 1 &&
	     EVP_MAC_update(ctx, (const unsigned char *)delivery, strlen(delivery)) == 1 &&
	     EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) == 1 &&
	     EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1 &&
	     EVP_MAC_final(ctx, out, &outlen, sizeof(out)) == 1 && outlen == 32;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	hex[0] = '\0';
	for (size_t i = 0; ok && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", out[i]);
	return ok;
}

/* Unlinks p, tells its owner and frees it. */
static void webhook_finish(struct webhook_post *p, int status, const char *why)
{
	webhook_unlink(p);
	p->done(p->arg, status, why);
	webhook_post_free(p);
}

/* Ends p on the loop's next turn (never inside webhook_post). */
static void webhook_fail_soon(struct webhook_post *p, int status, const char *why)
{
	struct timeval now = { 0, 0 };

	p->state = WEBHOOK_FINISHING;
	p->finish_status = status;
	snprintf(p->finish_why, sizeof(p->finish_why), "%s", why);
	evtimer_add(p->timer, &now);
}

static const char *webhook_error_name(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT: return "timed out";
	case EVREQ_HTTP_EOF: return "connection closed before an answer";
	case EVREQ_HTTP_INVALID_HEADER: return "invalid answer";
	case EVREQ_HTTP_BUFFER_ERROR: return "connection failed";
	case EVREQ_HTTP_REQUEST_CANCEL: return "cancelled";
	case EVREQ_HTTP_DATA_TOO_LONG: return "answer too long";
	}
	return "failed";
}

static void webhook_on_error(enum evhttp_request_error e, void *arg)
{
	struct webhook_post *p = arg;

	p->failed = true;
	p->error = e;
}

/* The answer's status line and headers are in: that is all a delivery needs.
 * A negative return closes the connection without reading the body (libevent
 * then calls webhook_on_done with no request). */
static int webhook_on_header(struct evhttp_request *req, void *arg)
{
	struct webhook_post *p = arg;
	int status = evhttp_request_get_response_code(req);

	if (status >= 100 && status < 200)
		return 0; /* an interim answer; the final one follows */
	p->status = status;
	return -1;
}

/* The request finished (req NULL or without a status on failure). libevent
 * frees the connection after this returns (evhttp_connection_free_on_completion). */
static void webhook_on_done(struct evhttp_request *req, void *arg)
{
	struct webhook_post *p = arg;
	int status = p->status ? p->status : req ? evhttp_request_get_response_code(req) : 0;
	char why[512] = "";

	if (status == 0) {
		unsigned long e = p->bev ? bufferevent_get_openssl_error(p->bev) : 0;
		char tls[256] = "";

		if (e)
			ERR_error_string_n(e, tls, sizeof(tls));
		if (p->failed && p->error == EVREQ_HTTP_INVALID_HEADER)
			snprintf(why, sizeof(why),
				 "invalid answer: a malformed status line or headers, or more "
				 "than %zu bytes of them (webhook_max_answer_bytes)",
				 p->max_answer);
		else
			snprintf(why, sizeof(why), "%s%s%s",
				 p->failed ? webhook_error_name(p->error) : "no answer",
				 tls[0] ? ": " : "", tls);
	}
	webhook_finish(p, status, why);
}

/* The deadline, or FINISHING's "now". */
static void webhook_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_post *p = arg;
	char why[256];

	switch (p->state) {
	case WEBHOOK_FINISHING: webhook_finish(p, p->finish_status, p->finish_why); return;
	case WEBHOOK_RESOLVING:
		/* The lookup's callback runs once more (cancelled) and finishes p. */
		p->timed_out = true;
		if (p->dns_req)
			evdns_getaddrinfo_cancel(p->dns_req);
		return;
	case WEBHOOK_REQUESTING:
		evhttp_connection_free(p->evcon); /* frees the request without callbacks */
		p->evcon = NULL;
		snprintf(why, sizeof(why),
			 "timed out: no answer within %d s in all (webhook_timeout_s)",
			 p->timeout_s);
		webhook_finish(p, 0, why);
		return;
	}
}

/* Host without IPv6 brackets into out; false when it does not fit. */
static bool webhook_host(const char *host, char *out, size_t outlen)
{
	size_t n = strlen(host);

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
		return snprintf(out, outlen, "%.*s", (int)(n - 2), host + 1) < (int)outlen;
	return snprintf(out, outlen, "%s", host) < (int)outlen;
}

/* An SSL for host with certificate and host name (or IP) verification. */
static SSL *webhook_ssl(struct webhook *w, const char *host)
{
	SSL *ssl = SSL_new(w->tls);
	X509_VERIFY_PARAM *vp;
	unsigned char ip[16];
	bool is_ip;

	if (!ssl)
		return NULL;
	is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	vp = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(vp, host)
		  : !SSL_set_tlsext_host_name(ssl, host) || !SSL_set1_host(ssl, host)) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* Connects to sa, the address the policy checked, and sends p->req. The URL's
 * host stays the Host header and the name TLS verifies. */
static void webhook_connect(struct webhook_post *p, const struct sockaddr *sa)
{
	struct webhook *w = p->w;
	char addr[INET6_ADDRSTRLEN], why[512];
	const void *a = sa->sa_family == AF_INET
				? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
				: (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	SSL *ssl = NULL;

	if (!inet_ntop(sa->sa_family, a, addr, sizeof(addr))) {
		webhook_fail_soon(p, 0, "cannot format the receiver's address");
		return;
	}
	if (p->https) {
		if (!(ssl = webhook_ssl(w, p->host))) {
			snprintf(why, sizeof(why), "cannot set up TLS for host %s", p->host);
			webhook_fail_soon(p, 0, why);
			return;
		}
		p->bev = bufferevent_openssl_socket_new(
			w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
			BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (!p->bev)
			SSL_free(ssl); /* else the bufferevent owns it */
	} else {
		p->bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!p->bev || !(p->evcon = evhttp_connection_base_bufferevent_new(
				 w->base, w->dns, p->bev, addr, (unsigned short)p->port))) {
		if (p->bev)
			bufferevent_free(p->bev);
		p->bev = NULL;
		webhook_fail_soon(p, 0, "cannot create a connection");
		return;
	}
	evhttp_connection_set_family(p->evcon, sa->sa_family);
	evhttp_connection_set_timeout(p->evcon, p->timeout_s);
	evhttp_connection_set_retries(p->evcon, 0);
	evhttp_connection_set_max_headers_size(p->evcon, p->max_answer);
	evhttp_connection_set_max_body_size(p->evcon, p->max_answer);
	if (evhttp_make_request(p->evcon, p->req, EVHTTP_REQ_POST, p->target) != 0) {
		p->req = NULL; /* evhttp_make_request freed it */
		evhttp_connection_free(p->evcon);
		p->evcon = NULL;
		p->bev = NULL;
		webhook_fail_soon(p, 0, "cannot send the request");
		return;
	}
	p->req = NULL;
	evhttp_connection_free_on_completion(p->evcon);
	p->state = WEBHOOK_REQUESTING;
}

/* Every address must pass the policy (a name that also resolves to a denied
 * address is refused whole); the post then connects to the first IPv4
 * address, else the first IPv6 one. */
static void webhook_check_and_connect(struct webhook_post *p, const struct evutil_addrinfo *ai)
{
	const struct sockaddr *pick = NULL;
	char why[512];

	for (; ai; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (!webhook_policy_allows(p->policy, p->host, ai->ai_addr, why, sizeof(why))) {
			webhook_fail_soon(p, WEBHOOK_REFUSED, why);
			return;
		}
		if (!pick || (pick->sa_family != AF_INET && ai->ai_family == AF_INET))
			pick = ai->ai_addr;
	}
	if (!pick) {
		snprintf(why, sizeof(why), "host %s has no IPv4 or IPv6 address", p->host);
		webhook_fail_soon(p, 0, why);
		return;
	}
	webhook_connect(p, pick);
}

static void webhook_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct webhook_post *p = arg;
	char why[512];

	p->dns_req = NULL;
	if (p->timed_out) {
		/* The deadline cancelled the lookup; this runs from the loop. */
		if (res)
			evutil_freeaddrinfo(res);
		snprintf(why, sizeof(why),
			 "timed out: host %s not resolved within %d s (webhook_timeout_s)", p->host,
			 p->timeout_s);
		webhook_finish(p, 0, why);
		return;
	}
	if (result != 0) {
		snprintf(why, sizeof(why), "cannot resolve host %s: %s", p->host,
			 evutil_gai_strerror(result));
		webhook_fail_soon(p, 0, why);
	} else {
		webhook_check_and_connect(p, res);
	}
	if (res)
		evutil_freeaddrinfo(res);
}

/* The request, signed and with every header, kept in p until connected. */
static bool webhook_request(struct webhook_post *p, const char *url, const char *hosthdr,
			    const char *secret, const char *body, const char *delivery, char *err,
			    size_t errlen)
{
	long long now = (long long)time(NULL);
	char sig[80], hex[65], ts[32];
	struct evkeyvalq *h;

	if (!webhook_sign(secret, delivery, now, body, strlen(body), hex)) {
		snprintf(err, errlen, "webhook %s: cannot compute the signature", url);
		return false;
	}
	if (!(p->req = evhttp_request_new(webhook_on_done, p))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	evhttp_request_set_error_cb(p->req, webhook_on_error);
	evhttp_request_set_header_cb(p->req, webhook_on_header);
	snprintf(sig, sizeof(sig), "sha256=%s", hex);
	snprintf(ts, sizeof(ts), "%lld", now);
	h = evhttp_request_get_output_headers(p->req);
	if (evhttp_add_header(h, "Host", hosthdr) ||
	    evhttp_add_header(h, "Content-Type", "application/json") ||
	    evhttp_add_header(h, "User-Agent", "vgcollector/" VGC_VERSION) ||
	    evhttp_add_header(h, "X-Vgc-Delivery", delivery) ||
	    evhttp_add_header(h, "X-Vgc-Timestamp", ts) ||
	    evhttp_add_header(h, "X-Vgc-Signature", sig) ||
	    evhttp_add_header(h, "Connection", "close") ||
	    evbuffer_add(evhttp_request_get_output_buffer(p->req), body, strlen(body))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	return true;
}

bool webhook_post(struct webhook *w, const char *url, const char *secret, const char *body,
		  const char *delivery, const struct webhook_opts *o, webhook_done_fn done,
		  void *arg, char *err, size_t errlen)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	struct webhook_post *p = NULL;
	char host[256], hosthdr[300], target[2100];
	struct timeval deadline = { o->timeout_s, 0 };
	struct evutil_addrinfo hints;
	struct sockaddr_storage lit;
	struct evdns_getaddrinfo_request *dr;

	if (!u || !scheme || !evhttp_uri_get_host(u) ||
	    (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
		snprintf(err, errlen, "webhook \"%.64s\": not an http(s) URL", url);
		goto fail;
	}
	if (!(p = calloc(1, sizeof(*p)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->w = w;
	p->done = done;
	p->arg = arg;
	p->https = strcmp(scheme, "https") == 0;
	p->timeout_s = o->timeout_s;
	p->max_answer = o->max_answer_bytes;
	if (!webhook_host(evhttp_uri_get_host(u), host, sizeof(host))) {
		snprintf(err, errlen, "webhook \"%.64s\": host name too long", url);
		goto fail;
	}
	p->port = evhttp_uri_get_port(u);
	if (p->port < 0)
		p->port = p->https ? 443 : 80;
	if (evhttp_uri_get_port(u) >= 0)
		snprintf(hosthdr, sizeof(hosthdr), "%s:%d", evhttp_uri_get_host(u), p->port);
	else
		snprintf(hosthdr, sizeof(hosthdr), "%s", evhttp_uri_get_host(u));
	snprintf(target, sizeof(target), "%s%s%s",
		 evhttp_uri_get_path(u) && evhttp_uri_get_path(u)[0] ? evhttp_uri_get_path(u) : "/",
		 evhttp_uri_get_query(u) ? "?" : "",
		 evhttp_uri_get_query(u) ? evhttp_uri_get_query(u) : "");
	if (!(p->url = strdup(url)) || !(p->host = strdup(host)) || !(p->target = strdup(target)) ||
	    !(p->timer = evtimer_new(w->base, webhook_on_timer, p))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!(p->policy = webhook_policy_new(o->allow, o->deny, err, errlen)) ||
	    !webhook_request(p, url, hosthdr, secret, body, delivery, err, errlen))
		goto fail;
	evhttp_uri_free(u);
	u = NULL;
	evtimer_add(p->timer, &deadline);
	p->next = w->posts;
	if (w->posts)
		w->posts->prev = p;
	w->posts = p;
	w->inflight++;
	/* From here on every outcome reaches done, from the loop. */
	p->state = WEBHOOK_RESOLVING;
	if (webhook_policy_literal(host, &lit)) {
		struct evutil_addrinfo one = { 0 };

		one.ai_family = lit.ss_family;
		one.ai_addr = (struct sockaddr *)&lit;
		webhook_check_and_connect(p, &one);
		return true;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* The callback may run before this returns (an /etc/hosts name). */
	dr = evdns_getaddrinfo(w->dns, host, NULL, &hints, webhook_on_resolved, p);
	if (dr && p->state == WEBHOOK_RESOLVING)
		p->dns_req = dr;
	return true;
fail:
	if (p)
		webhook_post_free(p);
	if (u)
		evhttp_uri_free(u);
	return false;
}
