/* `vgcollector prices ls | set | rm | default-markup | plan | sync`: the rate
 * card from the command line, through rate_card_admin.c, so the CLI and the
 * HTTP API store the same thing. */
#include "cli_prices_card.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "rate_card_admin.h"

static const char *const cli_card_keys[] = { CLI_DB_KEYS, NULL };

static const struct cli_option cli_card_set_opts[] = {
	{ "--tenant", "T", "the rule applies to this tenant's rows", NULL },
	{ "--plan", "P", "... to the rows of tenants on this plan (see prices plan)", NULL },
	{ "--modality", "stt|llm|tts", "... to rows of this modality", NULL },
	{ "--provider", "X", "... to this provider's rows", NULL },
	{ "--model", "M", "... to this model's rows (nova-3 beside --provider, or deepgram/nova-3)",
	  NULL },
	{ "--markup", "X", "cost_plus: price = cost x X (a decimal >= 0)", NULL },
	{ "--basis", "book", "with --markup: multiply the price book's cost, not the recorded one",
	  NULL },
	{ "--fixed", "X", "fixed: price = X per --unit of the row's billable quantity", NULL },
	{ "--unit", "U",
	  "with --fixed: minute, second, char, 1k_char, token, 1k_token, 1m_token, "
	  "request",
	  NULL },
	{ "--expected-revision", "N", "refuse (exit 1) unless the card is at revision N", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_option cli_card_rev_opts[] = {
	{ "--expected-revision", "N", "refuse (exit 1) unless the card is at revision N", NULL },
	{ NULL, NULL, NULL, NULL },
};

const struct cli_command cli_prices_ls_cmd = {
	.name = "prices ls",
	.synopsis = "[--db CONNINFO]",
	.about = "Prints the rate card: its revision and default markup, each rule with its\n"
		 "id, scope and token (cost_plus:1.3, fixed:0.006/minute), and the tenants'\n"
		 "plans.\n",
	.config_keys = cli_card_keys,
};

const struct cli_command cli_prices_set_cmd = {
	.name = "prices set",
	.synopsis = "[--tenant T] [--plan P] [--modality M] [--provider X] [--model M]\n"
		    "                  (--markup X [--basis book] | --fixed X --unit U)\n"
		    "                  [--expected-revision N] [--db CONNINFO]",
	.about = "Sets the rule of one scope (the scope's flags; none: every row), replacing\n"
		 "the scope's rule if it has one, as POST /v1/billing/rate-card/rules does.\n"
		 "Prints the rule's id. Rows ingested from then on are rated by the card.\n",
	.options = cli_card_set_opts,
	.config_keys = cli_card_keys,
};

const struct cli_command cli_prices_rm_cmd = {
	.name = "prices rm",
	.synopsis = "RULE_ID [--expected-revision N] [--db CONNINFO]",
	.about = "Deletes a rule (exit 1 when there is no such rule).\n",
	.options = cli_card_rev_opts,
	.config_keys = cli_card_keys,
	.max_args = 1,
};

const struct cli_command cli_prices_default_cmd = {
	.name = "prices default-markup",
	.synopsis = "X [--expected-revision N] [--db CONNINFO]",
	.about = "Sets the default markup: the price of a row no rule matches is its cost x X.\n",
	.options = cli_card_rev_opts,
	.config_keys = cli_card_keys,
	.max_args = 1,
};

const struct cli_command cli_prices_plan_cmd = {
	.name = "prices plan",
	.synopsis = "TENANT PLAN|- [--expected-revision N] [--db CONNINFO]",
	.about = "Puts a tenant on a plan, so the plan's rules rate its rows ('-': on none).\n",
	.options = cli_card_rev_opts,
	.config_keys = cli_card_keys,
	.max_args = 2,
};

const struct cli_command cli_prices_sync_cmd = {
	.name = "prices sync",
	.synopsis = "[--db CONNINFO]",
	.about = "Lists the fixed rules priced under today's book cost of a model they apply\n"
		 "to (per token: the higher of the input and output rates). Exit 1 if any.\n",
	.config_keys = cli_card_keys,
};

/* Prints err for a write's status; the exit code. */
static int cli_card_status(const char *name, int status, const char *err)
{
	if (status == 200 || status == 201)
		return 0;
	fprintf(stderr, "vgcollector %s: %s\n", name, err);
	return 1;
}

static bool cli_card_expected(const struct cli_args *a, long long *out)
{
	const char *v = cli_args_value(a, "--expected-revision");
	char *end;

	*out = -1;
	if (!v)
		return true;
	*out = strtoll(v, &end, 10);
	if (!*v || *end || *out < 0) {
		fprintf(stderr, "--expected-revision \"%s\": must be the card's revision\n", v);
		return false;
	}
	return true;
}

static int cli_card_ls(PGconn *conn)
{
	PGresult *res = PQexec(
		conn,
		"SELECT 0, revision::text, trim_scale(default_markup)::text, NULL FROM rate_card"
		" UNION ALL SELECT 1, r.rule_id::text, concat_ws(' ', 'tenant=' || r.tenant_id,"
		" 'plan=' || r.plan, 'modality=' || r.modality, 'provider=' || r.provider,"
		" 'model=' || r.model, CASE WHEN r.basis = 'book' THEN 'basis=book' END),"
		" vgc_rate_card_token(r, c.default_markup)"
		" FROM rate_card_rules r, rate_card c"
		" UNION ALL SELECT 2, tenant_id, plan, NULL FROM tenant_plans ORDER BY 1, 2");
	int rules = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "vgcollector prices ls: %s", PQerrorMessage(conn));
		PQclear(res);
		return 1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		int part = atoi(PQgetvalue(res, i, 0));

		if (part == 0) {
			printf("revision %s, default markup %s\n", PQgetvalue(res, i, 1),
			       PQgetvalue(res, i, 2));
			printf("%-8s  %-56s  %s\n", "RULE_ID", "SCOPE", "RULE");
		} else if (part == 1) {
			rules++;
			printf("%-8s  %-56s  %s\n", PQgetvalue(res, i, 1),
			       PQgetvalue(res, i, 2)[0] ? PQgetvalue(res, i, 2) : "(every row)",
			       PQgetvalue(res, i, 3));
		} else {
			printf("plan: tenant %s is on %s\n", PQgetvalue(res, i, 1),
			       PQgetvalue(res, i, 2));
		}
	}
	if (!rules)
		printf("(no rules: every row is rated at the default markup)\n");
	PQclear(res);
	return 0;
}

