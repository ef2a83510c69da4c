/* `vgcollector prices ls | set | rm | default-markup | plan | sync`: the rate
 * card's subcommands of `vgcollector prices` (cli_prices.c dispatches). */
#ifndef VGC_CLI_PRICES_CARD_H
#define VGC_CLI_PRICES_CARD_H

#include <libpq-fe.h>

#include "cli.h"

extern const struct cli_command cli_prices_ls_cmd, cli_prices_set_cmd, cli_prices_rm_cmd,
	cli_prices_default_cmd, cli_prices_plan_cmd, cli_prices_sync_cmd;

/* Runs one of them, its arguments checked (max_args given), on conn. The
 * exit code: 0, 1 (refused or failed, printed), 2 (a bad value, printed). */
int cli_prices_card(const struct cli_command *cmd, const struct cli_args *a, PGconn *conn);

#endif
