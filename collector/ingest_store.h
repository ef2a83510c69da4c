/* The database side of ingest, run on a pool worker: one transaction per batch
 * that stores new rows, updates the hourly rollup from exactly those rows, and
 * keeps the rejects as dead letters. */
#ifndef VGC_INGEST_STORE_H
#define VGC_INGEST_STORE_H

#include <stdbool.h>
#include <stddef.h>

struct pool_worker;
struct ingest_batch;
struct ingest_reject;
struct cJSON;

struct ingest_result {
	int accepted;
	int unpriced;	/* of the accepted rows, those the price book did not price */
	int duplicates; /* already stored, or repeated in the batch */
	/* Valid rows the database side refused on their own, in request order
	 * (owned; kept in ingest_rejects like the decoder's): rows older than
	 * the retention horizon, and rows PostgreSQL refused (a DATA fault). */
	struct ingest_reject *rejects;
	int nrejects;
};

/* Commits the batch. Returns 200 with *res filled once the transaction has
 * committed; 503 when the failure can pass (PostgreSQL unreachable, read-only,
 * shutting down, out of disk, ...: nothing committed, or the commit's outcome
 * is unknown, so a retry is safe either way); 500 for an error retrying will
 * not fix. err is the database's text, for the log only. Release *res with
 * ingest_result_release whatever the status. */
int ingest_store(struct pool_worker *w, const struct ingest_batch *b, long long key_id,
		 struct ingest_result *res, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void ingest_result_release(struct ingest_result *res);

/* Stores each element of a turns array that ingest_turn_error accepts as
 * jsonb (nul is ingest_parse_array's). *stored counts them. Same statuses as
 * ingest_store. */
int ingest_store_turns(struct pool_worker *w, const struct cJSON *root, const bool *nul,
		       long long key_id, const char *project, const char *tenant, int *stored,
		       char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
