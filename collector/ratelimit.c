/* Token-bucket rate limiting keyed by API key id, in an open-addressing table
 * that grows as keys appear (there are few keys, so it never shrinks). */
#include "ratelimit.h"

#include <math.h>
#include <stdlib.h>

struct bucket {
	long long key_id; /* 0 = empty slot (ids start at 1) */
	double tokens;
	double updated;
};

struct ratelimit {
	struct bucket *slots;
	size_t cap, used;
};

struct ratelimit *ratelimit_new(void)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return NULL;
	rl->cap = 64;
	rl->slots = calloc(rl->cap, sizeof(*rl->slots));
	if (!rl->slots) {
		free(rl);
		return NULL;
	}
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->slots);
	free(rl);
}

static struct bucket *ratelimit_slot(struct bucket *slots, size_t cap, long long key_id)
{
	size_t i = (size_t)((unsigned long long)key_id * 0x9E3779B97F4A7C15ULL) & (cap - 1);

	while (slots[i].key_id && slots[i].key_id != key_id)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static bool ratelimit_grow(struct ratelimit *rl)
{
	size_t cap = rl->cap * 2;
	struct bucket *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return false;
	for (size_t i = 0; i < rl->cap; i++)
		if (rl->slots[i].key_id)
			*ratelimit_slot(slots, cap, rl->slots[i].key_id) = rl->slots[i];
	free(rl->slots);
	rl->slots = slots;
	rl->cap = cap;
	return true;
}

bool ratelimit_take(struct ratelimit *rl, long long key_id, double rate, double burst, double now,
		    int *retry_after_s)
{
	struct bucket *b;

	if (rate <= 0)
		return true;
	if (burst < 1)
		burst = 1;
	if (rl->used * 2 >= rl->cap && !ratelimit_grow(rl))
		return true; /* out of memory: fail open rather than refuse a fleet */
	b = ratelimit_slot(rl->slots, rl->cap, key_id);
	if (!b->key_id) {
		b->key_id = key_id;
		b->tokens = burst;
		b->updated = now;
		rl->used++;
	}
	b->tokens = fmin(burst, b->tokens + (now - b->updated) * rate);
	b->updated = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return true;
	}
	*retry_after_s = (int)ceil((1 - b->tokens) / rate);
	if (*retry_after_s < 1)
		*retry_after_s = 1;
	return false;
}
