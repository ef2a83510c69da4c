/* Clocks as double seconds: CLOCK_MONOTONIC for intervals, CLOCK_REALTIME for
 * timestamps. */
#include "clock.h"

#include <time.h>

static double clock_read(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double clock_monotonic(void)
{
	return clock_read(CLOCK_MONOTONIC);
}

double clock_epoch(void)
{
	return clock_read(CLOCK_REALTIME);
}
