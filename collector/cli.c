/* `vgcollector migrate` and `vgcollector keys ...`: short-lived commands that
 * talk to PostgreSQL with blocking libpq and print for a person or a script. */
#include "cli.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "migrate.h"

bool cli_is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value, bool *err)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return false;
	if (argv[*i][n] == '=') {
		*value = argv[*i] + n + 1;
		return true;
	}
	if (argv[*i][n] != '\0')
		return false;
	if (*i + 1 >= argc) {
		fprintf(stderr, "vgcollector: %s needs a value\n", name);
		*err = true;
		return true;
	}
	*value = argv[++*i];
	return true;
}

static PGconn *cli_connect(const char *db)
{
	char err[1024];
	PGconn *conn = db_connect(db_conninfo(db), 10, err, sizeof(err));

	if (!conn)
		fprintf(stderr, "vgcollector: cannot connect to PostgreSQL: %s\n", err);
	return conn;
}

static const char migrate_usage[] =
	"usage: vgcollector migrate [--db CONNINFO]\n"
	"\n"
	"Applies every schema migration the database lacks, each in one transaction,\n"
	"recorded in schema_migrations. Safe to run from several hosts at once.\n"
	"The database is --db, else $VGC_DB, else libpq's PG* defaults.\n";

int cli_migrate(int argc, char **argv)
{
	const char *db = NULL;
	char err[2048];
	bool bad = false;
	PGconn *conn;
	int applied;

	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(migrate_usage, stdout);
			return 0;
		}
		if (cli_opt(argc, argv, &i, "--db", &db, &bad)) {
			if (bad)
				return 2;
			continue;
		}
		fprintf(stderr, "vgcollector migrate: unknown argument \"%s\"\n%s", argv[i],
			migrate_usage);
		return 2;
	}
	conn = cli_connect(db);
	if (!conn)
		return 1;
	if (!migrate_run(conn, &applied, err, sizeof(err))) {
		fprintf(stderr, "vgcollector migrate: %s\n", err);
		PQfinish(conn);
		return 1;
	}
	printf("schema is current: %d migration%s applied, %d known\n", applied,
	       applied == 1 ? "" : "s", migrations_count);
	PQfinish(conn);
	return 0;
}

static const char keys_usage[] =
	"usage: vgcollector keys create --role ingest|read|admin [--project P] [--tenant T]\n"
	"                               [--name LABEL] [--db CONNINFO]\n"
	"       vgcollector keys list [--db CONNINFO]\n"
	"       vgcollector keys revoke PREFIX_OR_ID [--db CONNINFO]\n"
	"\n"
	"create prints the new key alone on the first line of stdout; only its SHA-256\n"
	"digest is stored, so it cannot be shown again. list shows display prefixes.\n"
	"revoke takes the prefix that list shows, the key's id, or the full key; every\n"
	"running collector refuses a revoked key within a second.\n";

static int cli_keys_create(int argc, char **argv, const char *db)
{
	const char *role_s = NULL, *project = NULL, *tenant = NULL, *name = NULL;
	char key[AUTH_KEY_LEN + 1], err[1024];
	enum auth_role role;
	long long id;
	bool bad = false;
	PGconn *conn;

	for (int i = 0; i < argc; i++) {
		if (cli_opt(argc, argv, &i, "--role", &role_s, &bad) ||
		    cli_opt(argc, argv, &i, "--project", &project, &bad) ||
		    cli_opt(argc, argv, &i, "--tenant", &tenant, &bad) ||
		    cli_opt(argc, argv, &i, "--name", &name, &bad)) {
			if (bad)
				return 2;
			continue;
		}
		fprintf(stderr, "vgcollector keys create: unknown argument \"%s\"\n", argv[i]);
		return 2;
	}
	if (!role_s) {
		fprintf(stderr, "vgcollector keys create: --role ingest|read|admin is required\n");
		return 2;
	}
	if (!auth_role_parse(role_s, &role)) {
		fprintf(stderr,
			"vgcollector keys create: --role \"%s\": expected ingest, read or admin\n",
			role_s);
		return 2;
	}
	conn = cli_connect(db);
	if (!conn)
		return 1;
	if (!auth_create(conn, role, project, tenant, name, key, &id, err, sizeof(err))) {
		fprintf(stderr, "vgcollector keys create: %s\n", err);
		PQfinish(conn);
		return 1;
	}
	printf("%s\n", key);
	printf("id=%lld prefix=%.*s role=%s project=%s tenant=%s\n", id, AUTH_DISPLAY_PREFIX_LEN,
	       key, role_s, project ? project : "*", tenant ? tenant : "*");
	PQfinish(conn);
	return 0;
}

static int cli_keys_list(PGconn *conn)
{
	PGresult *res = PQexec(
		conn,
		"SELECT id, prefix, role, coalesce(project, '*'), coalesce(tenant_id, '*'),"
		" coalesce(name, ''), to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
		" coalesce(to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '-'),"
		" coalesce(to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '-')"
		" FROM api_keys ORDER BY id");
	char err[1024];

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, sizeof(err));
		fprintf(stderr, "vgcollector keys list: %s\n", err);
		PQclear(res);
		return 1;
	}
	printf("%-6s %-13s %-7s %-16s %-16s %-20s %-17s %-17s %s\n", "ID", "PREFIX", "ROLE",
	       "PROJECT", "TENANT", "NAME", "CREATED (UTC)", "LAST USED", "REVOKED");
	for (int i = 0; i < PQntuples(res); i++)
		printf("%-6s %-13s %-7s %-16s %-16s %-20s %-17s %-17s %s\n", PQgetvalue(res, i, 0),
		       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		       PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 6),
		       PQgetvalue(res, i, 7), PQgetvalue(res, i, 8));
	PQclear(res);
	return 0;
}

int cli_keys(int argc, char **argv)
{
	const char *db = NULL, *sub, *target = NULL;
	char *rest[32];
	int nrest = 0, rc;
	bool bad = false;
	PGconn *conn;
	char err[1024];
	long long id;

	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(keys_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	for (int i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(keys_usage, stdout);
			return 0;
		}
		if (cli_opt(argc, argv, &i, "--db", &db, &bad)) {
			if (bad)
				return 2;
			continue;
		}
		if (nrest < 32)
			rest[nrest++] = argv[i];
	}
	if (strcmp(sub, "create") == 0)
		return cli_keys_create(nrest, rest, db);
	if (strcmp(sub, "list") == 0) {
		if (nrest) {
			fprintf(stderr, "vgcollector keys list: unknown argument \"%s\"\n",
				rest[0]);
			return 2;
		}
		conn = cli_connect(db);
		if (!conn)
			return 1;
		rc = cli_keys_list(conn);
		PQfinish(conn);
		return rc;
	}
	if (strcmp(sub, "revoke") == 0) {
		if (nrest != 1) {
			fprintf(stderr, "vgcollector keys revoke: expected one PREFIX_OR_ID\n%s",
				keys_usage);
			return 2;
		}
		target = rest[0];
		conn = cli_connect(db);
		if (!conn)
			return 1;
		if (!auth_revoke(conn, target, &id, err, sizeof(err))) {
			fprintf(stderr, "vgcollector keys revoke: %s\n", err);
			PQfinish(conn);
			return 1;
		}
		printf("revoked key id=%lld\n", id);
		PQfinish(conn);
		return 0;
	}
	fprintf(stderr, "vgcollector keys: unknown subcommand \"%s\"\n%s", sub, keys_usage);
	return 2;
}
