/* The row queue. Recording threads append to one of a few shards, each under
 * its own lock, so they rarely touch a line another core wrote; a shard hands
 * its rows to the central FIFO (seq, bound, sender wake-up) every few rows.
 * The only file that touches the shards, head, tail, queued, held and next_seq. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "sink_int.h"

#define QUEUE_HANDOFF_MAX 64

/* Threads take shard slots round-robin, once, for every sink they use. */
static atomic_uint queue_next_slot;
static _Thread_local unsigned queue_slot; /* 0: none yet */

bool sink_queue_init(struct vgsink *s)
{
	int n = 1;
	size_t per;

	while (n < s->cfg.queue_shards)
		n <<= 1;
	s->shards =
		aligned_alloc(_Alignof(struct sink_shard), (size_t)n * sizeof(struct sink_shard));
	if (!s->shards)
		return false;
	for (int i = 0; i < n; i++) {
		pthread_mutex_init(&s->shards[i].lock, NULL);
		s->shards[i].head = s->shards[i].tail = NULL;
		s->shards[i].n = 0;
		s->shards[i].recorded = 0;
	}
	s->shard_mask = (unsigned)n - 1;
	s->next_seq = 1;
	s->queued_bytes = 0;
	/* per: rows a shard may hold back. The central queue's bound leaves room
	 * for them, so memory stays within queue_max_rows, and still holds a full
	 * batch. Small queues get per 0: every row goes straight through. */
	per = s->cfg.queue_max_rows / (4 * (size_t)n);
	if (per > (s->cfg.queue_max_rows - (size_t)s->cfg.batch_rows) / (size_t)n)
		per = (s->cfg.queue_max_rows - (size_t)s->cfg.batch_rows) / (size_t)n;
	if (per > (size_t)s->cfg.batch_rows - 1)
		per = (size_t)s->cfg.batch_rows - 1;
	if (per > QUEUE_HANDOFF_MAX - 1)
		per = QUEUE_HANDOFF_MAX - 1;
	s->handoff_rows = per + 1;
	s->central_max = s->cfg.queue_max_rows - (size_t)n * per;
	atomic_init(&s->tight, false);
	return true;
}

void sink_queue_free(struct vgsink *s)
{
	if (s->shards) {
		for (unsigned i = 0; i <= s->shard_mask; i++) {
			sink_items_free_list(s->shards[i].head);
			pthread_mutex_destroy(&s->shards[i].lock);
		}
		free(s->shards);
		s->shards = NULL;
	}
	sink_items_free_list(s->head);
	s->head = s->tail = NULL;
}

/* Past central_max the shards' allowance is not free any more: recording
 * threads then hand every row straight on (see sink_queue_push). The rows
 * the sender holds in memory count too. */
static void queue_note_level_locked(struct vgsink *s)
{
	bool tight = s->queued + s->held > s->central_max;

	if (atomic_load_explicit(&s->tight, memory_order_relaxed) != tight)
		atomic_store_explicit(&s->tight, tight, memory_order_relaxed);
}

void sink_queue_hold_locked(struct vgsink *s, int64_t delta)
{
	s->held = (size_t)((int64_t)s->held + delta);
	queue_note_level_locked(s);
}

/* Takes a shard's rows; the central lock is held, and always taken first. */
static struct sink_item *queue_take_shard(struct sink_shard *sh, struct sink_item **last, size_t *n)
{
	struct sink_item *first;

	pthread_mutex_lock(&sh->lock);
	first = sh->head;
	*last = sh->tail;
	*n = sh->n;
	sh->head = sh->tail = NULL;
	sh->n = 0;
	pthread_mutex_unlock(&sh->lock);
	return first;
}

/* Numbers a chain of n rows and links it to the central queue's tail. */
static void queue_link_locked(struct vgsink *s, struct sink_item *first, struct sink_item *last,
			      size_t n)
{
	for (struct sink_item *it = first; it; it = it->next) {
		it->seq = s->next_seq++;
		s->queued_bytes += it->json_bytes;
	}
	if (s->tail)
		s->tail->next = first;
	else
		s->head = first;
	s->tail = last;
	s->queued += n;
}

