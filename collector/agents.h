/* The fleet roster's HTTP API: POST /v1/agents/heartbeat (VoiceGateway's
 * presence contract, plus libvgsink's counters) and GET /v1/agents. */
#ifndef VGC_AGENTS_H
#define VGC_AGENTS_H

struct http_req;

void agents_handle_heartbeat(struct http_req *hr);
void agents_handle_list(struct http_req *hr);

#endif
