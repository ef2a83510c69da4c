/* gzip for the wire: bounded inflate (a gzip bomb never allocates past the cap)
 * and deflate for the sink's batches. */
#ifndef VG_GZ_H
#define VG_GZ_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

enum gz_result { GZ_OK = 0, GZ_TOO_BIG, GZ_BAD };

/* Inflates a gzip stream (one or more members) into out, failing with GZ_TOO_BIG
 * as soon as the output would pass max_out bytes. On GZ_BAD, err says where. */
enum gz_result gz_inflate(const void *in, size_t inlen, size_t max_out, struct buf *out, char *err,
			  size_t errlen) __attribute__((warn_unused_result));

/* Appends the gzip of in to out. */
bool gz_deflate(const void *in, size_t inlen, int level, struct buf *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
