/* The spool: batches on disk, one gzip body per file, named SEQ-NROWS.vgb so
 * that name order is send order. Writes are crash-consistent (temp file,
 * fsync, rename, fsync the dir); SPOOL/lock (flock) keeps one process per dir.
 * Sender thread only. */
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

static int spool_cmp(const void *a, const void *b)
{
	const struct spool_entry *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool spool_push(struct spool *sp, struct spool_entry e)
{
	if (sp->n == sp->cap) {
		int cap = sp->cap ? sp->cap * 2 : 64;
		struct spool_entry *v = realloc(sp->v, (size_t)cap * sizeof(*v));
		if (!v)
			return false;
		sp->v = v;
		sp->cap = cap;
	}
	sp->v[sp->n++] = e;
	sp->bytes += e.size;
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
	memmove(&sp->v[i], &sp->v[i + 1], (size_t)(sp->n - i - 1) * sizeof(sp->v[0]));
	sp->n--;
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

struct spool *spool_open(const char *dir, size_t max_bytes, char *err, size_t errlen)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	char path[4096];
	DIR *d;
	struct dirent *de;

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
	d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "spool dir %s: %s", dir, strerror(errno));
		goto fail;
	}
	while ((de = readdir(d)) != NULL) {
		struct spool_entry e = { 0, 0, 0, UINT64_MAX };
		unsigned nrows;
		struct stat st;
		char tail[8];

		if (strncmp(de->d_name, ".tmp-", 5) == 0) { /* a write cut short: never renamed */
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
			continue;
		}
		if (sscanf(de->d_name, "%16" SCNx64 "-%8x%7s", &e.seq, &nrows, tail) != 3 ||
		    strcmp(tail, ".vgb") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0)
			continue;
		e.nrows = (int)nrows;
		e.size = (size_t)st.st_size;
		if (!spool_push(sp, e)) {
			closedir(d);
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if (e.seq >= sp->next_seq)
			sp->next_seq = e.seq + 1;
	}
	closedir(d);
	if (sp->n > 1)
		qsort(sp->v, (size_t)sp->n, sizeof(sp->v[0]), spool_cmp);
	if (sp->next_seq == 0)
		sp->next_seq = 1;
	sp->initial_mark = sp->next_seq - 1;
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

bool spool_write(struct spool *sp, struct sink_batch *b, uint64_t busy_seq, uint64_t *dropped_rows,
		 bool *busy_evicted, char *err, size_t errlen)
{
	struct spool_entry e = { sp->next_seq, b->nrows, b->body.len, b->min_seq };
	char final[4096];

	*dropped_rows = 0;
	*busy_evicted = false;
	/* Make room: the oldest files go first. The busy one's rows live on in
	 * memory, so only its file goes. */
	while (sp->n > 0 && sp->bytes + b->body.len > sp->max_bytes) {
		spool_name(sp, final, sizeof(final), "", sp->v[0].seq, sp->v[0].nrows);
		unlink(final);
		if (busy_seq && sp->v[0].seq == busy_seq)
			*busy_evicted = true;
		else
			*dropped_rows += (uint64_t)sp->v[0].nrows;
		spool_remove(sp, 0);
	}
	if (b->body.len > sp->max_bytes) {
		snprintf(err, errlen, "batch of %zu bytes is larger than spool_max_bytes",
			 b->body.len);
		return false;
	}
	spool_name(sp, final, sizeof(final), "", e.seq, e.nrows);
	if (!spool_write_file(sp, final, &b->body, err, errlen))
		return false;
	if (!spool_push(sp, e)) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	sp->next_seq++;
	b->file_seq = e.seq;
	return true;
}

struct sink_batch *spool_load_oldest(struct spool *sp, char *err, size_t errlen)
{
	struct sink_batch *b;
	char path[4096];
	FILE *f;
	size_t got;

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
		/* An unreadable file would block the spool forever: forget it. */
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
		spool_name(sp, to, sizeof(to), "rejected/", seq, sp->v[i].nrows);
		if (rename(from, to) != 0)
			unlink(from);
	} else {
		unlink(from);
	}
	spool_fsync_dir(sp->dir);
	spool_remove(sp, i);
}

bool spool_write_rejected(struct spool *sp, const struct sink_batch *b, char *err, size_t errlen)
{
	char final[4096];

	spool_name(sp, final, sizeof(final), "rejected/", sp->next_seq++, b->nrows);
	return spool_write_file(sp, final, &b->body, err, errlen);
}

bool spool_has(const struct spool *sp, uint64_t seq)
{
	return spool_find(sp, seq) >= 0;
}
