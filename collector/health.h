/* GET /healthz, /readyz, /metrics and /v1/whoami. */
#ifndef VGC_HEALTH_H
#define VGC_HEALTH_H

#include "vgcollector.h"

void health_handle_healthz(struct http_req *hr);
void health_handle_readyz(struct http_req *hr);
void health_handle_metrics(struct http_req *hr);
/* GET /v1/whoami: the calling key's id, prefix, role and scope. */
void health_handle_whoami(struct http_req *hr);

#endif
