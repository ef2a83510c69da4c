/* API keys: generation, SHA-256 digests, and the in-memory cache the loop
 * authenticates against (no database round trip per request). */
#ifndef VGC_AUTH_H
#define VGC_AUTH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

enum auth_role { ROLE_INGEST = 0, ROLE_READ, ROLE_ADMIN };

#define AUTH_KEY_PREFIX "vgk_"
#define AUTH_KEY_LEN 47 /* "vgk_" + 43 chars of base64url(32 random bytes) */
#define AUTH_DISPLAY_PREFIX_LEN 12

struct auth_key {
	unsigned char digest[32];
	long long id;
	enum auth_role role;
	char prefix[AUTH_DISPLAY_PREFIX_LEN + 1];
	char *project; /* scope; NULL = every project */
	char *tenant;  /* scope; NULL = every tenant */
};

/* An immutable snapshot of the live (not revoked) keys, sorted by digest.
 * Built off the loop (keywatch.c) and swapped in whole on the loop. */
struct auth_cache {
	struct auth_key *keys;
	size_t count;
};

enum auth_result { AUTH_OK = 0, AUTH_MISSING, AUTH_MALFORMED, AUTH_UNKNOWN };

const char *auth_role_name(enum auth_role role);
/* The 401 message for an auth_lookup failure, in our words. */
const char *auth_problem(enum auth_result why);
bool auth_role_parse(const char *s, enum auth_role *out);

/* SHA-256 of the key text. */
void auth_digest(const char *key, unsigned char out[32]);
/* Writes a new random key (OpenSSL CSPRNG, 256 bits) to out[AUTH_KEY_LEN + 1]. */
bool auth_key_generate(char out[AUTH_KEY_LEN + 1]) __attribute__((warn_unused_result));

/* Loads every unrevoked key. The caller owns the result (auth_cache_free). */
struct auth_cache *auth_cache_load(PGconn *conn, char *err, size_t errlen);
void auth_cache_free(struct auth_cache *cache);

/* Finds the key named by an Authorization header value ("Bearer KEY").
 * The returned key lives as long as the cache. */
const struct auth_key *auth_lookup(const struct auth_cache *cache, const char *header,
				   enum auth_result *why);

/* Key administration for the CLI (blocking). */
bool auth_create(PGconn *conn, enum auth_role role, const char *project, const char *tenant,
		 const char *name, char key_out[AUTH_KEY_LEN + 1], long long *id_out, char *err,
		 size_t errlen) __attribute__((warn_unused_result));
/* Revokes by display prefix, numeric id or full key. */
bool auth_revoke(PGconn *conn, const char *which, long long *id_out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
