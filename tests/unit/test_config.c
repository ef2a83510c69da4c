/* The config table's bounds and the reload copy (collector/config.c). */
#include <string.h>

#include "config.h"
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
	CHECK(next.max_batch_rows == 7 && strcmp(next.log_level, "debug") == 0);
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
