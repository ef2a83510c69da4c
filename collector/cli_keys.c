/* `vgcollector keys create|list|revoke`: API key administration, with
 * blocking libpq, printing for a person or a script. */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "cli.h"
#include "db.h"

static const char *const cli_keys_db_keys[] = { CLI_DB_KEYS, NULL };

static const struct cli_option cli_keys_create_opts[] = {
	{ "--role", "ROLE", "ingest, read or admin (required)", NULL },
	{ "--project", "P", "scope the key to one project (default: every project)", NULL },
	{ "--tenant", "T", "scope the key to one tenant (default: every tenant)", NULL },
	{ "--name", "LABEL", "a label shown by keys list", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_command cli_keys_create_cmd = {
	.name = "keys create",
	.synopsis = "--role ingest|read|admin [--project P] [--tenant T]\n"
		    "                               [--name LABEL] [--db CONNINFO]",
	.about = "Prints the new key alone on the first line of stdout; only its SHA-256\n"
		 "digest is stored, so it cannot be shown again.\n",
	.options = cli_keys_create_opts,
	.config_keys = cli_keys_db_keys,
};

static const struct cli_command cli_keys_list_cmd = {
	.name = "keys list",
	.synopsis = "[--db CONNINFO]",
	.about = "Lists every key with its display prefix, scope and times (UTC).\n",
	.config_keys = cli_keys_db_keys,
};

static const struct cli_command cli_keys_revoke_cmd = {
	.name = "keys revoke",
	.synopsis = "PREFIX_OR_ID [--db CONNINFO]",
	.about = "Takes the prefix that list shows, the key's id, or the full key; every\n"
		 "running collector refuses a revoked key within a second.\n",
	.config_keys = cli_keys_db_keys,
	.max_args = 1,
};

static const struct cli_command *const cli_keys_cmds[] = {
	&cli_keys_create_cmd,
	&cli_keys_list_cmd,
	&cli_keys_revoke_cmd,
	NULL,
};

static int cli_keys_create(const struct cli_args *a, PGconn *conn)
{
	const char *role_s = cli_args_value(a, "--role");
	const char *project = cli_args_value(a, "--project");
	const char *tenant = cli_args_value(a, "--tenant");
	char key[AUTH_KEY_LEN + 1], err[1024];
	enum auth_role role = ROLE_INGEST;
	long long id;

	(void)auth_role_parse(role_s, &role); /* cli_keys_check refused a bad one */
	if (!auth_create(conn, role, project, tenant, cli_args_value(a, "--name"), key, &id, err,
			 sizeof(err))) {
		fprintf(stderr, "vgcollector keys create: %s\n", err);
		return 1;
	}
	printf("%s\n", key);
	printf("id=%lld prefix=%.*s role=%s project=%s tenant=%s\n", id, AUTH_DISPLAY_PREFIX_LEN,
	       key, role_s, project ? project : "*", tenant ? tenant : "*");
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

static int cli_keys_revoke(const struct cli_args *a, PGconn *conn)
{
	char err[1024];
	long long id;

	if (!auth_revoke(conn, a->args[0], &id, err, sizeof(err))) {
		fprintf(stderr, "vgcollector keys revoke: %s\n", err);
		return 1;
	}
	printf("revoked key id=%lld\n", id);
	return 0;
}

/* The checks that need no database, done before connecting. */
static int cli_keys_check(const struct cli_command *cmd, const struct cli_args *a)
{
	const char *role_s = cli_args_value(a, "--role");
	enum auth_role role;

	if (cmd == &cli_keys_create_cmd && !role_s) {
		fprintf(stderr, "vgcollector keys create: --role ingest|read|admin is required\n");
		return 2;
	}
	if (cmd == &cli_keys_create_cmd && !auth_role_parse(role_s, &role)) {
		fprintf(stderr,
			"vgcollector keys create: --role \"%s\": expected ingest, read or admin\n",
			role_s);
		return 2;
	}
	if (cmd == &cli_keys_revoke_cmd && a->nargs != 1) {
		fprintf(stderr, "vgcollector keys revoke: expected one PREFIX_OR_ID\n");
		cli_print_help(cmd, stderr);
		return 2;
	}
	return -1;
}

int cli_keys(int argc, char **argv)
{
	const struct cli_command *cmd;
	struct cli_args a;
	struct config cfg;
	PGconn *conn;
	int rc;

	if (!(cmd = cli_subcommand("keys", cli_keys_cmds, argc, argv, &rc)))
		return rc;
	rc = cli_parse(cmd, argc - 1, argv + 1, &a);
	if (rc < 0)
		rc = cli_keys_check(cmd, &a);
	if (rc >= 0 || !cli_config_load(cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	conn = cli_db_connect(cmd, &cfg);
	config_free(&cfg);
	if (!conn) {
		cli_args_free(&a);
		return 1;
	}
	if (cmd == &cli_keys_create_cmd)
		rc = cli_keys_create(&a, conn);
	else if (cmd == &cli_keys_list_cmd)
		rc = cli_keys_list(conn);
	else
		rc = cli_keys_revoke(&a, conn);
	PQfinish(conn);
	cli_args_free(&a);
	return rc;
}
