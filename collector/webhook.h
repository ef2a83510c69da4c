/* Webhook delivery: one signed POST per call, with libevent's HTTP client on
 * the loop, over plain HTTP or verified HTTPS (certificate and host name).
 * The host is resolved here (evdns), every address it has is checked against
 * webhook_allow / webhook_deny (webhook_policy.c), and the post connects to
 * the checked address. Loop thread only; nothing here blocks. */
#ifndef VGC_WEBHOOK_H
#define VGC_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct webhook;
struct webhook_post;

/* The status a done callback gets when the policy refused the receiver's
 * address: nothing was sent, and retrying the same URL cannot help. */
#define WEBHOOK_REFUSED (-1)

/* Called once per post on the loop, never from inside webhook_post: status
 * is the HTTP status, 0 when none came back, or WEBHOOK_REFUSED; err says
 * why when it is not an HTTP status. The post is freed after it returns. */
typedef void (*webhook_done_fn)(void *arg, int status, const char *err);

/* What one post may do; the strings are copied or compiled by webhook_post. */
struct webhook_opts {
	int timeout_s;		 /* the whole post: resolve, connect, send, answer */
	size_t max_answer_bytes; /* the answer's status line and headers */
	const char *allow;	 /* webhook_allow */
	const char *deny;	 /* webhook_deny */
};

/* ca_file "" uses the system's trust store. */
struct webhook *webhook_new(struct event_base *base, const char *ca_file, char *err, size_t errlen);
/* Cancels every post still running (no callbacks) and frees w. Call once the
 * loop has stopped: a name lookup still running is abandoned. */
void webhook_free(struct webhook *w);

/* hex gets the lower-case hex HMAC-SHA256 under secret of the text
 * "<delivery>.<timestamp>.<body>" (65 bytes). False only when OpenSSL fails. */
bool webhook_sign(const char *secret, const char *delivery, long long timestamp, const char *body,
		  size_t len, char hex[65]) __attribute__((warn_unused_result));

/* POSTs body to url with Content-Type application/json, X-Vgc-Delivery:
 * delivery, X-Vgc-Timestamp: the Unix time now and X-Vgc-Signature:
 * sha256=<webhook_sign>. Only the answer's status is read: its headers are
 * capped at o->max_answer_bytes and its body is never read. The whole post
 * ends within o->timeout_s. False (done not called) when the post could not
 * start (a bad URL, out of memory). */
bool webhook_post(struct webhook *w, const char *url, const char *secret, const char *body,
		  const char *delivery, const struct webhook_opts *o, webhook_done_fn done,
		  void *arg, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Posts started and not yet done. */
int webhook_inflight(const struct webhook *w);

#endif
