/* The config table's bounds and the reload copy (collector/config.c). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "unit.h"

struct bound_case {
	const char *name;
	const char *key;
	const char *value;
	const char *expect; /* NULL: accepted */
};

static const struct bound_case bound_cases[] = {
	{ "config_rejects_pool_size_below_min", "pool_size", "0",
	  "src:3: pool_size = \"0\": must be 1..256" },
	{ "config_rejects_pool_size_above_max", "pool_size", "257",
	  "src:3: pool_size = \"257\": must be 1..256" },
	{ "config_accepts_pool_size_at_max", "pool_size", "256", NULL },
	{ "config_rejects_small_max_body_bytes", "max_body_bytes", "1023",
	  "src:3: max_body_bytes = \"1023\": must be at least 1024" },
	{ "config_accepts_max_body_bytes_1K", "max_body_bytes", "1K", NULL },
	{ "config_rejects_small_max_inflated_bytes", "max_inflated_bytes", "10",
	  "max_inflated_bytes = \"10\": must be at least 1024" },
	{ "config_rejects_max_element_values_below_64", "max_element_values", "63",
	  "max_element_values = \"63\": must be at least 64" },
	{ "config_rejects_zero_max_batch_rows", "max_batch_rows", "0",
	  "max_batch_rows = \"0\": must be at least 1" },
	{ "config_rejects_zero_max_connections", "max_connections", "0",
	  "max_connections = \"0\": must be at least 1" },
	{ "config_rejects_zero_idle_timeout_s", "idle_timeout_s", "0",
	  "idle_timeout_s = \"0\": must be at least 1" },
	{ "config_rejects_zero_key_refresh_s", "key_refresh_s", "0",
	  "key_refresh_s = \"0\": must be at least 1" },
	{ "config_accepts_zero_retention_months", "retention_months", "0", NULL },
};

UNIT_TEST(config_bounds_come_from_the_table)
{
	for (size_t i = 0; i < sizeof(bound_cases) / sizeof(bound_cases[0]); i++) {
		const struct bound_case *c = &bound_cases[i];
		struct config cfg;
		char err[256] = "";
		bool ok;

		config_init(&cfg);
		ok = config_set(&cfg, c->key, c->value, "src:3", err, sizeof(err));
		if (c->expect)
			CHECK_MSG(!ok && strstr(err, c->expect), "%s: \"%s\"", c->name, err);
		else
			CHECK_MSG(ok, "%s: %s", c->name, err);
		config_free(&cfg);
	}
}

UNIT_TEST(config_every_default_is_inside_its_bounds)
{
	for (const struct config_param *p = config_params; p->name; p++) {
		struct config cfg;
		char err[256] = "";

		config_init(&cfg);
		CHECK_MSG(config_set(&cfg, p->name, p->def, "default", err, sizeof(err)), "%s: %s",
			  p->name, err);
		CHECK_MSG(p->max == 0 || p->min <= p->max, "%s: min %lld > max %lld", p->name,
			  p->min, p->max);
		config_free(&cfg);
	}
}

UNIT_TEST(config_reload_keeps_restart_keys_and_takes_reloadable_ones)
{
	struct config running, next;
	char err[256] = "";

	config_init(&running);
	config_init(&next);
	CHECK(config_set(&next, "listen", "127.0.0.1:1", "t", err, sizeof(err)));
	CHECK(config_set(&next, "pool_size", "9", "t", err, sizeof(err)));
	CHECK(config_set(&next, "max_batch_rows", "7", "t", err, sizeof(err)));
	CHECK(config_set(&next, "log_level", "debug", "t", err, sizeof(err)));
	CHECK_MSG(config_keep_restart_keys(&next, &running, err, sizeof(err)), "%s", err);
	CHECK(strcmp(next.listen, running.listen) == 0 && next.listen != running.listen);
	CHECK(next.pool_size == running.pool_size);
	CHECK(next.max_batch_rows == 7 && next.log_level == LOG_LVL_DEBUG);
	config_free(&running);
	config_free(&next);
}

UNIT_TEST(config_load_applies_file_then_environment_then_flags)
{
	char name[] = "max_batch_rows", thirty[] = "30", zero[] = "0";
	char *names[] = { name }, *values[] = { thirty };
	struct config cfg;
	char err[256] = "";

	CHECK_MSG(config_load(&cfg, NULL, names, values, 1, err, sizeof(err)), "%s", err);
	CHECK(cfg.max_batch_rows == 30);
	config_free(&cfg);
	values[0] = zero;
	CHECK(!config_load(&cfg, NULL, names, values, 1, err, sizeof(err)));
	CHECK_MSG(strstr(err, "flag --max_batch_rows: max_batch_rows = \"0\""), "%s", err);
}

