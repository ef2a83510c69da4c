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
	size_t max_small_body_bytes;   /* routes with a small JSON body (server.c) */
	size_t max_pending_body_bytes; /* sum of bodies being received (gate.c) */
	size_t max_inflated_bytes;
	size_t max_decoded_bytes; /* an OTLP request once decoded */
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
	int log_level;	/* CFG_ENUM: enum log_level (common/log.h) */
	int log_format; /* CFG_ENUM: enum log_format */
	int retention_months;
	int retention_interval_s; /* tasks: seconds between retention passes */
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
	double rollup_fold_s;	       /* tasks: rollup_fold.c; 0: off */
	int rollup_fold_max_deltas;    /* rollup_fold.c: delta rows per fold */
	int agent_ttl_s;	       /* roster: a worker unheard this long is offline */
	int agent_forget_after_s;      /* roster: offline this long, retention forgets it */
	int agent_gauges_interval_s;   /* tasks: the roster's /metrics gauges */
	int period_grace_s;	       /* periods.c: evidence of a complete month */
	int period_metrics_interval_s; /* tasks: vgcollector_period_late_rows_total */
	int sync_standby_check_s;      /* tasks: durability.c */
	char *focus_billing_account;   /* focus.c: "" = the host name */
	int export_fetch_rows;	       /* focus.c: lines per FETCH of the export */
	size_t export_buffer_bytes;    /* http_stream.c: unsent bytes of one export */
	int agents_max_per_tenant;     /* roster: workers one tenant may have */
	double agents_flush_s;	       /* tasks: the roster's beat buffer; 0: off */
	int agents_buffer_max;	       /* roster: beats waiting, workers known */
	size_t max_heartbeat_bytes;    /* roster: largest heartbeat body */
	double budget_check_s;	       /* budget_eval.c */
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
	int dashboard;		     /* CFG_ENUM: CONFIG_ON or CONFIG_OFF */
	int hide_cost_from_tenants;  /* CFG_ENUM: CONFIG_ON or CONFIG_OFF */
	char *metrics_token;	     /* health.c: empty, or the bearer /metrics requires */
	size_t max_price_feed_bytes; /* price_book.c: one feed, after gunzip */
};

/* CFG_ENUM stores the index of its word in the row's choices, as an int. */
enum config_type { CFG_STR, CFG_INT, CFG_SIZE, CFG_DOUBLE, CFG_ENUM };

/* The words of an on/off CFG_ENUM key, in the order of config_on_off. */
enum config_on_off { CONFIG_ON = 0, CONFIG_OFF };

struct server;

/* What a reload does to the running server when a row's value changed. Rows
 * may share one hook; a reload calls each hook once. */
struct config_hook {
	/* Optional: checks the new config against the world before anything is
	 * applied (a certificate file loads); false with err keeps the running
	 * config whole. */
	bool (*check)(struct server *srv, const struct config *next, char *err, size_t errlen);
	/* Puts the value now in srv->cfg in force. Cannot fail. */
	void (*apply)(struct server *srv);
	bool always; /* run on every reload, changed or not (it re-reads files) */
};

/* One key. min and max bound CFG_INT and CFG_SIZE values (checked where the
 * value is set, so the error names its file and line); max 0 means no bound
 * past the type's own. Rules across keys live in config_validate. A
 * reloadable key with a hook changes the running server through it; one
 * without is read live where it is used. */
struct config_param {
	const char *name;
	enum config_type type;
	size_t offset;
	bool reloadable;
	const char *def;
	long long min, max;
	const char *help;
	const char *const *choices;	/* CFG_ENUM: the allowed words, NULL-terminated */
	const struct config_hook *hook; /* reload; NULL: none */
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
/* Reload, "validate all": calls the check of each hook of params (once per
 * hook, in table order) whose rows differ between running and next, or that
 * is always run. False with err at the first that fails. */
bool config_hooks_check(const struct config_param *params, const struct config *running,
			const struct config *next, struct server *srv, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Reload, "apply each changed row": after the swap (now is srv->cfg, old the
 * config it replaced), calls the apply of each hook whose rows differ, or
 * that is always run, once each in table order. Returns how many it called. */
int config_hooks_apply(const struct config_param *params, const struct config *old,
		       const struct config *now, struct server *srv);

/* The value of a CFG_SIZE row p in cfg. */
size_t config_size(const struct config *cfg, const struct config_param *p);
/* The value of a CFG_INT, CFG_SIZE or CFG_DOUBLE row p in cfg; 0 for others. */
double config_number(const struct config *cfg, const struct config_param *p);
/* Parameter names differing between a and b that are not reloadable, comma-separated
 * into out; returns false when there are none. */
bool config_restart_needed(const struct config *a, const struct config *b, char *out,
			   size_t outlen);

void config_print_sample(FILE *f);
/* One line per key as a --flag; keys NULL lists every key, else only those
 * named (NULL-terminated). */
void config_print_help(FILE *f, const char *const *keys);

#endif
