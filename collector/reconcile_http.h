/* POST /v1/reconcile: the HTTP form of `vgcollector reconcile`. */
#ifndef VGC_RECONCILE_HTTP_H
#define VGC_RECONCILE_HTTP_H

#include "vgcollector.h"

/* Answers with the JSON report (reconcile_render_json); read or admin keys,
 * a scoped key confined to its tenant and project. */
void reconcile_http_handle(struct http_req *hr);

#endif
