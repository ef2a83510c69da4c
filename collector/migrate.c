/* Applies and checks schema migrations. Each migration runs in its own
 * transaction that first takes a transaction-scoped advisory lock, so
 * collectors migrating at once take turns, and nothing outlives the
 * transaction: it works through a transaction-mode pooler (pgbouncer), where
 * a session lock would stay behind on a pooled server connection. The
 * migration and its schema_migrations row commit together, so a failed
 * migration leaves no trace. */
#include "migrate.h"

#include <stdio.h>
#include <string.h>

#include "db.h"

/* Opens a migration's transaction: quiet notices (SET LOCAL, so no setting
 * leaks to the pooler's next client), then the lock, held until COMMIT. */
#define MIGRATE_BEGIN                                                                              \
	"BEGIN; SET LOCAL client_min_messages = warning;"                                          \
	" SELECT pg_advisory_xact_lock(hashtext('vgcollector.migrate'))"

static bool migrate_is_applied(PGconn *conn, const char *name, bool *applied, char *err,
			       size_t errlen)
{
	const char *params[1] = { name };
	PGresult *res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
				     NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (ok)
		*applied = PQntuples(res) > 0;
	else
		db_result_error(conn, res, err, errlen);
	PQclear(res);
	return ok;
}

/* Applies m unless it is already there (checked under the lock, as another
 * collector may have applied it while we waited). */
static bool migrate_apply(PGconn *conn, const struct migration *m, bool *applied, char *err,
			  size_t errlen)
{
	const char *params[1] = { m->name };
	PGresult *res;
	char msg[1024];
	bool done = false;

	*applied = false;
	if (!db_exec(conn, MIGRATE_BEGIN, err, errlen)) {
		db_rollback(conn);
		return false;
	}
	if (!migrate_is_applied(conn, m->name, &done, err, errlen)) {
		db_rollback(conn);
		return false;
	}
	if (done)
		return db_exec(conn, "COMMIT", err, errlen);
	if (!db_exec(conn, m->sql, msg, sizeof(msg))) {
		snprintf(err, errlen, "migration %s: %s", m->name, msg);
		db_rollback(conn);
		return false;
	}
	res = PQexecParams(conn, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, NULL,
			   params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		db_rollback(conn);
		return false;
	}
	PQclear(res);
	if (!db_exec(conn, "COMMIT", err, errlen))
		return false;
	*applied = true;
	return true;
}

bool migrate_run(PGconn *conn, int *applied, char *err, size_t errlen)
{
	*applied = 0;
	if (!db_exec(conn,
		     MIGRATE_BEGIN "; CREATE TABLE IF NOT EXISTS schema_migrations ("
				   " version text PRIMARY KEY,"
				   " applied_at timestamptz NOT NULL DEFAULT now()); COMMIT",
		     err, errlen)) {
		db_rollback(conn);
		return false;
	}
	for (int i = 0; i < migrations_count; i++) {
		bool did = false;
		if (!migrate_apply(conn, &migrations[i], &did, err, errlen))
			return false;
		if (did)
			(*applied)++;
	}
	return true;
}

bool migrate_check(PGconn *conn, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
	bool exists;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!exists) {
		snprintf(
			err, errlen,
			"database is not migrated (no schema_migrations table); run `vgcollector migrate`");
		return false;
	}
	for (int i = 0; i < migrations_count; i++) {
		bool done = false;
		if (!migrate_is_applied(conn, migrations[i].name, &done, err, errlen))
			return false;
		if (!done) {
			snprintf(
				err, errlen,
				"database schema is older than this binary: migration %s is missing; run `vgcollector migrate`",
				migrations[i].name);
			return false;
		}
	}
	return true;
}
