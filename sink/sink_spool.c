/* The spool: batches on disk, one gzip body per file, named SEQ-NROWS.vgb so
 * that name order is send order. Writes are crash-consistent (temp file,
 * fsync, rename, fsync the dir); SPOOL/lock (flock) keeps one process per dir.
 * Pending files and rejected/ share spool_max_bytes: a pending file is never
 * removed to make room, the oldest rejected files are. Sender thread only. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink_int.h"

static void spool_name(const struct spool *sp, char *out, size_t len, const char *sub, uint64_t seq,
		       int nrows)
{
	snprintf(out, len, "%s/%s%016" PRIx64 "-%08x.vgb", sp->dir, sub, seq, (unsigned)nrows);
}

static bool spool_fsync_dir(const char *dir);

static int spool_cmp(const void *a, const void *b)
{
	const struct spool_entry *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Appends e to a list of entries, growing it. */
static bool spool_list_push(struct spool_entry **v, int *n, int *cap, struct spool_entry e)
{
	if (*n == *cap) {
		int ncap = *cap ? *cap * 2 : 64;
		struct spool_entry *nv = realloc(*v, (size_t)ncap * sizeof(*nv));
		if (!nv)
			return false;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = e;
	return true;
}

static bool spool_push(struct spool *sp, struct spool_entry e)
{
	if (!spool_list_push(&sp->v, &sp->n, &sp->cap, e))
		return false;
	sp->bytes += e.size;
	sp->rows += (uint64_t)e.nrows;
	return true;
}

/* Adds a file of rejected/, keeping the list in seq order (oldest first). */
static bool spool_rej_push(struct spool *sp, struct spool_entry e)
{
	int i;

	if (!spool_list_push(&sp->rej, &sp->rej_n, &sp->rej_cap, e))
		return false;
	for (i = sp->rej_n - 1; i > 0 && sp->rej[i - 1].seq > e.seq; i--)
		sp->rej[i] = sp->rej[i - 1];
	sp->rej[i] = e;
	sp->rej_bytes += e.size;
	return true;
}

static int spool_find(const struct spool *sp, uint64_t seq)
{
	for (int i = 0; i < sp->n; i++)
		if (sp->v[i].seq == seq)
			return i;
	return -1;
}

static void spool_remove(struct spool *sp, int i)
{
	sp->bytes -= sp->v[i].size;
	sp->rows -= (uint64_t)sp->v[i].nrows;
	memmove(&sp->v[i], &sp->v[i + 1], (size_t)(sp->n - i - 1) * sizeof(sp->v[0]));
	sp->n--;
}

/* Removes the oldest rejected files until need more bytes fit under
 * max_bytes; their rows count in rej_discarded. The caller checked that
 * removing them all would do. */
static void spool_rej_trim(struct spool *sp, size_t need)
{
	char path[4096];
	int k = 0;

	while (k < sp->rej_n && sp->bytes + sp->rej_bytes + need > sp->max_bytes) {
		spool_name(sp, path, sizeof(path), "rejected/", sp->rej[k].seq, sp->rej[k].nrows);
		unlink(path);
		sp->rej_bytes -= sp->rej[k].size;
		sp->rej_discarded += (uint64_t)sp->rej[k].nrows;
		k++;
	}
	if (k == 0)
		return;
	memmove(&sp->rej[0], &sp->rej[k], (size_t)(sp->rej_n - k) * sizeof(sp->rej[0]));
	sp->rej_n -= k;
	spool_fsync_dir(sp->dir);
}

static bool spool_mkdir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "spool dir %s: %s", path, strerror(errno));
		return false;
	}
	return true;
}

static bool spool_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = fsync(fd) == 0;
	close(fd);
	return ok;
}

/* Lists the batch files of SPOOL/sub (pending, or rejected/), and removes
 * the temp files of writes cut short. */
