/* Applies and checks schema migrations. A session advisory lock serialises
 * collectors that migrate at once; each migration and its schema_migrations
 * row commit together, so a failed migration leaves no trace. */
#include "migrate.h"

#include <stdio.h>
#include <string.h>

#include "db.h"

#define MIGRATE_LOCK "SELECT pg_advisory_lock(hashtext('vgcollector.migrate'))"
#define MIGRATE_UNLOCK "SELECT pg_advisory_unlock(hashtext('vgcollector.migrate'))"

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

static bool migrate_apply(PGconn *conn, const struct migration *m, char *err, size_t errlen)
{
	const char *params[1] = { m->name };
	PGresult *res;
	char msg[1024];

	if (!db_exec(conn, "BEGIN", err, errlen))
		return false;
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
	return db_exec(conn, "COMMIT", err, errlen);
}

bool migrate_run(PGconn *conn, int *applied, char *err, size_t errlen)
{
	char msg[256];
	bool ok = true;

	*applied = 0;
	if (!db_exec(conn, "SET client_min_messages = warning", err, errlen) ||
	    !db_exec(conn, MIGRATE_LOCK, err, errlen))
		return false;
	if (!db_exec(conn,
		     "CREATE TABLE IF NOT EXISTS schema_migrations ("
		     " version text PRIMARY KEY,"
		     " applied_at timestamptz NOT NULL DEFAULT now())",
		     err, errlen))
		ok = false;
	for (int i = 0; ok && i < migrations_count; i++) {
		bool done = false;
		ok = migrate_is_applied(conn, migrations[i].name, &done, err, errlen);
		if (ok && !done) {
			ok = migrate_apply(conn, &migrations[i], err, errlen);
			if (ok)
				(*applied)++;
		}
	}
	if (!db_exec(conn, MIGRATE_UNLOCK, msg, sizeof(msg)) && ok) {
		snprintf(err, errlen, "%s", msg);
		ok = false;
	}
	return ok;
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
