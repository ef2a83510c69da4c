/* PostgreSQL helpers shared by the CLI and the worker threads: picking the
 * conninfo (--db, then VGC_DB, then libpq's defaults) and blocking connects. */
#ifndef VGC_DB_H
#define VGC_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* The conninfo to use: flag if set, else $VGC_DB, else "" (libpq's PG* defaults). */
const char *db_conninfo(const char *flag);

/* Connects (blocking, for CLI commands and worker threads only). Returns NULL
 * with err set on failure; the caller owns the connection (PQfinish). */
PGconn *db_connect(const char *conninfo, int timeout_s, char *err, size_t errlen);

/* Runs a command that returns no rows. */
bool db_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Runs sql with n text params: the result (rows or a command's), or NULL
 * with err and, when status is not NULL, the HTTP status the failure maps to
 * (db_classify, db_fault_status). The caller PQclears the result. */
PGresult *db_query(PGconn *conn, const char *sql, int n, const char *const *params, int *status,
		   char *err, size_t errlen) __attribute__((warn_unused_result));

/* Drains pending results and rolls back; a broken connection is the caller's
 * to reset, so failures here are ignored. */
void db_rollback(PGconn *conn);

/* What a failed statement means for the request that ran it. */
enum db_fault {
	DB_FAULT_TRANSIENT, /* may pass on its own: connection lost, read-only, shutdown,
			     * serialization, lock timeout, disk full, too many
			     * connections. The client gets 503 + Retry-After. */
	DB_FAULT_DATA,	    /* the data itself cannot be stored (class 22, 23, 54):
			     * retrying the same rows fails the same way. */
	DB_FAULT_INTERNAL   /* anything else: our bug or the schema's. The client
			     * gets 500 with our words, never the database's. */
};

/* Classifies a failed result by its SQLSTATE (and the connection's state when
 * there is no result, or no SQLSTATE: a lost connection is transient). */
enum db_fault db_classify(PGconn *conn, const PGresult *res);
/* The same rule for a bare SQLSTATE on a live connection (NULL or malformed:
 * transient, as no SQLSTATE means the server did not answer). */
enum db_fault db_classify_sqlstate(const char *sqlstate);
/* The HTTP status for a fault: 503 for transient, 500 otherwise (a DATA fault
 * that reaches a client whole is still ours to explain). */
int db_fault_status(enum db_fault f);

/* Room for a SQLSTATE: five characters and the NUL. */
#define DB_SQLSTATE_SIZE 6

/* Copies a failed result's SQLSTATE into state (DB_SQLSTATE_SIZE bytes; may
 * be NULL), "" when there is none (no result: the server did not answer). */
void db_result_sqlstate(const PGresult *res, char *state);

/* Copies PQerrorMessage without the trailing newline. */
void db_error(PGconn *conn, char *err, size_t errlen);

/* Copies the result's error message (or the connection's) without its newline. */
void db_result_error(PGconn *conn, const PGresult *res, char *err, size_t errlen);

#endif