/* True when the oldest queued row must go to keep the rows in memory (the
 * sender's included) within the bound. With no spool that is queue_max_rows.
 * With one, the sender moves batches to disk and memory may hold twice the
 * bound meanwhile; past that a row goes only when the queued rows' JSON no
 * longer fits the room the spool has left (gzip makes them smaller on disk),
 * so a sender slowed by the disk (an fsync stall) or by the scheduler loses
 * nothing the spool could have taken, and memory stays bounded by the spool. */
static bool queue_over_bound_locked(const struct vgsink *s)
{
	size_t limit = s->spool ? 2 * s->cfg.queue_max_rows : s->cfg.queue_max_rows;

	if (!s->head || s->queued + s->held <= limit)
		return false;
	return !s->spool || s->queued_bytes > sink_sender_spool_room_locked(s);
}

/* Appends a chain of n rows to the central queue and applies the bound
 * (queue_over_bound_locked); the oldest queued rows go, counted.
 * Below central_max the shards cannot push the total past the bound. When the
 * queue first passes it, every shard's rows move here, and recording threads
 * hand on each row from then on, so the bound sees every row held (but for
 * one a thread records in the instant the flag changes, until its next
 * call). True when the sender should wake up. */
static bool queue_append_locked(struct vgsink *s, struct sink_item *first, struct sink_item *last,
				size_t n)
{
	size_t before = s->queued, before_all = s->queued + s->held;
	struct sink_item *drop = NULL, **drop_tail = &drop;

	queue_link_locked(s, first, last, n);
	if (s->queued + s->held > s->central_max && s->handoff_rows > 1 &&
	    !atomic_load_explicit(&s->tight, memory_order_relaxed)) {
		atomic_store_explicit(&s->tight, true, memory_order_relaxed);
		for (unsigned i = 0; i <= s->shard_mask; i++) {
			struct sink_item *sfirst, *slast;
			size_t sn;

			sfirst = queue_take_shard(&s->shards[i], &slast, &sn);
			if (sfirst)
				queue_link_locked(s, sfirst, slast, sn);
		}
	}
	while (queue_over_bound_locked(s)) {
		struct sink_item *it = s->head;

		s->head = it->next;
		if (!s->head)
			s->tail = NULL;
		it->next = NULL;
		*drop_tail = it;
		drop_tail = &it->next;
		s->queued--;
		s->queued_bytes -= it->json_bytes;
		s->stats.dropped++;
	}
	queue_note_level_locked(s);
	sink_items_free_list(drop);
	return (before < (size_t)s->cfg.batch_rows && s->queued >= (size_t)s->cfg.batch_rows) ||
	       (s->spool && before_all <= s->central_max && s->queued + s->held > s->central_max);
}

/* Moves one shard's rows to the central queue; the central lock is held. */
static bool queue_drain_locked(struct vgsink *s, struct sink_shard *sh)
{
	struct sink_item *first, *last;
	size_t n;

	first = queue_take_shard(sh, &last, &n);
	return first && queue_append_locked(s, first, last, n);
}

bool sink_queue_collect_locked(struct vgsink *s)
{
	bool wake = false;

	for (unsigned i = 0; i <= s->shard_mask; i++)
		wake |= queue_drain_locked(s, &s->shards[i]);
	return wake;
}

bool sink_queue_push(struct vgsink *s, struct sink_item *it)
{
	struct sink_shard *sh;
	size_t n;
	bool wake;

	if (!queue_slot)
		queue_slot =
			atomic_fetch_add_explicit(&queue_next_slot, 1, memory_order_relaxed) + 1;
	sh = &s->shards[queue_slot & s->shard_mask];
	it->next = NULL;
	pthread_mutex_lock(&sh->lock);
	if (sh->tail)
		sh->tail->next = it;
	else
		sh->head = it;
	sh->tail = it;
	n = ++sh->n;
	sh->recorded++;
	pthread_mutex_unlock(&sh->lock);
	if (atomic_load_explicit(&s->tight, memory_order_relaxed) || n >= s->handoff_rows) {
		pthread_mutex_lock(&s->lock);
	} else if (2 * n < s->handoff_rows || pthread_mutex_trylock(&s->lock) != 0) {
		/* From half the allowance on, the rows go on whenever the central
		 * lock is free; a thread waits for it only at the full allowance,
		 * so a sender forming a batch rarely stalls a recording call. */
		return false;
	}
	wake = queue_drain_locked(s, sh);
	pthread_mutex_unlock(&s->lock);
	return wake;
}

