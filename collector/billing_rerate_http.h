/* Re-rating over HTTP: POST /v1/billing/rerate and GET /v1/billing/rerates
 * (see billing_rerate.h). */
#ifndef VGC_BILLING_RERATE_HTTP_H
#define VGC_BILLING_RERATE_HTTP_H

struct http_req;

/* POST /v1/billing/rerate: unscoped admin key; answers {"run","dry_run","tenants"}. */
void billing_rerate_http_run(struct http_req *hr);
/* GET /v1/billing/rerates: unscoped keys; {"runs":[...]} newest first. */
void billing_rerate_http_list(struct http_req *hr);

#endif
