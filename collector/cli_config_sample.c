/* `vgcollector config-sample`: prints the config file the table describes. */
#include <stdio.h>

#include "cli.h"

static const char *const cli_config_sample_keys[] = { NULL }; /* reads no config */

static const struct cli_command cli_config_sample_cmd = {
	.name = "config-sample",
	.synopsis = "",
	.about = "Prints a config file listing every key with its default, bounds and meaning.\n",
	.config_keys = cli_config_sample_keys,
};

int cli_config_sample(int argc, char **argv)
{
	struct cli_args a;
	int rc = cli_parse(&cli_config_sample_cmd, argc, argv, &a);

	cli_args_free(&a);
	if (rc >= 0)
		return rc;
	config_print_sample(stdout);
	return 0;
}
