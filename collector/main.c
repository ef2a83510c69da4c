/* vgcollector: the cost-telemetry collector. One binary, several commands;
 * this file only dispatches them and parses `serve`'s flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "retention.h"
#include "rollup.h"
#include "server.h"

#define DEFAULT_CONFIG "/etc/vgcollector/vgcollector.conf"

static const char serve_usage[] =
	"usage: vgcollector serve [--config FILE] [--listen HOST:PORT] [--db CONNINFO]\n"
	"                         [--tls-cert FILE --tls-key FILE] [--KEY VALUE ...]\n"
	"\n"
	"Serves POST /v1/ingest and the read API. Configuration comes from the file\n"
	"(--config, else $VGC_CONFIG, else " DEFAULT_CONFIG " if it exists),\n"
	"then VGC_<KEY> environment variables, then flags. Every config key is also a\n"
	"flag, with '-' for '_':\n\n";

static void serve_flags_free(char **names, char **values, int n)
{
	for (int i = 0; i < n; i++) {
		free(names[i]);
		free(values[i]);
	}
	free(names);
	free(values);
}

static int cmd_serve(int argc, char **argv)
{
	const char *config_path = NULL;
	char **names = calloc((size_t)argc, sizeof(char *));
	char **values = calloc((size_t)argc, sizeof(char *));
	int nflags = 0;
	char err[2048];
	struct config cfg;
	bool bad = false;

	if (!names || !values)
		log_fatal("out of memory");
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		char name[64];
		const char *arg = argv[i];

		if (cli_is_help(arg)) {
			fputs(serve_usage, stdout);
			config_print_help(stdout);
			serve_flags_free(names, values, nflags);
			return 0;
		}
		if (cli_opt(argc, argv, &i, "--config", &config_path, &bad)) {
			if (bad)
				goto usage_error;
			continue;
		}
		if (strncmp(arg, "--", 2) != 0 || strlen(arg) >= sizeof(name) + 2) {
			fprintf(stderr, "vgcollector serve: unexpected argument \"%s\"\n", arg);
			goto usage_error;
		}
		snprintf(name, sizeof(name), "%s", arg + 2);
		if (strchr(name, '='))
			*strchr(name, '=') = '\0';
		for (char *p = name; *p; p++)
			if (*p == '-')
				*p = '_';
		if (strcmp(name, "tls_cert") == 0)
			strcpy(name, "tls_cert_file");
		else if (strcmp(name, "tls_key") == 0)
			strcpy(name, "tls_key_file");
		if (!config_find(name)) {
			fprintf(stderr, "vgcollector serve: unknown option \"%s\" (see --help)\n",
				arg);
			goto usage_error;
		}
		{
			char opt[80];
			snprintf(opt, sizeof(opt), "%.*s", (int)strcspn(arg, "="), arg);
			cli_opt(argc, argv, &i, opt, &v, &bad);
		}
		if (bad || !v)
			goto usage_error;
		names[nflags] = strdup(name);
		values[nflags] = strdup(v);
		if (!names[nflags] || !values[nflags])
			log_fatal("out of memory");
		nflags++;
	}
	if (!config_path)
		config_path = getenv("VGC_CONFIG");
	if (!config_path && access(DEFAULT_CONFIG, R_OK) == 0)
		config_path = DEFAULT_CONFIG;
	if (!server_load_config(&cfg, config_path, names, values, nflags, err, sizeof(err))) {
		fprintf(stderr, "vgcollector: %s\n", err);
		serve_flags_free(names, values, nflags);
		return 1;
	}
	return server_run(&cfg, config_path ? strdup(config_path) : NULL, names, values, nflags);
usage_error:
	serve_flags_free(names, values, nflags);
	return 2;
}

static int cmd_config_sample(int argc, char **argv)
{
	if (argc > 1 && cli_is_help(argv[1])) {
		puts("usage: vgcollector config-sample\n\n"
		     "Prints a config file listing every key with its default and meaning.");
		return 0;
	}
	config_print_sample(stdout);
	return 0;
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "serve", cmd_serve, "run the collector (HTTP ingest and read API)" },
	{ "migrate", cli_migrate, "apply schema migrations to the database" },
	{ "keys", cli_keys, "create, list or revoke API keys" },
	{ "rollup", cli_rollup, "print cost rollups as a table or CSV, from the database" },
	{ "retention", retention_cli, "drop expired cost_rows partitions, create future ones" },
	{ "config-sample", cmd_config_sample, "print a config file with every key and default" },
	{ NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vgcollector COMMAND [ARGS]   (vgcollector COMMAND --help for more)\n\n"
		   "Commands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %-14s %s\n", c->name, c->summary);
	fprintf(f,
		"\nThe database is --db CONNINFO, else $VGC_DB, else libpq's PG* defaults;\n"
		"a conninfo string (\"host=/run/pg dbname=vgc\") or a URI (postgresql://...).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (cli_is_help(argv[1])) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("vgcollector %s\n", VGC_VERSION);
		return 0;
	}
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->fn(argc - 1, argv + 1);
	fprintf(stderr, "vgcollector: unknown command \"%s\"\n\n", argv[1]);
	usage(stderr);
	return 2;
}