static bool spool_scan(struct spool *sp, const char *sub, char *err, size_t errlen)
{
	char dir[4096], path[8192];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", sp->dir, sub);
	d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "spool dir %s: %s", dir, strerror(errno));
		return false;
	}
	while ((de = readdir(d)) != NULL) {
		struct spool_entry e = { 0, 0, 0, UINT64_MAX };
		unsigned nrows;
		struct stat st;
		char tail[8];
		bool ok;

		if (strncmp(de->d_name, ".tmp-", 5) == 0) { /* a write cut short: never renamed */
			snprintf(path, sizeof(path), "%s%s", dir, de->d_name);
			unlink(path);
			continue;
		}
		if (sscanf(de->d_name, "%16" SCNx64 "-%8x%7s", &e.seq, &nrows, tail) != 3 ||
		    strcmp(tail, ".vgb") != 0)
			continue;
		snprintf(path, sizeof(path), "%s%s", dir, de->d_name);
		if (stat(path, &st) != 0)
			continue;
		e.nrows = (int)nrows;
		e.size = (size_t)st.st_size;
		ok = sub[0] ? spool_rej_push(sp, e) : spool_push(sp, e);
		if (!ok) {
			closedir(d);
			snprintf(err, errlen, "out of memory");
			return false;
		}
		if (e.seq >= sp->next_seq)
			sp->next_seq = e.seq + 1;
	}
	closedir(d);
	return true;
}

struct spool *spool_open(const char *dir, size_t max_bytes, char *err, size_t errlen)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	char path[4096];

	if (!sp || !(sp->dir = strdup(dir))) {
		free(sp);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sp->lock_fd = -1;
	sp->max_bytes = max_bytes;
	snprintf(path, sizeof(path), "%s/rejected", dir);
	if (!spool_mkdir(dir, err, errlen) || !spool_mkdir(path, err, errlen))
		goto fail;
	snprintf(path, sizeof(path), "%s/lock", dir);
	sp->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->lock_fd < 0) {
		snprintf(err, errlen, "spool lock %s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "spool dir %s is in use by another process (%s is locked)",
			 dir, path);
		goto fail;
	}
	if (!spool_scan(sp, "", err, errlen) || !spool_scan(sp, "rejected/", err, errlen))
		goto fail;
	if (sp->n > 1)
		qsort(sp->v, (size_t)sp->n, sizeof(sp->v[0]), spool_cmp);
	if (sp->next_seq == 0)
		sp->next_seq = 1;
	sp->initial_mark = sp->next_seq - 1;
	/* A smaller cap than last time: the oldest rejected files go now. */
	if (sp->bytes + sp->rej_bytes > sp->max_bytes)
		spool_rej_trim(sp, 0);
	return sp;
fail:
	spool_close(sp);
	return NULL;
}

void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	if (sp->lock_fd >= 0)
		close(sp->lock_fd); /* releases the flock */
	free(sp->v);
	free(sp->rej);
	free(sp->dir);
	free(sp);
}

