/* A growable byte buffer with a hard size limit, used wherever a peer controls
 * the size (bodies, inflated bodies, COPY data). A value type: init/release. */
#ifndef VG_BUF_H
#define VG_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;   /* owned; NUL-terminated after every append */
	size_t len;   /* bytes used, excluding the terminating NUL */
	size_t cap;   /* bytes allocated */
	size_t limit; /* max len; 0 = no limit */
	bool over;    /* an append was refused because of limit or memory */
};

void buf_init(struct buf *b, size_t limit);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
/* Makes room for n more bytes. False when that would pass the limit or malloc fails. */
bool buf_reserve(struct buf *b, size_t n) __attribute__((warn_unused_result));
bool buf_append(struct buf *b, const void *p, size_t n);
bool buf_puts(struct buf *b, const char *s);
bool buf_putc(struct buf *b, char c);
bool buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (who frees them) and leaves b empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
