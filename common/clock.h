/* Clocks, shared by the collector and libvgsink: monotonic seconds for
 * durations and deadlines, epoch seconds for timestamps. */
#ifndef VG_CLOCK_H
#define VG_CLOCK_H

/* Seconds since an arbitrary fixed point; never goes backwards. */
double clock_monotonic(void);
/* Seconds since 1970-01-01 UTC, with a fraction (wall clock, may jump). */
double clock_epoch(void);

#endif
