/* Whether a commit the collector acknowledges survives losing the primary:
 * a task (tasks.h) that checks on the pool, at startup, on reload and every
 * sync_standby_check_s, that the database has a synchronous standby. It warns
 * when not, and /metrics carries the answer. Loop thread only. */
#ifndef VGC_DURABILITY_H
#define VGC_DURABILITY_H

#include <stddef.h>

struct buf;
struct task;
struct task_env;

/* The task's hooks (server.c's task table). */
void *durability_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen);
void durability_task_run(void *state, struct task *t);
void durability_task_free(void *state);

/* Reload: checks again now and warns again if there is still no synchronous
 * standby. state is the task's (tasks_state); NULL is ignored. */
void durability_recheck(void *state);
/* vgcollector_db_synchronous_standby, once a check has answered. */
void durability_render_metrics(const void *state, struct buf *out);

#endif
