/* `vgcollector prices rerate` and `prices reconcile`, dispatched from
 * cli_prices.c (see cli_prices_rerate.c). */
#ifndef VGC_CLI_PRICES_RERATE_H
#define VGC_CLI_PRICES_RERATE_H

#include "cli.h"

extern const struct cli_command cli_prices_rerate_cmd;
extern const struct cli_command cli_prices_reconcile_cmd;

/* Runs cmd (one of the two above); argv[0] is the subcommand's name. */
int cli_prices_billing(const struct cli_command *cmd, int argc, char **argv);

#endif
