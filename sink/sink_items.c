/* Memory for recorded rows, and their packed form. Each recording thread
 * bump-allocates its items out of its own 64 KiB chunk; a chunk is reused once
 * every item in it has been freed, so the hot path neither calls malloc nor
 * frees across threads. Strings repeated within a chunk are stored once. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sink_int.h"

#define ITEMS_CHUNK_BYTES (64 * 1024)
#define ITEMS_ALIGN 8
#define ITEM_UUID 1 /* flags: strings[] starts with the id's 16 bytes */
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
	unsigned gen;			      /* which use of this memory (dedup below) */
	_Alignas(16) unsigned char data[];
};

#define ITEMS_DATA_BYTES (ITEMS_CHUNK_BYTES - sizeof(struct sink_chunk))

static pthread_mutex_t items_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the spares */
static struct sink_chunk *items_spare;
static int items_nspare;
static pthread_once_t items_once = PTHREAD_ONCE_INIT;
static pthread_key_t items_key; /* its destructor retires an exiting thread's chunk */
static _Thread_local struct sink_chunk *items_current;
static atomic_uint items_gen;

/* The thread's recently stored strings: a direct-mapped table keyed by a
 * hash of the bytes. An entry counts only for the same use (gen) of the
 * thread's current chunk, so a string is shared only within one chunk,
 * which lives until its last item is freed. */
#define ITEMS_DEDUP_SLOTS 256
#define ITEMS_DEDUP_MAX_LEN 1024
static _Thread_local struct items_dedup {
	const struct sink_chunk *chunk;
	unsigned gen;
	uint16_t off, len;
} items_dedup[ITEMS_DEDUP_SLOTS];

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
	if (!c) {
		if (!(c = malloc(ITEMS_CHUNK_BYTES)))
			return NULL;
		/* Fault its pages in now, in one go, rather than one by one in
		 * the record calls that would touch them first. */
		memset(c->data, 0, ITEMS_DATA_BYTES);
	}
	atomic_init(&c->live, 0);
	c->gen = atomic_fetch_add_explicit(&items_gen, 1, memory_order_relaxed);
	c->next = NULL;
	c->allocated = 0;
	c->used = 0;
	return c;
}

/* The thread's chunk with at least size bytes free; NULL when out of memory. */
static struct sink_chunk *items_room(size_t size)
{
	struct sink_chunk *c = items_current;

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
	return c;
}

struct sink_item *sink_item_new(size_t size)
{
	struct sink_chunk *c;
	struct sink_item *it;

	size = (size + ITEMS_ALIGN - 1) & ~(size_t)(ITEMS_ALIGN - 1);
	if (size > ITEMS_BIG_BYTES) {
		it = malloc(size);
		if (it)
			it->chunk = NULL;
		return it;
	}
	if (!(c = items_room(size)))
		return NULL;
	it = (struct sink_item *)(void *)(c->data + c->used);
	c->used += size;
	c->allocated++;
	it->chunk = c;
	return it;
}

