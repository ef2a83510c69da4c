/* The command line: one table per subcommand (its options and the config keys
 * it takes as flags), one parser, one generated --help, and one way to load
 * the configuration (file, then VGC_* environment, then flags). Each
 * subcommand lives in its own cli_NAME.c and is declared here. */
#ifndef VGC_CLI_H
#define VGC_CLI_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"

#define CLI_MAX_GIVEN 64

/* An option of the command's own (not a config key). */
struct cli_option {
	const char *flag; /* "--dry-run" */
	const char *arg;  /* the value's name in --help ("N"); NULL for a switch */
	const char *help;
	const char *param; /* the command's own use: the API parameter it becomes */
};

/* One subcommand, as --help shows it and as cli_parse reads it. */
struct cli_command {
	const char *name;		  /* "retention", "keys create" */
	const char *synopsis;		  /* what follows the name on the usage line */
	const char *about;		  /* what it does, one paragraph ending in '\n' */
	const struct cli_option *options; /* { NULL }-terminated; may be NULL */
	const char *const *config_keys;	  /* keys taken as --flags, NULL-terminated;
					   * NULL takes every key */
	int max_args;			  /* positional arguments allowed */
};

/* What one command line said. Values point into argv; flag_names and
 * flag_values are owned (cli_args_free). */
struct cli_args {
	const char *config_flag; /* --config, or NULL */
	char **flag_names;	 /* config keys given as flags, in order */
	char **flag_values;
	int nflags;
	struct {
		const struct cli_option *opt;
		const char *value; /* "" for a switch */
	} given[CLI_MAX_GIVEN];	   /* the command's own options, in order */
	int ngiven;
	const char *args[CLI_MAX_GIVEN]; /* positional arguments */
	int nargs;
};

/* Reads argv[1..argc-1] for cmd. Returns -1 to go on, or the exit code to
 * return at once: 0 after printing --help, 2 after a usage error (printed).
 * Free out with cli_args_free whatever it returns. */
int cli_parse(const struct cli_command *cmd, int argc, char **argv, struct cli_args *out)
	__attribute__((warn_unused_result));
void cli_args_free(struct cli_args *a);

/* The last value given for the command's option flag, or NULL. */
const char *cli_args_value(const struct cli_args *a, const char *flag);

/* Loads cfg for a parsed command line (config_path_resolve, then
 * config_load). On failure prints "vgcollector NAME: why" and returns false;
 * cfg then holds nothing to free. */
bool cli_config_load(const struct cli_command *cmd, const struct cli_args *a, struct config *cfg)
	__attribute__((warn_unused_result));

/* Connects to cfg's database (blocking). On failure prints "vgcollector NAME:
 * cannot connect to PostgreSQL: why" and returns NULL. */
PGconn *cli_db_connect(const struct cli_command *cmd, const struct config *cfg);

/* The keys every command that talks to the database takes as flags. */
#define CLI_DB_KEYS "db", "db_file"

void cli_print_help(const struct cli_command *cmd, FILE *f);

bool cli_is_help(const char *arg);
/* For a command with subcommands (keys, budgets): the one of cmds, named
 * "<group> <sub>", that argv[1] names. NULL when none, with *rc the exit code:
 * 0 after printing every subcommand's help for --help, 2 after an error. */
const struct cli_command *cli_subcommand(const char *group, const struct cli_command *const *cmds,
					 int argc, char **argv, int *rc);

/* The subcommands: argv[0] is the subcommand's name; each returns the
 * process's exit code. */
int cli_serve(int argc, char **argv);
int cli_migrate(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_rollup(int argc, char **argv);
int cli_retention(int argc, char **argv);
int cli_rollup_daily(int argc, char **argv);
int cli_rollup_fold(int argc, char **argv);
int cli_agents(int argc, char **argv);
int cli_reconcile(int argc, char **argv);
int cli_config_sample(int argc, char **argv);
int cli_budgets(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_periods(int argc, char **argv);
int cli_prices(int argc, char **argv);

#endif
