/* The budgets API: GET /v1/budgets (read or admin, scoped by the key, with an
 * ETag), PUT and DELETE /v1/budgets/{name} (admin). Loop thread; the database
 * work runs on the pool. */
#ifndef VGC_BUDGET_HTTP_H
#define VGC_BUDGET_HTTP_H

#include "vgcollector.h"

void budget_http_handle_list(struct http_req *hr);
/* PUT or DELETE on /v1/budgets/{name}. */
void budget_http_handle_one(struct http_req *hr);

#endif
