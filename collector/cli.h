/* Command-line plumbing shared by the subcommands: option matching and the
 * commands that are plain database chores (migrate, keys). */
#ifndef VGC_CLI_H
#define VGC_CLI_H

#include <stdbool.h>

/* Matches argv[*i] against --name VALUE or --name=VALUE; advances *i past a
 * separate value. Sets *err when the value is missing. */
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value, bool *err);
bool cli_is_help(const char *arg);

int cli_migrate(int argc, char **argv);
int cli_keys(int argc, char **argv);

#endif