UNIT_TEST(config_enum_rejects_an_unknown_word_naming_the_key_and_the_choices)
{
	struct config cfg;
	char err[256] = "";

	config_init(&cfg);
	CHECK(!config_set(&cfg, "log_level", "verbose", "f.conf:2", err, sizeof(err)));
	CHECK_MSG(strcmp(err, "f.conf:2: log_level = \"verbose\": expected one of error, warn, "
			      "info, debug") == 0,
		  "%s", err);
	CHECK(!config_set(&cfg, "dashboard", "yes", "t", err, sizeof(err)));
	CHECK_MSG(strstr(err, "dashboard = \"yes\": expected one of on, off"), "%s", err);
	CHECK(config_set(&cfg, "log_format", "json", "t", err, sizeof(err)));
	CHECK(cfg.log_format == LOG_FMT_JSON);
	CHECK(config_set(&cfg, "dashboard", "off", "t", err, sizeof(err)));
	CHECK(cfg.dashboard == CONFIG_OFF);
	config_free(&cfg);
}

UNIT_TEST(config_enum_choices_show_in_help_and_sample)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	const char *const keys[] = { "log_format", NULL };

	config_print_help(f, keys);
	config_print_sample(f);
	fclose(f);
	CHECK_MSG(text && strstr(text, "--log-format WORD") &&
			  strstr(text, "; one of logfmt, json"),
		  "%s", text ? text : "");
	CHECK_MSG(text && strstr(text, "; one of error, warn, info, debug [reload]\n#log_level = "
				       "info\n"),
		  "%s", text ? text : "");
	free(text);
}

/* Hooks that count their calls, over a small table of real config fields. */
static int hook_a_checks, hook_a_applies, hook_b_applies, hook_always_applies;

static bool hook_a_check(struct server *srv, const struct config *next, char *err, size_t errlen)
{
	(void)srv;
	hook_a_checks++;
	if (next->max_batch_rows == 13) {
		snprintf(err, errlen, "max_batch_rows 13 refused by its hook");
		return false;
	}
	return true;
}

static void hook_a_apply(struct server *srv)
{
	(void)srv;
	hook_a_applies++;
}

static void hook_b_apply(struct server *srv)
{
	(void)srv;
	hook_b_applies++;
}

static void hook_always_apply(struct server *srv)
{
	(void)srv;
	hook_always_applies++;
}

static const struct config_hook hook_a = { hook_a_check, hook_a_apply, false };
static const struct config_hook hook_b = { NULL, hook_b_apply, false };
static const struct config_hook hook_always = { NULL, hook_always_apply, true };

#define TOFF(f) offsetof(struct config, f)
static const struct config_param hook_params[] = {
	{ "max_batch_rows", CFG_INT, TOFF(max_batch_rows), true, "1", 0, 0, "", NULL, &hook_a },
	{ "max_row_age_days", CFG_INT, TOFF(max_row_age_days), true, "1", 0, 0, "", NULL, &hook_a },
	{ "log_level", CFG_ENUM, TOFF(log_level), true, "info", 0, 0, "", NULL, &hook_b },
	{ "tls_cert_file", CFG_STR, TOFF(tls_cert_file), true, "", 0, 0, "", NULL, &hook_always },
	{ "pool_size", CFG_INT, TOFF(pool_size), false, "1", 0, 0, "", NULL, &hook_b },
	{ NULL, CFG_STR, 0, false, NULL, 0, 0, NULL, NULL, NULL },
};

UNIT_TEST(config_reload_applies_the_hook_of_each_changed_row_once_and_no_other)
{
	struct config old, now;
	char err[256] = "";

	config_init(&old);
	config_init(&now);
	hook_a_checks = hook_a_applies = hook_b_applies = hook_always_applies = 0;
	/* Two rows sharing hook_a both change: its check and apply run once. */
	now.max_batch_rows = old.max_batch_rows + 1;
	now.max_row_age_days = old.max_row_age_days + 1;
	/* pool_size changes too, but needs a restart: its hook is not called. */
	now.pool_size = old.pool_size + 1;
	CHECK(config_hooks_check(hook_params, &old, &now, NULL, err, sizeof(err)));
	CHECK(config_hooks_apply(hook_params, &old, &now, NULL) == 2);
	CHECK(hook_a_checks == 1 && hook_a_applies == 1);
	/* log_level did not change: hook_b is not called. */
	CHECK(hook_b_applies == 0);
	/* The always hook runs on every reload, changed or not. */
	CHECK(hook_always_applies == 1);

	/* Nothing changed: only the always hook. */
	hook_a_checks = hook_a_applies = hook_b_applies = hook_always_applies = 0;
	CHECK(config_hooks_apply(hook_params, &old, &old, NULL) == 1);
	CHECK(hook_a_applies == 0 && hook_b_applies == 0 && hook_always_applies == 1);

	/* A changed enum row calls its hook. */
	now.log_level = LOG_LVL_DEBUG;
	CHECK(config_hooks_apply(hook_params, &old, &now, NULL) == 3);
	CHECK(hook_b_applies == 1);

	/* A check that fails names why, and stops the reload before any apply. */
	now.max_batch_rows = 13;
	CHECK(!config_hooks_check(hook_params, &old, &now, NULL, err, sizeof(err)));
	CHECK_MSG(strcmp(err, "max_batch_rows 13 refused by its hook") == 0, "%s", err);
	config_free(&old);
	config_free(&now);
}