/* Writes data to dir/sub<name> through a temp file, fsyncs file and dir. */
static bool spool_write_file(struct spool *sp, const char *final, const struct buf *body, char *err,
			     size_t errlen)
{
	char tmp[4096];
	size_t off = 0;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.tmp-%d-%" PRIu64, sp->dir, (int)getpid(), sp->next_seq);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "spool write %s: %s", tmp, strerror(errno));
		return false;
	}
	while (off < body->len) {
		ssize_t w = write(fd, body->data + off, body->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(err, errlen, "spool write %s: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		snprintf(err, errlen, "spool fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	if (rename(tmp, final) != 0) {
		snprintf(err, errlen, "spool rename %s: %s", final, strerror(errno));
		unlink(tmp);
		return false;
	}
	spool_fsync_dir(sp->dir);
	return true;
fail:
	close(fd);
	unlink(tmp);
	return false;
}

bool spool_fits(const struct spool *sp, size_t len)
{
	return sp->bytes <= sp->max_bytes && len <= sp->max_bytes - sp->bytes;
}

enum spool_result spool_write(struct spool *sp, struct sink_batch *b, char *err, size_t errlen)
{
	struct spool_entry e = { sp->next_seq, b->nrows, b->body.len, b->min_seq };
	char final[4096];

	/* Decide first; only a batch that fits may cost rejected files. */
	if (!spool_fits(sp, b->body.len)) {
		snprintf(err, errlen,
			 "spool full: %zu bytes pending of spool_max_bytes %zu, batch of %zu bytes",
			 sp->bytes, sp->max_bytes, b->body.len);
		return SPOOL_FULL;
	}
	spool_rej_trim(sp, b->body.len);
	spool_name(sp, final, sizeof(final), "", e.seq, e.nrows);
	if (!spool_write_file(sp, final, &b->body, err, errlen))
		return SPOOL_FAILED;
	if (!spool_push(sp, e)) {
		unlink(final);
		snprintf(err, errlen, "out of memory");
		return SPOOL_FAILED;
	}
	sp->next_seq++;
	b->file_seq = e.seq;
	return SPOOL_WRITTEN;
}

struct sink_batch *spool_load_oldest(struct spool *sp, int *lost_rows, char *err, size_t errlen)
{
	struct sink_batch *b;
	char path[4096];
	FILE *f;
	size_t got;

	*lost_rows = 0;
	if (sp->n == 0)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	buf_init(&b->body, 0);
	spool_name(sp, path, sizeof(path), "", sp->v[0].seq, sp->v[0].nrows);
	f = fopen(path, "rbe");
	if (!f || !buf_reserve(&b->body, sp->v[0].size + 1)) {
		snprintf(err, errlen, "spool read %s: %s", path,
			 f ? "out of memory" : strerror(errno));
		if (f)
			fclose(f);
		sink_batch_free(b);
		/* An unreadable file would block the spool forever: forget it (the
		 * file stays for an operator; this process counts its rows lost). */
		*lost_rows = sp->v[0].nrows;
		spool_remove(sp, 0);
		return NULL;
	}
	got = fread(b->body.data, 1, sp->v[0].size, f);
	fclose(f);
	b->body.len = got;
	b->nrows = sp->v[0].nrows;
	b->min_seq = sp->v[0].min_seq;
	b->file_seq = sp->v[0].seq;
	return b;
}

void spool_done(struct spool *sp, uint64_t seq, bool rejected)
{
	int i = spool_find(sp, seq);
	char from[4096], to[4096];

	if (i < 0)
		return;
	spool_name(sp, from, sizeof(from), "", seq, sp->v[i].nrows);
	if (rejected) {
		/* The bytes move from pending to rejected/: the total stays. */
		struct spool_entry e = sp->v[i];
		spool_name(sp, to, sizeof(to), "rejected/", seq, e.nrows);
		if (rename(from, to) != 0 || !spool_rej_push(sp, e)) {
			unlink(to);
			unlink(from);
			sp->rej_discarded += (uint64_t)e.nrows;
		}
	} else {
		unlink(from);
	}
	spool_fsync_dir(sp->dir);
	spool_remove(sp, i);
}

bool spool_write_rejected(struct spool *sp, const struct sink_batch *b, char *err, size_t errlen)
{
	struct spool_entry e = { sp->next_seq, b->nrows, b->body.len, UINT64_MAX };
	char final[4096];

	if (!spool_fits(sp, b->body.len)) {
		snprintf(err, errlen,
			 "%zu bytes do not fit spool_max_bytes %zu beside %zu bytes pending",
			 b->body.len, sp->max_bytes, sp->bytes);
		sp->rej_discarded += (uint64_t)b->nrows;
		return false;
	}
	spool_rej_trim(sp, b->body.len);
	spool_name(sp, final, sizeof(final), "rejected/", e.seq, e.nrows);
	if (!spool_write_file(sp, final, &b->body, err, errlen)) {
		sp->rej_discarded += (uint64_t)b->nrows;
		return false;
	}
	sp->next_seq++;
	if (!spool_rej_push(sp, e)) {
		unlink(final);
		snprintf(err, errlen, "out of memory");
		sp->rej_discarded += (uint64_t)b->nrows;
		return false;
	}
	return true;
}

bool spool_has(const struct spool *sp, uint64_t seq)
{
	return spool_find(sp, seq) >= 0;
}

size_t spool_max_bytes(const struct spool *sp)
{
	return sp->max_bytes;
}

bool spool_pending(const struct spool *sp)
{
	return sp->n > 0;
}

void spool_gauges_get(const struct spool *sp, struct spool_gauges *g)
{
	g->rows = sp->rows;
	g->bytes = sp->bytes;
	g->rej_bytes = sp->rej_bytes;
	g->rej_discarded = sp->rej_discarded;
}

uint64_t spool_min_seq(const struct spool *sp)
{
	uint64_t min = UINT64_MAX;

	for (int i = 0; i < sp->n; i++)
		if (sp->v[i].min_seq < min)
			min = sp->v[i].min_seq;
	return min;
}

int spool_initial_left(const struct spool *sp)
{
	int n = 0;

	for (int i = 0; i < sp->n; i++)
		if (sp->v[i].seq <= sp->initial_mark)
			n++;
	return n;
}
