/* The read API's parameter table: which query-string parameters GET
 * /v1/rollups, /v1/costs and /v1/rows take, the columns they filter on, the
 * splitting of a raw query string, and the text every parameter must be. */
#ifndef VGC_ROLLUP_PARAMS_H
#define VGC_ROLLUP_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

/* Which endpoint a query is for; decides which parameters it accepts. */
enum rollup_kind {
	ROLLUP_KIND_ROLLUPS = 1,
	ROLLUP_KIND_COSTS = 2,
	ROLLUP_KIND_ROWS = 4,
	ROLLUP_KIND_UNPRICED = 8, /* /v1/billing/unpriced: the models the book lacks */
	ROLLUP_KIND_USAGE = 16,	  /* /v1/billing/usage: revenue, cost and margin per tenant */
};

enum rollup_granularity { ROLLUP_HOUR = 0, ROLLUP_DAY, ROLLUP_MONTH, ROLLUP_TOTAL };
#define ROLLUP_NGRANULARITIES 4

/* Columns a query may filter on; the first ROLLUP_NGROUP may also be grouped by. */
enum rollup_col {
	ROLLUP_COL_PROJECT = 0,
	ROLLUP_COL_AGENT,
	ROLLUP_COL_TENANT,
	ROLLUP_COL_MODALITY,
	ROLLUP_COL_PROVIDER,
	ROLLUP_COL_MODEL,
	ROLLUP_COL_SESSION, /* /v1/rows only: cost_rollup_hourly has no sessions */
	ROLLUP_NCOLS
};
#define ROLLUP_NGROUP ROLLUP_COL_SESSION

#define ROLLUP_MAX_VALUES 64	 /* values in one filter, across repeats */
#define ROLLUP_MAX_VALUE_LEN 256 /* bytes in one filter value */
#define ROLLUP_ROWS_MAX_LIMIT 1000
#define ROLLUP_ROWS_DEFAULT_LIMIT 100
#define ROLLUP_MAX_PARAMS 256 /* query-string parameters in one request */

/* Every instant a query names (from, to, start, end, a cursor) lies in
 * [1970-01-01T00:00:00Z, 10000-01-01T00:00:00Z]: years 1970 to 9999, with the
 * very end of 9999 allowed as an exclusive upper bound. No row can fall
 * outside it (ingest takes 1970 to 3000) and PostgreSQL takes all of it. */
#define ROLLUP_TIME_MIN_US 0LL
#define ROLLUP_TIME_MAX_US 253402300800000000LL

/* What a parameter sets; rollup_query_parse switches on it. */
enum rollup_param_id {
	ROLLUP_P_FROM,
	ROLLUP_P_TO,
	ROLLUP_P_START,
	ROLLUP_P_END,
	ROLLUP_P_PERIOD,
	ROLLUP_P_GRANULARITY,
	ROLLUP_P_GROUP_BY,
	ROLLUP_P_FORMAT,
	ROLLUP_P_CSV_RAW,
	ROLLUP_P_LIMIT,
	ROLLUP_P_NEXT,
	ROLLUP_P_FILTER,
};

/* One row of the parameter table. */
struct rollup_param_def {
	const char *name;
	int kinds; /* the rollup_kind bits that take it */
	enum rollup_param_id id;
	enum rollup_col col; /* ROLLUP_P_FILTER only */
};

/* Rows in the parameter table: rollup_params_lookup answers 0 to this - 1. */
#define ROLLUP_PARAMS_NDEFS 18

/* The table row named name that kind takes, or -1. */
int rollup_params_lookup(enum rollup_kind kind, const char *name);
const struct rollup_param_def *rollup_params_def(int i);

/* The names kind takes, in table order, as "from, to, ..." into out. */
void rollup_params_list(enum rollup_kind kind, char *out, size_t outlen);

/* The endpoint's path, for messages: "/v1/rollups". */
const char *rollup_params_path(enum rollup_kind kind);

/* The result column names, as the API and CSV header name them (and as the
 * group_by parameter lists them). */
const char *rollup_params_col_name(enum rollup_col c);
const char *rollup_params_granularity_name(enum rollup_granularity g);

/* One query-string parameter. */
struct rollup_param {
	const char *name;
	const char *value;
};

/* Splits a raw query string (the part after '?') in place into params (at
 * most ROLLUP_MAX_PARAMS), percent-decoding names and values ('+' is a
 * space); the params point into qs. Empty pieces (a=1&&b=2) are skipped.
 * Returns 200, or 400 naming the parameter that lacks '=' or decodes to a NUL
 * byte, or when there are too many. */
int rollup_params_split(char *qs, struct rollup_param *params, int *nparams, char *err,
			size_t errlen) __attribute__((warn_unused_result));

/* A parameter's text must be UTF-8 without control characters (C0, DEL and
 * C1): they mean nothing in a name and would reach PostgreSQL, CSV cells and
 * terminals. what names the parameter in the message. Returns 200 or 400. */
int rollup_params_check_text(const char *what, const char *s, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* How many bytes of s a message may echo: at most max, never half a character. */
int rollup_params_clip(const char *s, int max);

#endif
