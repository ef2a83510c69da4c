/* Serves the embedded dashboard. Assets are named in the HTML with their
 * content hash (?v=HASH), so they are cached for a year; the HTML itself is
 * revalidated on every load (no-cache + ETag), so an upgrade is seen at once.
 * Every answer, 404 included, carries the security headers. */
#include "web.h"

#include <event2/http.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* No inline script or style, nothing from another host; images may be data:
 * URIs (the favicon). The page calls only its own /v1/ API. */
#define WEB_CSP                                                                                    \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "         \
	"base-uri 'none'; form-action 'self'"

static void web_security_headers(struct http_req *hr)
{
	http_set_header(hr, "Content-Security-Policy", WEB_CSP);
	http_set_header(hr, "X-Content-Type-Options", "nosniff");
	http_set_header(hr, "Referrer-Policy", "no-referrer");
	http_set_header(hr, "X-Frame-Options", "DENY");
	http_set_header(hr, "Cross-Origin-Opener-Policy", "same-origin");
}

static const char *web_content_type(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (!dot)
		return "application/octet-stream";
	if (!strcmp(dot, ".html"))
		return "text/html; charset=utf-8";
	if (!strcmp(dot, ".js"))
		return "text/javascript; charset=utf-8";
	if (!strcmp(dot, ".css"))
		return "text/css; charset=utf-8";
	if (!strcmp(dot, ".svg"))
		return "image/svg+xml";
	if (!strcmp(dot, ".png"))
		return "image/png";
	return "application/octet-stream";
}

static const struct web_file *web_find(const char *name)
{
	for (int i = 0; i < web_files_count; i++)
		if (!strcmp(web_files[i].name, name))
			return &web_files[i];
	return NULL;
}

bool web_accepts_gzip(const char *ae)
{
	const char *p = ae;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *semi;
		size_t tok;
		bool refused = false;

		while (n && (*p == ' ' || *p == '\t'))
			p++, n--;
		semi = memchr(p, ';', n);
		tok = semi ? (size_t)(semi - p) : n;
		while (tok && (p[tok - 1] == ' ' || p[tok - 1] == '\t'))
			tok--;
		if (semi) {
			/* q=0, q=0.0, q=0.000: refused; anything else accepts. */
			const char *q = semi + 1, *stop = p + n;
			while (q < stop && (*q == ' ' || *q == '\t'))
				q++;
			if (stop - q >= 3 && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
				q += 2;
				refused = *q == '0';
				for (q++; refused && q < stop && *q != ' ' && *q != ';'; q++)
					refused = *q == '.' || *q == '0';
			}
		}
		if (!refused &&
		    ((tok == 4 && !strncasecmp(p, "gzip", 4)) || (tok == 1 && p[0] == '*')))
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* True when If-None-Match names etag (or is "*"). */
static bool web_not_modified(struct http_req *hr, const char *etag)
{
	const char *inm = http_header(hr, "If-None-Match");

	return inm && (strstr(inm, etag) || !strcmp(inm, "*"));
}

void web_handle(struct http_req *hr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *path = evhttp_uri_get_path(uri);
	const char *name = !strcmp(path, "/") ? "index.html" : path + strlen("/ui/");
	const struct web_file *f = web_find(name);
	bool html, gz;
	char etag[32];

	web_security_headers(hr);
	if (hr->srv->cfg.dashboard != CONFIG_ON) {
		http_reply_error(hr, 404,
				 "no such endpoint: %s (the dashboard is off: dashboard = off)",
				 path);
		return;
	}
	if (!f) {
		http_reply_error(hr, 404, "no such dashboard file: %s", path);
		return;
	}
	html = !strcmp(web_content_type(f->name), "text/html; charset=utf-8");
	gz = f->gzlen && f->gzlen < f->len && web_accepts_gzip(http_header(hr, "Accept-Encoding"));
	snprintf(etag, sizeof(etag), "\"%s%s\"", f->hash, gz ? "-gz" : "");
	http_set_header(hr, "ETag", etag);
	http_set_header(hr, "Cache-Control",
			html ? "no-cache" : "public, max-age=31536000, immutable");
	http_set_header(hr, "Vary", "Accept-Encoding");
	if (web_not_modified(hr, etag)) {
		http_reply(hr, 304, web_content_type(f->name), "", 0);
		return;
	}
	if (gz)
		http_set_header(hr, "Content-Encoding", "gzip");
	http_reply(hr, 200, web_content_type(f->name), gz ? f->gz : f->data,
		   gz ? f->gzlen : f->len);
}
