/* `vgcollector serve`: reads the configuration and hands it to the server. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "server.h"

static const struct cli_command cli_serve_cmd = {
	.name = "serve",
	.synopsis = "[--config FILE] [--listen HOST:PORT] [--db CONNINFO]\n"
		    "                         [--tls-cert FILE --tls-key FILE] [--KEY VALUE ...]",
	.about = "Serves POST /v1/ingest and the read API. SIGHUP reloads the configuration\n"
		 "(keys marked [reload] in the sample config); SIGTERM drains and exits.\n"
		 "Every config key is also a flag; --tls-cert and --tls-key are short for\n"
		 "--tls-cert-file and --tls-key-file.\n",
	.config_keys = NULL,
};

int cli_serve(int argc, char **argv)
{
	struct cli_args a;
	struct config cfg;
	const char *path;
	int rc = cli_parse(&cli_serve_cmd, argc, argv, &a);

	if (rc >= 0 || !cli_config_load(&cli_serve_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 1;
	}
	path = config_path_resolve(a.config_flag);
	/* server_run owns the flags from here: a reload applies them again. */
	return server_run(&cfg, path ? strdup(path) : NULL, a.flag_names, a.flag_values, a.nflags);
}
