/* The roster's beat buffer: a beat of a worker already in the roster is kept
 * in memory and answered at once, and every agents_flush_s the buffered
 * beats are written in one UPDATE per round (a round holds at most one beat
 * per worker, applied in arrival order), off the loop on the pool. A new
 * worker's first beat still goes through agents_store_beat, so the quota and
 * its 429 are decided when the beat arrives. */
#ifndef VGC_AGENTS_FLUSH_H
#define VGC_AGENTS_FLUSH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct agents_beat;
struct task;
struct task_env;

/* The flush as a row of the server's task list (tasks.h), every
 * agents_flush_s. new, at startup (blocking is fine there): turns the buffer
 * on when agents_flush_s > 0 (else every beat is stored as it comes) and
 * loads the workers the roster holds. run queues a flush on the pool. free,
 * after pool_free: writes what is still buffered over a connection of its
 * own. Loop thread only. */
void *agents_flush_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen);
void agents_flush_task_run(void *state, struct task *t);
void agents_flush_task_free(void *state);

/* Worker thread: buffers the beat of (tenant, project, b->agent_id) when the
 * buffer is on, the worker is known to be in the roster, and fewer than
 * agents_buffer_max beats wait. True: buffered, the caller answers 200. All
 * strings are copied. */
bool agents_flush_offer(const struct agents_beat *b, const char *tenant, const char *project);
/* Worker thread: the worker was just stored by agents_store_beat, so its
 * next beats may be buffered. */
void agents_flush_known(const char *tenant, const char *project, const char *agent_id);
#endif
