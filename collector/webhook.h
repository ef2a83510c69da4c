/* Webhook delivery: one signed POST per call, with libevent's HTTP client on
 * the loop, over plain HTTP or verified HTTPS (certificate and host name).
 * Loop thread only; nothing here blocks. */
#ifndef VGC_WEBHOOK_H
#define VGC_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct webhook;
struct webhook_post;

/* Called once per post on the loop: status is the HTTP status, 0 when none
 * came back (err says why). The post is freed after it returns. */
typedef void (*webhook_done_fn)(void *arg, int status, const char *err);

/* ca_file "" uses the system's trust store. */
struct webhook *webhook_new(struct event_base *base, const char *ca_file, char *err, size_t errlen);
/* Cancels every post still running (no callbacks) and frees w. */
void webhook_free(struct webhook *w);

/* hex gets the lower-case hex HMAC-SHA256 of body under secret (65 bytes). */
void webhook_sign(const char *secret, const char *body, size_t len, char hex[65]);

/* POSTs body to url with Content-Type application/json, X-Vgc-Delivery:
 * delivery and X-Vgc-Signature: sha256=<webhook_sign>. timeout_s bounds the
 * connect and each read and write. False (done not called) when the post
 * could not start. */
bool webhook_post(struct webhook *w, const char *url, const char *secret, const char *body,
		  const char *delivery, int timeout_s, webhook_done_fn done, void *arg, char *err,
		  size_t errlen) __attribute__((warn_unused_result));

/* Posts started and not yet done. */
int webhook_inflight(const struct webhook *w);

#endif
