/* gzip inflate/deflate over zlib. Inflate checks the output size while it runs,
 * so memory use is bounded by max_out however large the stream claims to be. */
#include "gz.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

enum gz_result gz_inflate(const void *in, size_t inlen, size_t max_out, struct buf *out, char *err,
			  size_t errlen)
{
	z_stream zs;
	int rc;
	size_t hint;
	enum gz_result res = GZ_OK;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 16) != Z_OK) {
		snprintf(err, errlen, "gzip: cannot initialise zlib");
		return GZ_BAD;
	}
	/* The trailer's ISIZE is only a hint from the peer: cap it by max_out. */
	hint = 0;
	if (inlen >= 18) {
		const unsigned char *t = (const unsigned char *)in + inlen - 4;
		hint = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
	}
	if (hint > max_out)
		hint = max_out;
	if (hint && !buf_reserve(out, hint)) {
		snprintf(err, errlen, "out of memory inflating %zu bytes", hint);
		inflateEnd(&zs);
		return GZ_TOO_BIG;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)inlen;
	for (;;) {
		unsigned char probe;
		size_t room = out->cap ? out->cap - out->len - 1 : 0, produced, before;

		if (room < 16384 && out->len < max_out) {
			size_t want = out->len < 65536 ? 65536 : out->len;
			if (want > max_out - out->len)
				want = max_out - out->len;
			if (!buf_reserve(out, want)) {
				res = GZ_TOO_BIG;
				break;
			}
			room = out->cap - out->len - 1;
		}
		if (room > max_out - out->len)
			room = max_out - out->len;
		/* At the cap, inflate into one scratch byte: any output means the
		 * stream is larger than max_out, without allocating past it. */
		zs.next_out = room ? (Bytef *)out->data + out->len : &probe;
		zs.avail_out = room ? (uInt)room : 1;
		before = zs.total_out;
		rc = inflate(&zs, Z_NO_FLUSH);
		produced = zs.total_out - before;
		if (!room && produced) {
			res = GZ_TOO_BIG;
			break;
		}
		out->len += produced;
		if (out->data)
			out->data[out->len] = '\0';
		if (rc == Z_STREAM_END) {
			if (zs.avail_in == 0)
				break;
			/* Another gzip member follows (RFC 1952 allows several). */
			if (inflateReset(&zs) != Z_OK) {
				res = GZ_BAD;
				snprintf(err, errlen, "gzip: cannot reset stream");
				break;
			}
			continue;
		}
		if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
			res = GZ_BAD;
			snprintf(err, errlen, "gzip: stream truncated after %zu compressed bytes",
				 inlen);
			break;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			res = GZ_BAD;
			snprintf(err, errlen, "gzip: %s at compressed byte %zu",
				 zs.msg ? zs.msg : "corrupt data", inlen - zs.avail_in);
			break;
		}
	}
	if (res == GZ_TOO_BIG)
		snprintf(err, errlen, "inflated body is larger than max_inflated_bytes (%zu)",
			 max_out);
	inflateEnd(&zs);
	return res;
}

bool gz_deflate(const void *in, size_t inlen, int level, struct buf *out, char *err, size_t errlen)
{
	z_stream zs;
	int rc;
	size_t bound;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		snprintf(err, errlen, "gzip: cannot initialise zlib");
		return false;
	}
	bound = deflateBound(&zs, (uLong)inlen) + 32;
	if (!buf_reserve(out, bound)) {
		snprintf(err, errlen, "gzip: out of memory for %zu bytes", bound);
		deflateEnd(&zs);
		return false;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)inlen;
	zs.next_out = (Bytef *)out->data + out->len;
	zs.avail_out = (uInt)(out->cap - out->len - 1);
	rc = deflate(&zs, Z_FINISH);
	deflateEnd(&zs);
	if (rc != Z_STREAM_END) {
		snprintf(err, errlen, "gzip: deflate failed (%d)", rc);
		return false;
	}
	out->len += zs.total_out;
	out->data[out->len] = '\0';
	return true;
}