/* Room for one more row of json_bytes with nothing dropped: the same rule as
 * queue_over_bound_locked, asked before the row is added. */
static bool queue_room_locked(const struct vgsink *s, size_t json_bytes)
{
	size_t limit = s->spool ? 2 * s->cfg.queue_max_rows : s->cfg.queue_max_rows;

	if (s->queued + s->held < limit)
		return true;
	return s->spool && s->queued_bytes + json_bytes <= sink_sender_spool_room_locked(s);
}

bool sink_queue_push_if_room(struct vgsink *s, struct sink_item *it, bool *wake)
{
	struct sink_shard *sh;

	if (!queue_slot)
		queue_slot =
			atomic_fetch_add_explicit(&queue_next_slot, 1, memory_order_relaxed) + 1;
	sh = &s->shards[queue_slot & s->shard_mask];
	it->next = NULL;
	pthread_mutex_lock(&s->lock);
	/* Every shard's rows first: this thread's earlier rows keep their order,
	 * and the room counted is the room there is. */
	*wake = sink_queue_collect_locked(s);
	if (!queue_room_locked(s, it->json_bytes)) {
		pthread_mutex_unlock(&s->lock);
		return false;
	}
	pthread_mutex_lock(&sh->lock);
	sh->recorded++;
	pthread_mutex_unlock(&sh->lock);
	*wake |= queue_append_locked(s, it, it, 1);
	pthread_mutex_unlock(&s->lock);
	return true;
}

bool sink_queue_room_wait(struct vgsink *s, size_t json_bytes, const struct timespec *deadline)
{
	bool room;

	pthread_mutex_lock(&s->lock);
	sink_queue_collect_locked(s);
	while (!(room = queue_room_locked(s, json_bytes)))
		if (pthread_cond_timedwait(&s->cond, &s->lock, deadline) == ETIMEDOUT) {
			room = queue_room_locked(s, json_bytes);
			break;
		}
	pthread_mutex_unlock(&s->lock);
	return room;
}

struct sink_item *sink_queue_take_locked(struct vgsink *s, int max_rows, size_t max_bytes, int *n)
{
	struct sink_item *first = s->head, *last = NULL, *it;
	size_t bytes = 0;

	*n = 0;
	if (!first)
		return NULL;
	for (it = first; it && *n < max_rows && (*n == 0 || bytes < max_bytes); it = it->next) {
		bytes += it->json_bytes;
		last = it;
		(*n)++;
	}
	s->queued_bytes -= bytes;
	s->head = last->next;
	if (!s->head)
		s->tail = NULL;
	last->next = NULL;
	s->queued -= (size_t)*n;
	s->held += (size_t)*n;
	return first;
}

size_t sink_queue_length_locked(const struct vgsink *s)
{
	return s->queued;
}

size_t sink_queue_in_memory_locked(const struct vgsink *s)
{
	return s->queued + s->held;
}

uint64_t sink_queue_mark_locked(struct vgsink *s)
{
	sink_queue_collect_locked(s);
	return s->next_seq;
}

bool sink_queue_clear_below_locked(const struct vgsink *s, uint64_t target)
{
	return !s->head || s->head->seq >= target;
}

bool sink_queue_tight(struct vgsink *s)
{
	return atomic_load_explicit(&s->tight, memory_order_relaxed);
}

uint64_t sink_queue_abandon_locked(struct vgsink *s)
{
	uint64_t lost;

	sink_queue_collect_locked(s);
	lost = s->queued + s->held;
	s->held = 0; /* the sender frees its batches */
	s->queued = 0;
	s->queued_bytes = 0;
	sink_items_free_list(s->head);
	s->head = s->tail = NULL;
	return lost;
}

void sink_queue_count_locked(struct vgsink *s, uint64_t *recorded, uint64_t *queued)
{
	*recorded = s->stats.adopted;
	*queued = s->queued + s->held;
	for (unsigned i = 0; i <= s->shard_mask; i++) {
		struct sink_shard *sh = &s->shards[i];

		pthread_mutex_lock(&sh->lock);
		*recorded += sh->recorded;
		*queued += sh->n;
		pthread_mutex_unlock(&sh->lock);
	}
}
