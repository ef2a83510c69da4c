/* The read API's query model, shared by GET /v1/rollups, /v1/costs, /v1/rows
 * and `vgcollector rollup`: parameter parsing and validation into a struct,
 * key-scope enforcement, and the parameterized SQL. Pure: no I/O, no libpq
 * calls, so the HTTP path and the CLI build the very same statements. */
#ifndef VGC_ROLLUP_QUERY_H
#define VGC_ROLLUP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Which endpoint a query is for; decides which parameters it accepts. */
enum rollup_kind { ROLLUP_KIND_ROLLUPS = 1, ROLLUP_KIND_COSTS = 2, ROLLUP_KIND_ROWS = 4 };

enum rollup_granularity { ROLLUP_HOUR = 0, ROLLUP_DAY, ROLLUP_MONTH, ROLLUP_TOTAL };

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

/* One filter: the row matches when its column equals any value. A NULL value
 * (written as an empty parameter, `tenant=`) selects rows where the column is
 * NULL, i.e. unattributed. n == 0: no filter. */
struct rollup_filter {
	int n;
	char *values[ROLLUP_MAX_VALUES]; /* owned; NULL entries mean SQL NULL */
};

/* A parsed, validated query. Times are epoch microseconds, UTC, half-open
 * [from, to). Owns its strings: free with rollup_query_free. */
struct rollup_query {
	enum rollup_kind kind;
	long long from_us, to_us;
	bool has_from, has_to;
	enum rollup_granularity granularity;
	int ncols; /* group_by, in the order given */
	enum rollup_col cols[ROLLUP_NGROUP];
	struct rollup_filter filters[ROLLUP_NCOLS];
	bool csv;	   /* format=csv (or Accept: text/csv) */
	bool format_given; /* format= was present: Accept is ignored */
	bool csv_raw;	   /* csv_raw=1: text cells are not neutralised */

	/* /v1/costs */
	char period[8]; /* today, week, month, all, or "" with start/end */

	/* /v1/rows */
	int limit;
	bool has_cursor;
	long long cursor_ts_us;
	char *cursor_id; /* owned */
};

/* One query-string parameter. */
struct rollup_param {
	const char *name;
	const char *value;
};

/* Limits and the clock, given by the caller so parsing stays pure. */
struct rollup_limits {
	int max_periods; /* max_rollup_periods: most result periods a rollup may span */
	double now;	 /* epoch seconds: defaults and /v1/costs' rolling windows */
};

/* Splits a raw query string (the part after '?') in place into params (at
 * most ROLLUP_MAX_PARAMS), percent-decoding names and values ('+' is a
 * space); the params point into qs. Empty pieces (a=1&&b=2) are skipped.
 * Returns 0, or 400 naming the parameter that lacks '=' or decodes to a NUL
 * byte, or when there are too many. */
int rollup_params_split(char *qs, struct rollup_param *params, int *nparams, char *err,
			size_t errlen) __attribute__((warn_unused_result));

void rollup_query_init(struct rollup_query *q, enum rollup_kind kind);
void rollup_query_free(struct rollup_query *q);

/* Parses and validates params for q->kind (set by rollup_query_init). Every
 * name and value must be UTF-8 without control characters (C0, DEL, C1) and
 * every instant within ROLLUP_TIME_MIN_US..ROLLUP_TIME_MAX_US. Returns 0, or
 * 400 with a message in err that names the parameter, or 503 when out of
 * memory. */
int rollup_query_parse(struct rollup_query *q, const struct rollup_param *params, int nparams,
		       const struct rollup_limits *lim, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Confines q to a key's scope (NULL = unrestricted): without a filter on
 * tenant (project) the query is narrowed to the key's tenant (project); a
 * filter naming anything else is refused. Returns 0, 403 with err, or 503. */
int rollup_query_scope(struct rollup_query *q, const char *project, const char *tenant,
		       const char *key_prefix, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The result column names, as the API and CSV header name them. */
const char *rollup_col_name(enum rollup_col c);
const char *rollup_granularity_name(enum rollup_granularity g);

/* Parameterized SQL. The text comes only from fixed fragments chosen by the
 * parsed enums; every value travels in params (owned by the rollup_sql,
 * all text format). Free with rollup_sql_free. */
#define ROLLUP_SQL_MAX_PARAMS 16
struct rollup_sql {
	struct buf text;
	int nparams;
	char *params[ROLLUP_SQL_MAX_PARAMS];
};

/* Result columns of rollup_sql_rollups: 0 is 1 on the one totals row (last)
 * and 0 on the others; 1 the period (NULL for total); then q->cols in order;
 * then ROLLUP_NMEASURES measures in the order of rollup_measures[]. */
#define ROLLUP_NMEASURES 8
#define ROLLUP_COL0_GROUPS 2 /* the first group column */
extern const char *const rollup_measures[ROLLUP_NMEASURES];
/* Which measures are money (decimal strings in JSON) and which are counts. */
bool rollup_measure_is_money(int i);
bool rollup_measure_is_count(int i);

bool rollup_sql_rollups(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
/* /v1/costs: columns kind ('p', 'm', 'j' or 't' for total), name, requests, cost. */
bool rollup_sql_costs(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
/* /v1/rows: columns json (one object per row), cursor ts (epoch us), id. Asks
 * for limit + 1 rows so the caller knows whether there is a next page. */
bool rollup_sql_rows(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
void rollup_sql_free(struct rollup_sql *s);

/* Formats epoch microseconds as RFC 3339 UTC ("2024-05-01T00:00:00Z", with
 * .ffffff only when not whole seconds). out needs 32 bytes. */
void rollup_format_time(long long us, char *out, size_t outlen);

/* The opaque /v1/rows cursor: base64url of "<ts_us>|<id>". Parsing checks
 * the timestamp is in the supported range and the id is UTF-8 text. */
bool rollup_cursor_encode(long long ts_us, const char *id, struct buf *out);

#endif
