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

void db_result_sqlstate(const PGresult *res, char *state)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (state)
		snprintf(state, DB_SQLSTATE_SIZE, "%s", s && strlen(s) == 5 ? s : "");
}

/* SQLSTATEs and classes that can pass without anyone changing the request:
 * class 08 connection exceptions, 25006 read-only transaction, 40 transaction
 * rollback (serialization, deadlock), 53 insufficient resources (disk full,
 * out of memory, too many connections), 55P03 lock not available (lock
 * timeout), 55006 object in use, 57 operator intervention (admin shutdown,
 * crash shutdown, cannot connect now; 57014 is a statement timeout), 58
 * system errors (I/O), and F0 configuration file errors. */
static bool db_state_transient(const char *s)
{
	static const char *const classes[] = { "08", "40", "53", "57", "58", "F0" };
	static const char *const states[] = { "25006", "55P03", "55006" };

	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(s, states[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strncmp(s, classes[i], 2) == 0)
			return true;
	return false;
}

enum db_fault db_classify(PGconn *conn, const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (!conn || PQstatus(conn) != CONNECTION_OK)
		return DB_FAULT_TRANSIENT;
	return db_classify_sqlstate(s);
}

enum db_fault db_classify_sqlstate(const char *s)
{
	if (!s || strlen(s) != 5)
		return DB_FAULT_TRANSIENT;
	if (db_state_transient(s))
		return DB_FAULT_TRANSIENT;
	if (strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0 || strncmp(s, "54", 2) == 0)
		return DB_FAULT_DATA;
	return DB_FAULT_INTERNAL;
}

int db_fault_status(enum db_fault f)
{
	return f == DB_FAULT_TRANSIENT ? 503 : 500;
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

PGresult *db_query(PGconn *conn, const char *sql, int n, const char *const *params, int *status,
		   char *err, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	db_result_error(conn, res, err, errlen);
	if (status)
		*status = db_fault_status(db_classify(conn, res));
	PQclear(res);
	return NULL;
}

void db_rollback(PGconn *conn)
{
	PGresult *res;

	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
}
