/* The collector's configuration: one table of parameters drives parsing of the
 * file, VGC_* environment variables and --flags, validation, --help and the
 * sample config in deploy/vgcollector.conf. */
#ifndef VGC_CONFIG_H
#define VGC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct config {
	char *listen; /* comma-separated HOST:PORT list */
	char *db;
	char *db_file;
	char *db_direct; /* session work (LISTEN); empty: db */
	char *read_db;	 /* hot standby for reads; empty: none */
	int read_max_lag_s;
	int pool_size;
	int db_queue_max;
	int db_long_pool_size; /* the long-read pool (reconcile): server.c */
	int db_connect_timeout_s;
	size_t max_body_bytes;
	size_t max_pending_body_bytes; /* sum of bodies being received (gate.c) */
	size_t max_inflated_bytes;
	int max_batch_rows;
	int max_row_age_days;
	int max_clock_skew_s;
	int max_string_chars;
	int max_error_message_chars;
	int max_metadata_bytes;
	int max_project_bytes; /* the rollup key's strings, in UTF-8 bytes */
	int max_agent_id_bytes;
	int max_provider_bytes;
	int max_model_id_bytes;
	int max_element_values;
	size_t max_reject_raw_bytes;
	double rate_limit_rps;
	int rate_limit_burst;
	char *tls_cert_file;
	char *tls_key_file;
	char *log_level;
	char *log_format;
	int retention_months;
	int partitions_ahead;
	int max_connections;
	int idle_timeout_s;
	int shutdown_grace_s;
	int key_refresh_s;
	int max_rollup_periods;
	size_t reconcile_max_bytes; /* a usage file after gunzip */
	int reconcile_max_records;
	int reconcile_max_groups;
	int rollup_daily_interval_s;
	int rollup_daily_settle_s;
	int agent_ttl_s;	    /* roster: a worker unheard this long is offline */
	int agent_forget_after_s;   /* roster: offline this long, retention forgets it */
	int agents_max_per_tenant;  /* roster: workers one tenant may have */
	size_t max_heartbeat_bytes; /* roster: largest heartbeat body */
	double budget_check_s;	    /* budget_eval.c */
	double budget_eval_delay_s;
	double budget_retry_base_s;
	double budget_retry_max_s;
	int budget_retry_for_s;
	int budgets_max_per_tenant; /* budget.c: a tenant's budgets */
	int webhook_timeout_s;
	int webhook_max_inflight;
	int webhook_max_inflight_per_budget;
	int webhook_max_inflight_per_tenant;
	size_t webhook_max_answer_bytes;
	char *webhook_allow; /* webhook_policy.c's lists */
	char *webhook_deny;
	char *webhook_ca_file;
	char *dashboard;     /* "on" or "off" */
	char *metrics_token; /* health.c: empty, or the bearer /metrics requires */
};

enum config_type { CFG_STR, CFG_INT, CFG_SIZE, CFG_DOUBLE };

/* One key. min and max bound CFG_INT and CFG_SIZE values (checked where the
 * value is set, so the error names its file and line); max 0 means no bound
 * past the type's own. Rules across keys live in config_validate. */
struct config_param {
	const char *name;
	enum config_type type;
	size_t offset;
	bool reloadable;
	const char *def;
	long long min, max;
	const char *help;
};

/* Where `serve` and the other commands look for a config file when neither
 * --config nor $VGC_CONFIG names one (used only if it exists). */
#define CONFIG_DEFAULT_PATH "/etc/vgcollector/vgcollector.conf"

extern const struct config_param config_params[];

/* Fills cfg with every default (startup and tests: exits if that fails).
 * Free with config_free. */
void config_init(struct config *cfg);
void config_free(struct config *cfg);

/* The config file to read: flag if given, else $VGC_CONFIG, else
 * CONFIG_DEFAULT_PATH if it is readable, else NULL (no file). */
const char *config_path_resolve(const char *flag);

/* Builds a config: defaults, then path (if not NULL), then VGC_* environment,
 * then each flag (names are config keys), then config_validate. On failure cfg
 * holds nothing to free and err says why, naming the source. */
bool config_load(struct config *cfg, const char *path, char *const *flag_names,
		 char *const *flag_values, int nflags, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* For a reload: gives next the running values of every key that needs a
 * restart, so only reloadable keys change. Fails only when out of memory. */
bool config_keep_restart_keys(struct config *next, const struct config *running, char *err,
			      size_t errlen) __attribute__((warn_unused_result));

/* Sets one parameter from text, checking its type and bounds. source names
 * where it came from for errors ("FILE:LINE", "environment VGC_X", ...). */
bool config_set(struct config *cfg, const char *name, const char *value, const char *source,
		char *err, size_t errlen) __attribute__((warn_unused_result));

/* Reads `key = value` lines with # comments; errors name file:line. */
bool config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Applies VGC_<NAME> environment variables. */
bool config_load_env(struct config *cfg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Checks the rules across keys and reads db_file. */
bool config_validate(struct config *cfg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The row limits cfg sets (the others at their defaults). */
struct row_limits;
void config_row_limits(const struct config *cfg, struct row_limits *lim);

const struct config_param *config_find(const char *name);
/* Parameter names differing between a and b that are not reloadable, comma-separated
 * into out; returns false when there are none. */
bool config_restart_needed(const struct config *a, const struct config *b, char *out,
			   size_t outlen);

void config_print_sample(FILE *f);
/* One line per key as a --flag; keys NULL lists every key, else only those
 * named (NULL-terminated). */
void config_print_help(FILE *f, const char *const *keys);

#endif
