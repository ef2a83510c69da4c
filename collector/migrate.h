/* Forward-only schema migrations, embedded from the .sql files in schema/ at build time. */
#ifndef VGC_MIGRATE_H
#define VGC_MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct migration {
	const char *name; /* file name without .sql, e.g. "0001_init" */
	const char *sql;
};

extern const struct migration migrations[];
extern const int migrations_count;

/* Applies every missing migration, each in its own transaction, holding an
 * advisory lock so concurrent migrators queue. *applied counts what ran. */
bool migrate_run(PGconn *conn, int *applied, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Fails naming the first migration the database lacks. */
bool migrate_check(PGconn *conn, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
