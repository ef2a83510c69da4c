/* The command-line plumbing every subcommand shares: reading argv against the
 * command's table, the generated --help, and loading the configuration. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

bool cli_is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

static void cli_subcommand_usage(const struct cli_command *const *cmds, FILE *f)
{
	for (const struct cli_command *const *c = cmds; *c; c++) {
		if (c != cmds)
			fputs("\n", f);
		cli_print_help(*c, f);
	}
}

const struct cli_command *cli_subcommand(const char *group, const struct cli_command *const *cmds,
					 int argc, char **argv, int *rc)
{
	const struct cli_command *cmd = NULL;

	if (argc < 2 || cli_is_help(argv[1])) {
		cli_subcommand_usage(cmds, argc < 2 ? stderr : stdout);
		*rc = argc < 2 ? 2 : 0;
		return NULL;
	}
	for (const struct cli_command *const *c = cmds; *c; c++)
		if (strcmp((*c)->name + strlen(group) + 1, argv[1]) == 0)
			cmd = *c;
	if (!cmd) {
		fprintf(stderr, "vgcollector %s: unknown subcommand \"%s\"\n\n", group, argv[1]);
		cli_subcommand_usage(cmds, stderr);
		*rc = 2;
	}
	return cmd;
}

/* Matches argv[*i] against --name VALUE or --name=VALUE; advances *i past a
 * separate value. Sets *err when the value is missing. */
static bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value, bool *err)
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

/* A command whose config_keys is empty reads no configuration at all. */
static bool cli_reads_config(const struct cli_command *cmd)
{
	return !cmd->config_keys || cmd->config_keys[0];
}

static bool cli_takes_key(const struct cli_command *cmd, const char *name)
{
	if (!cmd->config_keys)
		return true;
	for (const char *const *k = cmd->config_keys; *k; k++)
		if (strcmp(*k, name) == 0)
			return true;
	return false;
}

/* The config key a --flag names ("--pool-size=3" -> pool_size), or NULL. */
static const struct config_param *cli_flag_key(const struct cli_command *cmd, const char *arg)
{
	char name[64];
	const struct config_param *p;

	if (strncmp(arg, "--", 2) != 0 || strcspn(arg + 2, "=") >= sizeof(name) - 6)
		return NULL;
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg + 2, "="), arg + 2);
	for (char *c = name; *c; c++)
		if (*c == '-')
			*c = '_';
	/* --tls-cert and --tls-key are short for the *_file keys. */
	if (strcmp(name, "tls_cert") == 0 || strcmp(name, "tls_key") == 0)
		strcat(name, "_file");
	p = config_find(name);
	return p && cli_takes_key(cmd, p->name) ? p : NULL;
}

/* Records the command's own option opt (a switch, or one with a value). */
static int cli_take_option(const struct cli_command *cmd, int argc, char **argv, int *i,
			   struct cli_args *out)
{
	for (const struct cli_option *o = cmd->options; o && o->flag; o++) {
		const char *v = "";
		bool bad = false;

		if (o->arg ? !cli_opt(argc, argv, i, o->flag, &v, &bad)
			   : strcmp(argv[*i], o->flag) != 0)
			continue;
		if (bad)
			return 2;
		if (out->ngiven == CLI_MAX_GIVEN) {
			fprintf(stderr, "vgcollector %s: too many options\n", cmd->name);
			return 2;
		}
		out->given[out->ngiven].opt = o;
		out->given[out->ngiven++].value = v;
		return 0;
	}
	return -1;
}

