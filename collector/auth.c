/* Key digests, generation, the sorted in-memory key cache, and the SQL behind
 * `keys create` and `keys revoke`. Only digests are ever stored. */
#include "auth.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "b64url.h"
#include "db.h"
#include "row.h"

static const char *const role_names[] = { "ingest", "read", "admin" };

const char *auth_problem(enum auth_result why)
{
	return why == AUTH_MISSING     ? "missing Authorization: Bearer <key> header"
	       : why == AUTH_MALFORMED ? "Authorization header must be \"Bearer <key>\""
				       : "unknown or revoked API key";
}

const char *auth_role_name(enum auth_role role)
{
	return role_names[role];
}

bool auth_role_parse(const char *s, enum auth_role *out)
{
	for (int i = 0; i < 3; i++) {
		if (strcmp(s, role_names[i]) == 0) {
			*out = (enum auth_role)i;
			return true;
		}
	}
	return false;
}

void auth_digest(const char *key, unsigned char out[32])
{
	SHA256((const unsigned char *)key, strlen(key), out);
}

bool auth_key_generate(char out[AUTH_KEY_LEN + 1])
{
	unsigned char rnd[32];
	size_t pos = strlen(AUTH_KEY_PREFIX);

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return false;
	memcpy(out, AUTH_KEY_PREFIX, pos);
	/* 32 bytes -> 43 base64url characters (the last carries 4 bits). */
	return b64url_encode(rnd, sizeof(rnd), out + pos, AUTH_KEY_LEN + 1 - pos) &&
	       strlen(out) == AUTH_KEY_LEN;
}

static int auth_key_cmp(const void *a, const void *b)
{
	return memcmp(((const struct auth_key *)a)->digest, ((const struct auth_key *)b)->digest,
		      32);
}

/* Copies a nullable text column into *out (NULL for SQL NULL); false when
 * out of memory. */
static bool auth_strdup_or_null(PGresult *res, int row, int col, char **out)
{
	*out = NULL;
	if (PQgetisnull(res, row, col))
		return true;
	*out = strdup(PQgetvalue(res, row, col));
	return *out != NULL;
}

struct auth_cache *auth_cache_load(PGconn *conn, char *err, size_t errlen)
{
	PGresult *res =
		PQexecParams(conn,
			     "SELECT digest, id, role, prefix, project, tenant_id FROM api_keys"
			     " WHERE revoked_at IS NULL",
			     0, NULL, NULL, NULL, NULL, 1 /* binary: digest as bytes */);
	struct auth_cache *c;
	int n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return NULL;
	}
	n = PQntuples(res);
	c = calloc(1, sizeof(*c));
	if (!c || (n && !(c->keys = calloc((size_t)n, sizeof(*c->keys))))) {
		snprintf(err, errlen, "out of memory loading %d keys", n);
		free(c);
		PQclear(res);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		struct auth_key *k = &c->keys[c->count];
		const unsigned char *id = (const unsigned char *)PQgetvalue(res, i, 1);
		char role[16];
		int rl;

		if (PQgetlength(res, i, 0) != 32 || PQgetlength(res, i, 1) != 8)
			continue;
		memcpy(k->digest, PQgetvalue(res, i, 0), 32);
		k->id = 0;
		for (int b = 0; b < 8; b++)
			k->id = (long long)((unsigned long long)k->id << 8 | id[b]);
		rl = PQgetlength(res, i, 2);
		snprintf(role, sizeof(role), "%.*s", rl, PQgetvalue(res, i, 2));
		if (!auth_role_parse(role, &k->role))
			continue;
		snprintf(k->prefix, sizeof(k->prefix), "%.*s", PQgetlength(res, i, 3),
			 PQgetvalue(res, i, 3));
		/* Counted first, so auth_cache_free frees what was copied. */
		c->count++;
		if (!auth_strdup_or_null(res, i, 4, &k->project) ||
		    !auth_strdup_or_null(res, i, 5, &k->tenant)) {
			snprintf(err, errlen, "out of memory loading %d keys", n);
			auth_cache_free(c);
			PQclear(res);
			return NULL;
		}
	}
	PQclear(res);
	if (c->count)
		qsort(c->keys, c->count, sizeof(*c->keys), auth_key_cmp);
	return c;
}

void auth_cache_free(struct auth_cache *cache)
{
	if (!cache)
		return;
	for (size_t i = 0; i < cache->count; i++) {
		free(cache->keys[i].project);
		free(cache->keys[i].tenant);
	}
	free(cache->keys);
	free(cache);
}

