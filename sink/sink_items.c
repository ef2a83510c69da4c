/* Memory for recorded rows. Each recording thread bump-allocates its items
 * out of its own 64 KiB chunk; a chunk is reused once every item in it has
 * been freed, so the hot path neither calls malloc nor frees across threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "sink_int.h"

#define ITEMS_CHUNK_BYTES (64 * 1024)
#define ITEMS_ALIGN 16
/* Bigger items (long error messages or metadata) get a malloc of their own. */
#define ITEMS_BIG_BYTES (ITEMS_CHUNK_BYTES / 8)

/* Item accounting: a free subtracts 1 from live, and the owner adds the
 * number it allocated when it retires the chunk. live is negative until
 * then, so whoever brings it to exactly 0 afterwards recycles the chunk. */
struct sink_chunk {
	_Alignas(64) atomic_long live;	      /* written by freeing threads */
	_Alignas(64) struct sink_chunk *next; /* in the spare list */
	long allocated;			      /* owner thread only */
	size_t used;			      /* owner thread only */
	_Alignas(ITEMS_ALIGN) unsigned char data[];
};

#define ITEMS_DATA_BYTES (ITEMS_CHUNK_BYTES - sizeof(struct sink_chunk))

static pthread_mutex_t items_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the spares */
static struct sink_chunk *items_spare;
static int items_nspare;
static pthread_once_t items_once = PTHREAD_ONCE_INIT;
static pthread_key_t items_key; /* its destructor retires an exiting thread's chunk */
static _Thread_local struct sink_chunk *items_current;

static void items_recycle(struct sink_chunk *c)
{
	pthread_mutex_lock(&items_lock);
	if (items_nspare < SINK_ITEMS_MAX_SPARE) {
		c->next = items_spare;
		items_spare = c;
		items_nspare++;
		c = NULL;
	}
	pthread_mutex_unlock(&items_lock);
	free(c);
}

static void items_retire(struct sink_chunk *c)
{
	long allocated = c->allocated;

	if (atomic_fetch_add_explicit(&c->live, allocated, memory_order_acq_rel) + allocated == 0)
		items_recycle(c);
}

static void items_thread_exit(void *chunk)
{
	items_retire(chunk);
}

/* A forked child has one thread: the lock may have been held by another. */
static void items_atfork_child(void)
{
	pthread_mutex_init(&items_lock, NULL);
}

static void items_init_once(void)
{
	pthread_key_create(&items_key, items_thread_exit);
	pthread_atfork(NULL, NULL, items_atfork_child);
}

static struct sink_chunk *items_chunk_get(void)
{
	struct sink_chunk *c;

	pthread_mutex_lock(&items_lock);
	c = items_spare;
	if (c) {
		items_spare = c->next;
		items_nspare--;
	}
	pthread_mutex_unlock(&items_lock);
	if (!c && !(c = malloc(ITEMS_CHUNK_BYTES)))
		return NULL;
	atomic_init(&c->live, 0);
	c->next = NULL;
	c->allocated = 0;
	c->used = 0;
	return c;
}

struct sink_item *sink_item_new(size_t size)
{
	struct sink_chunk *c = items_current;
	struct sink_item *it;

	size = (size + ITEMS_ALIGN - 1) & ~(size_t)(ITEMS_ALIGN - 1);
	if (size > ITEMS_BIG_BYTES) {
		it = malloc(size);
		if (it)
			it->chunk = NULL;
		return it;
	}
	if (!c || c->used + size > ITEMS_DATA_BYTES) {
		struct sink_chunk *fresh;

		pthread_once(&items_once, items_init_once);
		if (!(fresh = items_chunk_get()))
			return NULL;
		if (c)
			items_retire(c);
		items_current = c = fresh;
		pthread_setspecific(items_key, c);
	}
	it = (struct sink_item *)(void *)(c->data + c->used);
	c->used += size;
	c->allocated++;
	it->chunk = c;
	return it;
}

/* n items of one chunk are gone. */
static void items_release(struct sink_chunk *c, long n)
{
	if (atomic_fetch_sub_explicit(&c->live, n, memory_order_acq_rel) == n)
		items_recycle(c);
}

void sink_item_free(struct sink_item *it)
{
	if (!it->chunk)
		free(it);
	else
		items_release(it->chunk, 1);
}

void sink_items_free_list(struct sink_item *it)
{
	struct sink_chunk *run = NULL;
	long n = 0;

	/* Rows recorded by one thread sit next to each other in the queue, so
	 * neighbours mostly share a chunk: one atomic per run, not per row. */
	while (it) {
		struct sink_item *next = it->next;

		if (it->chunk != run) {
			if (run)
				items_release(run, n);
			run = it->chunk;
			n = 0;
		}
		if (!run)
			free(it);
		else
			n++;
		it = next;
	}
	if (run)
		items_release(run, n);
}