int cli_parse(const struct cli_command *cmd, int argc, char **argv, struct cli_args *out)
{
	memset(out, 0, sizeof(*out));
	out->flag_names = calloc((size_t)argc + 1, sizeof(char *));
	out->flag_values = calloc((size_t)argc + 1, sizeof(char *));
	if (!out->flag_names || !out->flag_values) {
		fprintf(stderr, "vgcollector %s: out of memory\n", cmd->name);
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *v = NULL;
		const struct config_param *p;
		bool bad = false;
		int rc;

		if (cli_is_help(arg)) {
			cli_print_help(cmd, stdout);
			return 0;
		}
		if ((rc = cli_take_option(cmd, argc, argv, &i, out)) >= 0) {
			if (rc)
				return rc;
			continue;
		}
		if (cli_reads_config(cmd) &&
		    cli_opt(argc, argv, &i, "--config", &out->config_flag, &bad)) {
			if (bad)
				return 2;
			continue;
		}
		if ((p = cli_flag_key(cmd, arg))) {
			char opt[80];

			snprintf(opt, sizeof(opt), "%.*s", (int)strcspn(arg, "="), arg);
			if (!cli_opt(argc, argv, &i, opt, &v, &bad) || bad)
				return 2;
			out->flag_names[out->nflags] = strdup(p->name);
			out->flag_values[out->nflags] = strdup(v);
			if (!out->flag_names[out->nflags++] || !out->flag_values[out->nflags - 1]) {
				fprintf(stderr, "vgcollector %s: out of memory\n", cmd->name);
				return 1;
			}
			continue;
		}
		if (strncmp(arg, "--", 2) == 0 || out->nargs >= cmd->max_args) {
			fprintf(stderr, "vgcollector %s: %s \"%s\" (see vgcollector %s --help)\n",
				cmd->name,
				strncmp(arg, "--", 2) == 0 ? "unknown option"
							   : "unexpected argument",
				arg, cmd->name);
			return 2;
		}
		out->args[out->nargs++] = arg;
	}
	return -1;
}

void cli_args_free(struct cli_args *a)
{
	for (int i = 0; i < a->nflags; i++) {
		free(a->flag_names[i]);
		free(a->flag_values[i]);
	}
	free(a->flag_names);
	free(a->flag_values);
	a->flag_names = a->flag_values = NULL;
	a->nflags = 0;
}

const char *cli_args_value(const struct cli_args *a, const char *flag)
{
	const char *v = NULL;

	for (int i = 0; i < a->ngiven; i++)
		if (strcmp(a->given[i].opt->flag, flag) == 0)
			v = a->given[i].value;
	return v;
}

bool cli_config_load(const struct cli_command *cmd, const struct cli_args *a, struct config *cfg)
{
	char err[2048];

	if (!config_load(cfg, config_path_resolve(a->config_flag), a->flag_names, a->flag_values,
			 a->nflags, err, sizeof(err))) {
		fprintf(stderr, "vgcollector %s: %s\n", cmd->name, err);
		return false;
	}
	return true;
}

PGconn *cli_db_connect(const struct cli_command *cmd, const struct config *cfg)
{
	char err[1024];
	PGconn *conn = db_connect(cfg->db, cfg->db_connect_timeout_s, err, sizeof(err));

	if (!conn)
		fprintf(stderr, "vgcollector %s: cannot connect to PostgreSQL: %s\n", cmd->name,
			err);
	return conn;
}

void cli_print_help(const struct cli_command *cmd, FILE *f)
{
	fprintf(f, "usage: vgcollector %s%s%s\n\n%s", cmd->name, cmd->synopsis[0] ? " " : "",
		cmd->synopsis, cmd->about);
	if (!cli_reads_config(cmd) && !(cmd->options && cmd->options->flag))
		return;
	fprintf(f, "\nOptions:\n");
	for (const struct cli_option *o = cmd->options; o && o->flag; o++) {
		char flag[64];

		snprintf(flag, sizeof(flag), "%s%s%s", o->flag, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		fprintf(f, "  %-28s %s\n", flag, o->help);
	}
	if (!cli_reads_config(cmd))
		return;
	fprintf(f, "  %-28s %s\n", "--config FILE",
		"config file (default: $VGC_CONFIG, else " CONFIG_DEFAULT_PATH " if it exists)");
	config_print_help(f, cmd->config_keys);
	fprintf(f, "\nSettings come from the config file, then VGC_<KEY> environment variables,\n"
		   "then these flags (each a config key, with '-' for '_').\n");
}
