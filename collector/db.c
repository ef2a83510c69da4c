/* Blocking libpq helpers. Never called on the event loop thread: the loop only
 * talks to PostgreSQL through the worker pool (pool.c) and the key watcher. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *db_conninfo(const char *flag)
{
	const char *env;

	if (flag && flag[0])
		return flag;
	env = getenv("VGC_DB");
	if (env && env[0])
		return env;
	return "";
}

static void db_chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

void db_error(PGconn *conn, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", conn ? PQerrorMessage(conn) : "no connection");
	db_chomp(err);
}

void db_result_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;

	if (!m || !m[0]) {
		db_error(conn, err, errlen);
		return;
	}
	snprintf(err, errlen, "%s", m);
	db_chomp(err);
}

PGconn *db_connect(const char *conninfo, int timeout_s, char *err, size_t errlen)
{
	/* dbname carries the whole conninfo string or URI (expand_dbname = 1); it
	 * comes last so a connect_timeout the user wrote beats ours. */
	const char *keys[] = { "connect_timeout", "fallback_application_name", "dbname", NULL };
	const char *vals[4];
	char timeout[16];
	PGconn *conn;

	snprintf(timeout, sizeof(timeout), "%d", timeout_s > 0 ? timeout_s : 5);
	vals[0] = timeout;
	vals[1] = "vgcollector";
	vals[2] = conninfo;
	vals[3] = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (!conn) {
		snprintf(err, errlen, "out of memory connecting to PostgreSQL");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		db_error(conn, err, errlen);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

bool db_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = res && (PQresultStatus(res) == PGRES_COMMAND_OK ||
			  PQresultStatus(res) == PGRES_TUPLES_OK);

	if (!ok)
		db_result_error(conn, res, err, errlen);
	PQclear(res);
	return ok;
}

void db_rollback(PGconn *conn)
{
	PGresult *res;

	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
}
