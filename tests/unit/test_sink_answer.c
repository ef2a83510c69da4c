/* What libvgsink does with each HTTP answer: only the client's own faults
 * (400, 401, 403, 404, 415, and 413 for a single row) are permanent; a 500 or
 * any unlisted status is retried, never a rejection. */
#include "sink_int.h"
#include "unit.h"

UNIT_TEST(sink_retries_500_and_unlisted_5xx_and_rejects_only_client_faults)
{
	static const struct {
		int status;
		enum sink_answer want;
	} cases[] = {
		{ 200, SINK_ANSWER_STORED }, { 0, SINK_ANSWER_RETRY },
		{ 408, SINK_ANSWER_RETRY },  { 429, SINK_ANSWER_RETRY },
		{ 500, SINK_ANSWER_RETRY },  { 501, SINK_ANSWER_RETRY },
		{ 502, SINK_ANSWER_RETRY },  { 503, SINK_ANSWER_RETRY },
		{ 504, SINK_ANSWER_RETRY },  { 507, SINK_ANSWER_RETRY },
		{ 599, SINK_ANSWER_RETRY },  { 302, SINK_ANSWER_RETRY },
		{ 409, SINK_ANSWER_RETRY },  { 400, SINK_ANSWER_REJECT },
		{ 401, SINK_ANSWER_REJECT }, { 403, SINK_ANSWER_REJECT },
		{ 404, SINK_ANSWER_REJECT }, { 415, SINK_ANSWER_REJECT },
		{ 413, SINK_ANSWER_SPLIT },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_MSG(sink_answer_of(cases[i].status) == cases[i].want,
			  "HTTP %d: got %d want %d", cases[i].status,
			  (int)sink_answer_of(cases[i].status), (int)cases[i].want);
}