/* Lowercase hex digits' values plus one; 0 for every other byte. */
static const unsigned char items_hex[256] = {
	['0'] = 1,  ['1'] = 2,	['2'] = 3,  ['3'] = 4,	['4'] = 5,  ['5'] = 6,
	['6'] = 7,  ['7'] = 8,	['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
	['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* A canonical lowercase UUID text as its 16 bytes (it prints back the same). */
static bool items_uuid_parse(const char *s, size_t len, unsigned char out[16])
{
	static const unsigned char at[16] = { 0,  2,  4,  6,  9,  11, 14, 16,
					      19, 21, 24, 26, 28, 30, 32, 34 };
	unsigned bad = 0;

	if (len != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
		return false;
	for (int i = 0; i < 16; i++) {
		unsigned hi = items_hex[(unsigned char)s[at[i]]],
			 lo = items_hex[(unsigned char)s[at[i] + 1]];

		bad |= (hi == 0) | (lo == 0);
		out[i] = (unsigned char)((hi - 1) << 4 | (lo - 1));
	}
	return !bad;
}

void sink_item_uuid_format(const unsigned char u[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	int o = 0;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 15];
	}
	out[o] = '\0';
}

/* A hash of len bytes (the first and last eight, or each byte of a shorter
 * string) for the dedup table's slot; fixed-size loads, no library call. */
static unsigned items_hash(const char *s, size_t len)
{
	uint64_t a = 0, b = 0;

	if (len >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + len - 8, 8);
	} else {
		for (size_t i = 0; i < len; i++)
			a = a << 8 | (unsigned char)s[i];
	}
	a = (a ^ (b * 0x9e3779b97f4a7c15ULL) ^ len) * 0xff51afd7ed558ccdULL;
	return (unsigned)(a >> 56);
}

/* Stores string s (len bytes) in chunk c from *pos on, unless the thread
 * stored the same bytes in this use of c already; returns its offset. */
static uint16_t items_put_string(struct sink_chunk *c, size_t *pos, const char *s, size_t len)
{
	struct items_dedup *d = NULL;
	size_t off = *pos;

	if (len <= ITEMS_DEDUP_MAX_LEN) {
		d = &items_dedup[items_hash(s, len)];
		if (d->chunk == c && d->gen == c->gen && d->len == len &&
		    memcmp(c->data + d->off, s, len + 1) == 0)
			return d->off;
	}
	memcpy(c->data + off, s, len + 1);
	*pos = off + len + 1;
	if (d)
		*d = (struct items_dedup){ c, c->gen, (uint16_t)off, (uint16_t)len };
	return (uint16_t)off;
}

/* Where each string field sits in struct row, in row_string_fields order:
 * read once, so packing a row does not walk the whole field table. */
static size_t items_str_offset[ROW_NSTRINGS];
static pthread_once_t items_str_once = PTHREAD_ONCE_INIT;

static void items_str_init(void)
{
	for (int i = 0, n = 0; i < ROW_NFIELDS; i++)
		if (row_field_is_string(&row_fields[i]))
			items_str_offset[n++] = row_fields[i].offset;
}

struct sink_item *sink_item_pack(const struct row *r, const size_t len[ROW_NSTRINGS],
				 const unsigned char *uuid)
{
	const char *f[ROW_NSTRINGS];
	struct sink_item *it;
	struct sink_chunk *c;
	unsigned char parsed[16];
	char idtext[37];
	size_t size = sizeof(*it), strings = 0, pos;
	bool binary_id = uuid || (r->id && items_uuid_parse(r->id, len[0], parsed));

	if (!uuid)
		uuid = parsed;
	pthread_once(&items_str_once, items_str_init);
	for (int i = 0; i < ROW_NSTRINGS; i++)
		f[i] = *(const char *const *)ROW_FIELD_CPTR(r, items_str_offset[i]);
	for (int i = 0; i < ROW_NSTRINGS; i++)
		if (f[i]) {
			strings += len[i];
			size += len[i] + 1;
		}
	size = (size + ITEMS_ALIGN - 1) & ~(size_t)(ITEMS_ALIGN - 1);
	if (size > ITEMS_BIG_BYTES) {
		c = NULL;
		it = malloc(size);
		if (!it)
			return NULL;
	} else {
		if (!(c = items_room(size)))
			return NULL;
		it = (struct sink_item *)(void *)(c->data + c->used);
	}
	it->chunk = c;
	it->json_bytes = (uint32_t)(400 + strings + ROW_NSTRINGS);
	it->turn_index = r->turn_index < 0 ? -1 : (int32_t)r->turn_index;
	it->num[0] = r->timestamp;
	it->num[1] = r->input_units;
	it->num[2] = r->output_units;
	it->num[3] = r->cached_input_units;
	it->num[4] = r->cost_usd;
	it->num[5] = r->rated_price_usd;
	it->num[6] = r->ttfb_ms;
	it->num[7] = r->total_latency_ms;
	it->modality = (uint8_t)r->modality;
	it->status = (uint8_t)r->status;
	if (!c) { /* strings inline, in order; offsets only say present or not */
		char *p = it->strings;

		it->flags = 0;
		for (int i = 0; i < ROW_NSTRINGS; i++) {
			const char *v = f[i];

			if (i == 0 && binary_id) { /* the id as text: its length is the same */
				sink_item_uuid_format(uuid, idtext);
				v = idtext;
			}
			it->str[i] = v ? 0 : SINK_ITEM_NONE;
			if (v) {
				memcpy(p, v, len[i] + 1);
				p += len[i] + 1;
			}
		}
		return it;
	}
	it->flags = binary_id ? ITEM_UUID : 0;
	pos = (size_t)((unsigned char *)it->strings - c->data);
	if (binary_id) {
		memcpy(it->strings, uuid, 16);
		pos += 16;
	}
	for (int i = 0; i < ROW_NSTRINGS; i++) {
		if (!f[i] || (i == 0 && binary_id))
			it->str[i] = SINK_ITEM_NONE;
		else
			it->str[i] = items_put_string(c, &pos, f[i], len[i]);
	}
	c->used = (pos + ITEMS_ALIGN - 1) & ~(size_t)(ITEMS_ALIGN - 1);
	c->allocated++;
	return it;
}

void sink_item_row(const struct sink_item *it, struct row *r, char idbuf[37])
{
	const char **f[ROW_NSTRINGS];
	const char *p = it->strings;

	row_init(r);
	row_string_fields(r, f);
	for (int i = 0; i < ROW_NSTRINGS; i++) {
		if (it->str[i] == SINK_ITEM_NONE) {
			*f[i] = NULL;
		} else if (!it->chunk) {
			*f[i] = p;
			p += strlen(p) + 1;
		} else {
			*f[i] = (const char *)it->chunk->data + it->str[i];
		}
	}
	if (it->flags & ITEM_UUID) {
		sink_item_uuid_format((const unsigned char *)it->strings, idbuf);
		r->id = idbuf;
	}
	r->timestamp = it->num[0];
	r->input_units = it->num[1];
	r->output_units = it->num[2];
	r->cached_input_units = it->num[3];
	r->cost_usd = it->num[4];
	r->rated_price_usd = it->num[5];
	r->ttfb_ms = it->num[6];
	r->total_latency_ms = it->num[7];
	r->modality = (enum row_modality)it->modality;
	r->status = (enum row_status)it->status;
	r->turn_index = it->turn_index;
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
