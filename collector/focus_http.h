/* HTTP handlers of the FOCUS export and the billing periods:
 * GET /v1/export/focus, GET /v1/export/focus/manifest, GET /v1/periods and
 * POST /v1/periods/{YYYY-MM}/close|reopen. */
#ifndef VGC_FOCUS_HTTP_H
#define VGC_FOCUS_HTTP_H

#include "http.h"

void focus_http_handle_export(struct http_req *hr);
void focus_http_handle_manifest(struct http_req *hr);
void focus_http_handle_periods(struct http_req *hr);
void focus_http_handle_period_act(struct http_req *hr);

/* The billing account FOCUS names: focus_billing_account, else the host's
 * name. out needs 256 bytes. */
void focus_http_account(const char *configured, char *out, size_t outlen);

#endif
