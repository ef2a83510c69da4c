/* GET /healthz, /readyz and /metrics. */
#ifndef VGC_HEALTH_H
#define VGC_HEALTH_H

#include "vgcollector.h"

void health_handle_healthz(struct http_req *hr);
void health_handle_readyz(struct http_req *hr);
void health_handle_metrics(struct http_req *hr);

#endif
