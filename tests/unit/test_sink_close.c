/* vgsink_close while the sender's connects keep failing: every connection is
 * released, including one freed while libevent still held a deferred
 * callback for it (the sanitizer build's LeakSanitizer checks this). */
#include <unistd.h>

#include "sinkrow.h"
#include "unit.h"

UNIT_TEST(sink_close_during_failing_connects_loses_no_row_count)
{
	vgsink_row row = sinkrow_minimal();
	int bad = 0;

	for (int i = 0; i < 500; i++) {
		vgsink_config cfg;
		vgsink_stats st;
		char err[512];
		vgsink *s;

		sinkrow_refused_config(&cfg);
		s = vgsink_open(&cfg, err, sizeof(err));
		CHECK_MSG(s != NULL, "%s", err);
		if (!s)
			return;
		CHECK(vgsink_record(s, &row) == 0);
		usleep((useconds_t)(i % 11) * 300); /* close at varied points of a retry */
		vgsink_stats_get(s, &st);
		bad += st.recorded != 1 || st.sent != 0;
		/* No spool: the row is unsent, and close says so. */
		bad += vgsink_close(s, 0) != -1;
	}
	CHECK_MSG(bad == 0, "%d of 500 closes misreported", bad);
}
