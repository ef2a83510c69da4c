/* Per-key token buckets for ingest and reads. Loop thread only. */
#ifndef VGC_RATELIMIT_H
#define VGC_RATELIMIT_H

#include <stdbool.h>

struct ratelimit;

struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit *rl);
/* Takes one token for key_id at time now (seconds). When the bucket is empty,
 * returns false and sets *retry_after_s to the whole seconds until a token. */
bool ratelimit_take(struct ratelimit *rl, long long key_id, double rate, double burst, double now,
		    int *retry_after_s);

#endif