static int cli_card_set(const struct cli_args *a, PGconn *conn)
{
	struct rate_rule r;
	long long expected, rule_id, revision;
	const char *markup = cli_args_value(a, "--markup"), *fixed = cli_args_value(a, "--fixed");
	static const char *const scope[] = { "--tenant", "--plan", "--provider", "--model", NULL };
	char err[1024];
	int st;

	memset(&r, 0, sizeof(r));
	r.tenant = cli_args_value(a, "--tenant");
	r.plan = cli_args_value(a, "--plan");
	r.modality = cli_args_value(a, "--modality");
	r.provider = cli_args_value(a, "--provider");
	r.model = cli_args_value(a, "--model");
	r.basis = cli_args_value(a, "--basis");
	r.unit = cli_args_value(a, "--unit");
	for (int i = 0; scope[i]; i++) {
		const char *v = cli_args_value(a, scope[i]);

		if (v && !rate_card_text(scope[i], v, err, sizeof(err))) {
			fprintf(stderr, "vgcollector prices set: %s\n", err);
			return 2;
		}
	}
	if ((markup && !rate_card_decimal("--markup", markup, r.markup, err, sizeof(err))) ||
	    (fixed && !rate_card_decimal("--fixed", fixed, r.fixed, err, sizeof(err))) ||
	    !rate_rule_check(&r, err, sizeof(err))) {
		fprintf(stderr, "vgcollector prices set: %s\n", err);
		return 2;
	}
	if (!cli_card_expected(a, &expected))
		return 2;
	st = rate_card_rule_put(conn, &r, expected, &rule_id, &revision, err, sizeof(err));
	if (st == 200 || st == 201)
		printf("%lld\n%s, card revision %lld\n", rule_id,
		       st == 201 ? "created" : "replaced", revision);
	return cli_card_status("prices set", st, err);
}

