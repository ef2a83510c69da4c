/* The database side of ingest, run on a pool worker: one transaction per batch
 * that stores new rows, updates the hourly rollup from exactly those rows, and
 * keeps the rejects as dead letters. */
#ifndef VGC_INGEST_STORE_H
#define VGC_INGEST_STORE_H

#include <stdbool.h>
#include <stddef.h>

struct pool_worker;
struct ingest_batch;
struct cJSON;

struct ingest_result {
	int accepted;
	int duplicates; /* already stored, or repeated in the batch */
};

/* Commits the batch. Returns 200 with *res filled once the transaction has
 * committed; 503 when PostgreSQL is unreachable or failed (nothing committed,
 * or the commit's outcome is unknown: a retry is safe either way); 500 for an
 * error that retrying will not fix. err says what happened. */
int ingest_store(struct pool_worker *w, const struct ingest_batch *b, long long key_id,
		 struct ingest_result *res, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Stores each element of a turns array that ingest_turn_error accepts as
 * jsonb (nul is ingest_parse_array's). *stored counts them. */
int ingest_store_turns(struct pool_worker *w, const struct cJSON *root, const bool *nul,
		       long long key_id, const char *project, const char *tenant, int *stored,
		       char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
