/* base64url (RFC 4648 section 5) without padding: the alphabet of API keys and
 * of the /v1/rows page cursor. */
#ifndef VG_B64URL_H
#define VG_B64URL_H

#include <stdbool.h>
#include <stddef.h>

/* Characters b64url_encode writes for len bytes (no padding, no NUL). */
size_t b64url_encoded_len(size_t len);

/* Encodes len bytes of in into out, NUL-terminated. False, writing nothing,
 * when outcap < b64url_encoded_len(len) + 1. */
bool b64url_encode(const void *in, size_t len, char *out, size_t outcap)
	__attribute__((warn_unused_result));

/* Decodes in (unpadded; any other character is an error) into out. False on a
 * character outside the alphabet or when the bytes pass outcap. Leftover bits
 * of a last partial character are ignored. */
bool b64url_decode(const char *in, unsigned char *out, size_t outcap, size_t *outlen)
	__attribute__((warn_unused_result));

#endif
