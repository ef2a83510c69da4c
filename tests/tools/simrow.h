/* A realistic fleet cost row for the sink tools: STT, LLM and TTS calls of
 * A agents across T tenants, costs in whole micro-dollars so sums are exact. */
#ifndef VG_SIMROW_H
#define VG_SIMROW_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vgsink.h"

struct simrow {
	vgsink_row row;
	char agent[32], tenant[32], session[48], meta[96];
	long long cost_micro; /* cost_usd in micro-dollars */
};

/* Fills r for the n-th row of thread t; rnd is the caller's xorshift state. */
static inline void simrow_make(struct simrow *r, int t, long long n, int agents, int tenants,
			       unsigned long long *rnd)
{
	static const char *const mod[] = { "stt", "llm", "tts" };
	static const char *const model[] = { "deepgram/nova-3", "openai/gpt-4o-mini",
					     "cartesia/sonic" };
	static const char *const prov[] = { "deepgram", "openai", "cartesia" };
	unsigned long long x = *rnd;
	int m = (int)(n % 3);

	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	*rnd = x;
	memset(&r->row, 0, sizeof(r->row));
	snprintf(r->agent, sizeof(r->agent), "agent-%d", (int)(x % (unsigned)agents));
	snprintf(r->tenant, sizeof(r->tenant), "tenant-%d", (int)((x >> 20) % (unsigned)tenants));
	snprintf(r->session, sizeof(r->session), "sess-%d-%lld", t, n / 20);
	snprintf(r->meta, sizeof(r->meta), "{\"region\":\"eu-west\",\"worker\":%d}", t);
	r->cost_micro = (long long)((x >> 8) % 5000) + 1;
	r->row.modality = mod[m];
	r->row.model_id = model[m];
	r->row.provider = prov[m];
	r->row.project = "fleet";
	r->row.input_units = (double)((x >> 16) % 4000);
	r->row.output_units = (double)((x >> 24) % 800);
	r->row.cost_usd = (double)r->cost_micro / 1e6;
	r->row.rated_price_usd = r->row.cost_usd;
	r->row.pricing_source = "catalog";
	r->row.rate_rule = "per_unit";
	r->row.ttfb_ms = (double)((x >> 32) % 900);
	r->row.total_latency_ms = NAN;
	r->row.status = (x >> 40) % 50 == 0 ? "error" : "success";
	r->row.metadata_json = r->meta;
	r->row.session_id = r->session;
	r->row.agent_id = r->agent;
	r->row.tenant_id = r->tenant;
	r->row.revision = "r1";
	r->row.turn_index = (int)(n % 20);
}

#endif
