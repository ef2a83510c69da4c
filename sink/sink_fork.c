/* fork() while sender threads run. The prepare handler parks every running
 * sender in a callback on its own loop, so at the fork none is inside malloc
 * or libc holding a lock the child's first allocation would wait on forever
 * (glibc's malloc guards itself; ASan's and some others do not). */
#include <pthread.h>

#include "sink_int.h"

/* Guards the list; held from prepare to the parent's or child's handler. */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vgsink *fork_senders; /* running senders, through fork_next */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* A sink whose sender is the thread forking (from a log callback) is skipped:
 * it cannot wait for itself, and it is between callbacks anyway. */
static bool fork_waits_for(struct vgsink *s)
{
	return !pthread_equal(s->thread, pthread_self());
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&fork_lock);
	for (struct vgsink *s = fork_senders; s; s = s->fork_next) {
		if (fork_waits_for(s))
			sink_sender_park_begin(s);
	}
	for (struct vgsink *s = fork_senders; s; s = s->fork_next) {
		if (fork_waits_for(s))
			sink_sender_park_wait(s);
	}
}

static void fork_parent(void)
{
	for (struct vgsink *s = fork_senders; s; s = s->fork_next)
		sink_sender_park_end(s);
	pthread_mutex_unlock(&fork_lock);
}

/* The senders stayed behind in the parent; the child's sinks are new ones. */
static void fork_child(void)
{
	fork_senders = NULL;
	pthread_mutex_init(&fork_lock, NULL);
}

static void fork_init_once(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void sink_fork_register(struct vgsink *s)
{
	pthread_once(&fork_once, fork_init_once);
	pthread_mutex_lock(&fork_lock);
	s->fork_next = fork_senders;
	fork_senders = s;
	pthread_mutex_unlock(&fork_lock);
}

void sink_fork_unregister(struct vgsink *s)
{
	pthread_mutex_lock(&fork_lock);
	for (struct vgsink **p = &fork_senders; *p; p = &(*p)->fork_next) {
		if (*p == s) {
			*p = s->fork_next;
			break;
		}
	}
	pthread_mutex_unlock(&fork_lock);
}
