/* The smallest row vgsink_record accepts, for the sink's unit tests: an LLM
 * call costing $0.25, with no latencies and no turn index. */
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

#endif
