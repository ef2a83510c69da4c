/* For the sink's unit tests: the smallest row vgsink_record accepts (an LLM
 * call costing $0.25, no latencies, no turn index), a config whose
 * collector refuses every connect while the sender retries every 1-2 ms, and
 * a sink whose rows stay queued. */
#ifndef VG_UNIT_SINKROW_H
#define VG_UNIT_SINKROW_H

#include <math.h>
#include <string.h>

#include "vgsink.h"

static inline vgsink_row sinkrow_minimal(void)
{
	vgsink_row r;

	memset(&r, 0, sizeof(r));
	r.modality = "llm";
	r.ttfb_ms = r.total_latency_ms = NAN;
	r.turn_index = -1;
	r.cost_usd = 0.25;
	return r;
}

static inline void sinkrow_refused_config(vgsink_config *cfg)
{
	vgsink_config_init(cfg);
	cfg->url = "http://127.0.0.1:9"; /* nothing listens: refused at once */
	cfg->api_key = "k";
	cfg->batch_rows = 1; /* each row is sent, and fails, on its own */
	cfg->retry_initial_ms = 1;
	cfg->retry_max_ms = 2;
}

/* A sink whose rows stay queued: nothing listens on port 9 and it flushes
 * only hourly. NULL, with err, when it cannot open. */
static inline vgsink *sinkrow_open_unsent(char *err, size_t errlen)
{
	vgsink_config cfg;

	vgsink_config_init(&cfg);
	cfg.url = "http://127.0.0.1:9";
	cfg.api_key = "k";
	cfg.flush_interval_ms = 3600000;
	return vgsink_open(&cfg, err, errlen);
}

#endif
