/* POST /v1/ingest and POST /v1/ingest/turns: the loop-side handlers. */
#ifndef VGC_INGEST_H
#define VGC_INGEST_H

#include "vgcollector.h"

void ingest_handle(struct http_req *hr);
void ingest_handle_turns(struct http_req *hr);

#endif