static int cli_card_sync(PGconn *conn)
{
	PGresult *res = PQexec(
		conn,
		"SELECT r.rule_id, vgc_rate_card_token(r, 1), p.provider, p.model_id,"
		" trim_scale(b.book)::text"
		" FROM rate_card_rules r JOIN price_book_periods p"
		" ON p.row_model = p.model_id AND now() >= p.valid_from AND now() < p.valid_to"
		" AND (r.provider IS NULL OR p.provider = r.provider)"
		" AND (r.model IS NULL OR r.model = p.model_id)"
		" CROSS JOIN LATERAL (SELECT CASE r.unit WHEN 'minute' THEN p.audio_minute"
		" WHEN 'second' THEN p.audio_minute / 60 WHEN 'char' THEN p.text_character"
		" WHEN '1k_char' THEN p.text_character * 1000"
		" WHEN 'token' THEN greatest(p.text_token, p.output_token)"
		" WHEN '1k_token' THEN greatest(p.text_token, p.output_token) * 1000"
		" WHEN '1m_token' THEN greatest(p.text_token, p.output_token) * 1000000"
		" WHEN 'request' THEN p.request END AS book) b"
		" WHERE r.kind = 'fixed' AND r.fixed < b.book"
		" AND (r.modality IS NULL OR EXISTS (SELECT 1 FROM price_book_rates pr"
		" WHERE pr.provider = p.provider AND pr.model_id = p.model_id"
		" AND pr.modality = r.modality))"
		" ORDER BY r.rule_id, p.provider, p.model_id");
	int n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "vgcollector prices sync: %s", PQerrorMessage(conn));
		PQclear(res);
		return 1;
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
		printf("rule %s %s is under the book's %s per unit for %s/%s\n",
		       PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 4),
		       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	if (!n)
		printf("every fixed rule is at or above today's book cost\n");
	PQclear(res);
	return n ? 1 : 0;
}

int cli_prices_card(const struct cli_command *cmd, const struct cli_args *a, PGconn *conn)
{
	long long expected, revision = 0, id;
	char err[1024], markup[RATE_CARD_DECIMAL_MAX + 1], *end;
	int st;

	if (cmd == &cli_prices_ls_cmd)
		return cli_card_ls(conn);
	if (cmd == &cli_prices_set_cmd)
		return cli_card_set(a, conn);
	if (cmd == &cli_prices_sync_cmd)
		return cli_card_sync(conn);
	if (!cli_card_expected(a, &expected))
		return 2;
	if (cmd == &cli_prices_rm_cmd) {
		id = strtoll(a->args[0], &end, 10);
		if (*end || id <= 0) {
			fprintf(stderr,
				"vgcollector prices rm: RULE_ID \"%s\": must be a rule's id\n",
				a->args[0]);
			return 2;
		}
		st = rate_card_rule_rm(conn, id, expected, &revision, err, sizeof(err));
	} else if (cmd == &cli_prices_default_cmd) {
		if (!rate_card_decimal("default-markup", a->args[0], markup, err, sizeof(err))) {
			fprintf(stderr, "vgcollector prices default-markup: %s\n", err);
			return 2;
		}
		st = rate_card_default_set(conn, markup, expected, &revision, err, sizeof(err));
	} else {
		const char *plan = strcmp(a->args[1], "-") == 0 ? NULL : a->args[1];

		if (!rate_card_text("TENANT", a->args[0], err, sizeof(err)) ||
		    (plan && !rate_card_text("PLAN", plan, err, sizeof(err)))) {
			fprintf(stderr, "vgcollector prices plan: %s\n", err);
			return 2;
		}
		st = rate_card_plan_set(conn, a->args[0], plan, expected, &revision, err,
					sizeof(err));
	}
	if (st == 200)
		printf("card revision %lld\n", revision);
	return cli_card_status(cmd->name, st, err);
}
