/* `vgcollector prices import FEED.json... [--effective-from DATE]`: stores
 * voice-prices feeds in the price book as one revision and prints its id;
 * the rate card's subcommands are in cli_prices_card.c, rerate and reconcile in
 * cli_prices_rerate.c. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cli_prices_card.h"
#include "cli_prices_rerate.h"
#include "price_book.h"

static const struct cli_option cli_prices_import_opts[] = {
	{ "--effective-from", "DATE",
	  "when the feeds' rates apply (YYYY-MM-DD or RFC 3339) unless a rate says; "
	  "default: now",
	  NULL },
	{ NULL, NULL, NULL, NULL },
};

static const char *const cli_prices_keys[] = { CLI_DB_KEYS, "max_price_feed_bytes", NULL };

static const struct cli_command cli_prices_import_cmd = {
	.name = "prices import",
	.synopsis = "FEED.json... [--effective-from DATE] [--config FILE] [--db CONNINFO]",
	.about = "Stores voice-prices pricing feeds in the price book as one revision and\n"
		 "prints the revision id alone on the first line. Its id is the SHA-256 of\n"
		 "the feeds' canonical JSON and the effective date: importing the same\n"
		 "content again stores nothing and prints the same id. Rows ingested from\n"
		 "then on get book_cost_usd from the rates in effect at their timestamp.\n",
	.options = cli_prices_import_opts,
	.config_keys = cli_prices_keys,
	.max_args = CLI_MAX_GIVEN,
};

static const struct cli_command *const cli_prices_cmds[] = {
	&cli_prices_import_cmd,	   &cli_prices_ls_cmd,
	&cli_prices_set_cmd,	   &cli_prices_rm_cmd,
	&cli_prices_default_cmd,   &cli_prices_plan_cmd,
	&cli_prices_sync_cmd,	   &cli_prices_rerate_cmd,
	&cli_prices_reconcile_cmd, NULL,
};

/* The rate card's subcommands: arguments, config, connection, run. */
static int cli_prices_card_run(const struct cli_command *cmd, int argc, char **argv)
{
	struct cli_args a;
	struct config cfg;
	PGconn *conn;
	int rc = cli_parse(cmd, argc - 1, argv + 1, &a);

	if (rc < 0 && a.nargs != cmd->max_args) {
		fprintf(stderr, "vgcollector %s: expected %s\n", cmd->name, cmd->synopsis);
		rc = 2;
	}
	if (rc >= 0 || !cli_config_load(cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	conn = cli_db_connect(cmd, &cfg);
	config_free(&cfg);
	rc = conn ? cli_prices_card(cmd, &a, conn) : 1;
	PQfinish(conn);
	cli_args_free(&a);
	return rc;
}

/* Reads path whole, up to max bytes (max_price_feed_bytes, as the HTTP
 * import); NULL with err. */
static char *cli_prices_read(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[65536];
	size_t n;

	if (!f) {
		snprintf(err, errlen, "%s: cannot open", path);
		return NULL;
	}
	buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len <= max)
		buf_append(&b, chunk, n);
	fclose(f);
	if (b.len > max) {
		snprintf(err, errlen, "%s: larger than max_price_feed_bytes (%zu)", path, max);
		buf_release(&b);
		return NULL;
	}
	if (b.over) {
		snprintf(err, errlen, "%s: out of memory", path);
		buf_release(&b);
		return NULL;
	}
	*len = b.len;
	if (!b.data)
		return strdup("");
	return buf_steal(&b, NULL);
}

int cli_prices(int argc, char **argv)
{
	const struct cli_command *cmd;
	struct price_import imp;
	struct cli_args a;
	struct config cfg;
	const char *when;
	char err[2048], revision[65];
	bool created;
	PGconn *conn;
	int rc, st;

	if (!(cmd = cli_subcommand("prices", cli_prices_cmds, argc, argv, &rc)))
		return rc;
	if (cmd != &cli_prices_import_cmd)
		return cmd == &cli_prices_rerate_cmd || cmd == &cli_prices_reconcile_cmd
			       ? cli_prices_billing(cmd, argc, argv)
			       : cli_prices_card_run(cmd, argc, argv);
	rc = cli_parse(cmd, argc - 1, argv + 1, &a);
	if (rc < 0 && a.nargs < 1) {
		fprintf(stderr, "vgcollector prices import: expected at least one FEED.json\n");
		rc = 2;
	}
	if (rc >= 0 || !cli_config_load(cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	price_import_init(&imp);
	rc = 1;
	when = cli_args_value(&a, "--effective-from");
	if (when && !price_import_effective(&imp, when, err, sizeof(err))) {
		fprintf(stderr, "vgcollector prices import: %s\n", err);
		rc = 2;
		goto out;
	}
	for (int i = 0; i < a.nargs; i++) {
		size_t len = 0;
		char *text = cli_prices_read(a.args[i], cfg.max_price_feed_bytes, &len, err,
					     sizeof(err));
		bool ok = text && price_import_add_feed(&imp, text, len, err, sizeof(err));

		free(text);
		if (!ok) {
			fprintf(stderr, "vgcollector prices import: %s%s%s\n",
				text ? a.args[i] : "", text ? ": " : "", err);
			goto out;
		}
	}
	if (!(conn = cli_db_connect(cmd, &cfg)))
		goto out;
	st = price_import_store(conn, &imp, revision, &created, err, sizeof(err));
	PQfinish(conn);
	if (st != 200) {
		fprintf(stderr, "vgcollector prices import: %s\n", err);
		goto out;
	}
	printf("%s\n%s: %d feed%s, %d rate%s\n", revision,
	       created ? "created" : "unchanged (already imported)", imp.nfeeds,
	       imp.nfeeds == 1 ? "" : "s", imp.nrates, imp.nrates == 1 ? "" : "s");
	rc = 0;
out:
	price_import_release(&imp);
	cli_args_free(&a);
	config_free(&cfg);
	return rc;
}