const struct auth_key *auth_lookup(const struct auth_cache *cache, const char *header,
				   enum auth_result *why)
{
	struct auth_key probe;
	const struct auth_key *k;
	const char *key;

	if (!header || !header[0]) {
		*why = AUTH_MISSING;
		return NULL;
	}
	if (strncasecmp(header, "Bearer ", 7) != 0) {
		*why = AUTH_MALFORMED;
		return NULL;
	}
	key = header + 7;
	while (*key == ' ')
		key++;
	if (!*key || strlen(key) > 512) {
		*why = AUTH_MALFORMED;
		return NULL;
	}
	auth_digest(key, probe.digest);
	k = cache && cache->count
		    ? bsearch(&probe, cache->keys, cache->count, sizeof(*cache->keys), auth_key_cmp)
		    : NULL;
	*why = k ? AUTH_OK : AUTH_UNKNOWN;
	return k;
}

bool auth_create(PGconn *conn, enum auth_role role, const char *project, const char *tenant,
		 const char *name, char key_out[AUTH_KEY_LEN + 1], long long *id_out, char *err,
		 size_t errlen)
{
	unsigned char digest[32];
	char prefix[AUTH_DISPLAY_PREFIX_LEN + 1];
	const char *params[6];
	int lengths[6] = { 32, 0, 0, 0, 0, 0 };
	int formats[6] = { 1, 0, 0, 0, 0, 0 };
	PGresult *res;
	bool ok;

	if (tenant && !row_tenant_valid(tenant)) {
		snprintf(err, errlen, "--tenant \"%s\": 1-128 of only letters, digits, '-' and '_'",
			 tenant);
		return false;
	}
	if (project && (!project[0] || strlen(project) > ROW_PROJECT_MAX_CHARS)) {
		snprintf(err, errlen, "--project: 1-%d characters", ROW_PROJECT_MAX_CHARS);
		return false;
	}
	if (!auth_key_generate(key_out)) {
		snprintf(err, errlen, "OpenSSL RAND_bytes failed");
		return false;
	}
	auth_digest(key_out, digest);
	snprintf(prefix, sizeof(prefix), "%.*s", AUTH_DISPLAY_PREFIX_LEN, key_out);
	params[0] = (const char *)digest;
	params[1] = prefix;
	params[2] = auth_role_name(role);
	params[3] = project;
	params[4] = tenant;
	params[5] = name;
	res = PQexecParams(conn,
			   "INSERT INTO api_keys (digest, prefix, role, project, tenant_id, name)"
			   " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
			   6, NULL, params, lengths, formats, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (ok)
		*id_out = atoll(PQgetvalue(res, 0, 0));
	else
		db_result_error(conn, res, err, errlen);
	PQclear(res);
	return ok;
}

bool auth_revoke(PGconn *conn, const char *which, long long *id_out, char *err, size_t errlen)
{
	unsigned char digest[32];
	char hex[65];
	const char *params[1];
	const char *sql;
	PGresult *res;
	bool numeric = which[0] != '\0';
	int n;

	for (const char *p = which; *p; p++)
		if (*p < '0' || *p > '9')
			numeric = false;
	if (strlen(which) == AUTH_KEY_LEN && strncmp(which, AUTH_KEY_PREFIX, 4) == 0) {
		auth_digest(which, digest);
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", digest[i]);
		params[0] = hex;
		sql = "UPDATE api_keys SET revoked_at = now() WHERE digest = decode($1, 'hex')"
		      " AND revoked_at IS NULL RETURNING id";
	} else if (numeric) {
		params[0] = which;
		sql = "UPDATE api_keys SET revoked_at = now() WHERE id = $1::bigint"
		      " AND revoked_at IS NULL RETURNING id";
	} else {
		/* A display prefix must name exactly one live key. */
		params[0] = which;
		res = PQexecParams(
			conn,
			"SELECT count(*) FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL", 1,
			NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			db_result_error(conn, res, err, errlen);
			PQclear(res);
			return false;
		}
		n = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		if (n > 1) {
			snprintf(err, errlen,
				 "prefix %s matches %d live keys; revoke by id (see `keys list`)",
				 which, n);
			return false;
		}
		sql = "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1"
		      " AND revoked_at IS NULL RETURNING id";
	}
	res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	if (PQntuples(res) == 0) {
		snprintf(err, errlen, "no live key matches \"%.20s%s\"", which,
			 strlen(which) > 20 ? "..." : "");
		PQclear(res);
		return false;
	}
	*id_out = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return true;
}
