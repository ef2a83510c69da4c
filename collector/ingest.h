/* POST /v1/ingest, POST /v1/ingest/turns and POST /v1/traces (OTLP/HTTP):
 * the loop-side handlers. */
#ifndef VGC_INGEST_H
#define VGC_INGEST_H

#include "vgcollector.h"

void ingest_handle(struct http_req *hr);
void ingest_handle_turns(struct http_req *hr);
void ingest_handle_traces(struct http_req *hr);

#endif
