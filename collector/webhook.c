/* Webhook delivery with evhttp's client. Each post gets its own connection
 * (evhttp_connection_base_bufferevent_new over a socket or OpenSSL
 * bufferevent), freed by libevent once the request completes, so a slow or
 * dead receiver holds only its own connection, bounded by timeout_s. */
#include "webhook.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct webhook_post {
	struct webhook *w;
	struct evhttp_connection *evcon;
	struct bufferevent *bev;
	webhook_done_fn done;
	void *arg;
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

void webhook_free(struct webhook *w)
{
	if (!w)
		return;
	while (w->posts) {
		struct webhook_post *p = w->posts;

		webhook_unlink(p);
		evhttp_connection_free(p->evcon); /* frees its request without callbacks */
		free(p);
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

void webhook_sign(const char *secret, const char *body, size_t len, char hex[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac,
	     &maclen);
	for (unsigned i = 0; i < maclen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	hex[64] = '\0';
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

/* The request finished (req NULL or without a status on failure). libevent
 * frees the connection after this returns (evhttp_connection_free_on_completion). */
static void webhook_on_done(struct evhttp_request *req, void *arg)
{
	struct webhook_post *p = arg;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	char why[512] = "";

	if (status == 0) {
		unsigned long e = p->bev ? bufferevent_get_openssl_error(p->bev) : 0;
		char tls[256] = "";

		if (e)
			ERR_error_string_n(e, tls, sizeof(tls));
		snprintf(why, sizeof(why), "%s%s%s",
			 p->failed ? webhook_error_name(p->error) : "no answer", tls[0] ? ": " : "",
			 tls);
	}
	webhook_unlink(p);
	p->done(p->arg, status, why);
	free(p);
}

/* Host without IPv6 brackets into out. */
static void webhook_host(const char *host, char *out, size_t outlen)
{
	size_t n = strlen(host);

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
		snprintf(out, outlen, "%.*s", (int)(n - 2), host + 1);
	else
		snprintf(out, outlen, "%s", host);
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

bool webhook_post(struct webhook *w, const char *url, const char *secret, const char *body,
		  const char *delivery, int timeout_s, webhook_done_fn done, void *arg, char *err,
		  size_t errlen)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	bool https = scheme && strcmp(scheme, "https") == 0;
	struct webhook_post *p = NULL;
	struct evhttp_request *req = NULL;
	struct evkeyvalq *h;
	char host[256], hosthdr[300], target[2100], sig[80], hex[65];
	int port;
	SSL *ssl = NULL;

	if (!u || !scheme || !evhttp_uri_get_host(u) || (!https && strcmp(scheme, "http") != 0)) {
		snprintf(err, errlen, "webhook \"%.64s\": not an http(s) URL", url);
		goto fail;
	}
	webhook_host(evhttp_uri_get_host(u), host, sizeof(host));
	port = evhttp_uri_get_port(u);
	if (port < 0)
		port = https ? 443 : 80;
	if (evhttp_uri_get_port(u) >= 0)
		snprintf(hosthdr, sizeof(hosthdr), "%s:%d", evhttp_uri_get_host(u), port);
	else
		snprintf(hosthdr, sizeof(hosthdr), "%s", evhttp_uri_get_host(u));
	snprintf(target, sizeof(target), "%s%s%s",
		 evhttp_uri_get_path(u) && evhttp_uri_get_path(u)[0] ? evhttp_uri_get_path(u) : "/",
		 evhttp_uri_get_query(u) ? "?" : "",
		 evhttp_uri_get_query(u) ? evhttp_uri_get_query(u) : "");
	if (!(p = calloc(1, sizeof(*p)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->w = w;
	p->done = done;
	p->arg = arg;
	if (https) {
		if (!(ssl = webhook_ssl(w, host))) {
			snprintf(err, errlen, "webhook %s: cannot set up TLS for host %s", url,
				 host);
			goto fail;
		}
		p->bev = bufferevent_openssl_socket_new(
			w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
			BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (p->bev)
			ssl = NULL; /* owned by the bufferevent now */
	} else {
		p->bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!p->bev || !(p->evcon = evhttp_connection_base_bufferevent_new(
				 w->base, w->dns, p->bev, host, (unsigned short)port))) {
		snprintf(err, errlen, "webhook %s: cannot create a connection", url);
		if (p->bev)
			bufferevent_free(p->bev);
		goto fail;
	}
	evhttp_connection_set_timeout(p->evcon, timeout_s);
	evhttp_connection_set_retries(p->evcon, 0);
	if (!(req = evhttp_request_new(webhook_on_done, p))) {
		snprintf(err, errlen, "out of memory");
		evhttp_connection_free(p->evcon);
		goto fail;
	}
	evhttp_request_set_error_cb(req, webhook_on_error);
	webhook_sign(secret, body, strlen(body), hex);
	snprintf(sig, sizeof(sig), "sha256=%s", hex);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", hosthdr);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "User-Agent", "vgcollector/" VGC_VERSION);
	evhttp_add_header(h, "X-Vgc-Delivery", delivery);
	evhttp_add_header(h, "X-Vgc-Signature", sig);
	evhttp_add_header(h, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	if (evhttp_make_request(p->evcon, req, EVHTTP_REQ_POST, target) != 0) {
		/* evhttp_make_request freed req. */
		snprintf(err, errlen, "webhook %s: cannot send the request", url);
		evhttp_connection_free(p->evcon);
		goto fail;
	}
	evhttp_connection_free_on_completion(p->evcon);
	p->next = w->posts;
	if (w->posts)
		w->posts->prev = p;
	w->posts = p;
	w->inflight++;
	evhttp_uri_free(u);
	return true;
fail:
	if (ssl)
		SSL_free(ssl);
	free(p);
	if (u)
		evhttp_uri_free(u);
	return false;
}
