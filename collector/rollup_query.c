/* Parses the read API's parameters into a struct rollup_query and checks
 * them: every value a peer sends gets a 400 that names its parameter here,
 * before any SQL exists. Also the defaults: ranges, the costs window, limits. */
#include "rollup_query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollup_cursor.h"
#include "timefmt.h"

#define US_PER_HOUR TIMEFMT_US_PER_HOUR
#define US_PER_DAY TIMEFMT_US_PER_DAY

void rollup_query_init(struct rollup_query *q, enum rollup_kind kind)
{
	memset(q, 0, sizeof(*q));
	q->kind = kind;
	q->granularity = ROLLUP_DAY;
	q->limit = ROLLUP_ROWS_DEFAULT_LIMIT;
}

void rollup_query_free(struct rollup_query *q)
{
	for (int c = 0; c < ROLLUP_NCOLS; c++) {
		for (int i = 0; i < q->filters[c].n; i++)
			free(q->filters[c].values[i]);
		q->filters[c].n = 0;
	}
	free(q->cursor_id);
	q->cursor_id = NULL;
}

static long long rollup_query_month_index(long long us)
{
	int y, m, d;

	timefmt_civil_from_days(timefmt_floor_div(us, US_PER_DAY), &y, &m, &d);
	return (long long)y * 12 + (m - 1);
}

/* The number of hour, day or month periods [from, to) touches. */
static long long rollup_query_count_periods(enum rollup_granularity g, long long from, long long to)
{
	switch (g) {
	case ROLLUP_HOUR:
		return timefmt_floor_div(to - 1, US_PER_HOUR) -
		       timefmt_floor_div(from, US_PER_HOUR) + 1;
	case ROLLUP_DAY:
		return timefmt_floor_div(to - 1, US_PER_DAY) - timefmt_floor_div(from, US_PER_DAY) +
		       1;
	case ROLLUP_MONTH:
		return rollup_query_month_index(to - 1) - rollup_query_month_index(from) + 1;
	case ROLLUP_TOTAL: break;
	}
	return 1;
}

static int rollup_query_add_filter(struct rollup_filter *f, const char *name, const char *list,
				   char *err, size_t errlen)
{
	const char *p = list;

	for (;;) {
		size_t n = strcspn(p, ",");
		char *v = NULL;

		if (f->n == ROLLUP_MAX_VALUES) {
			snprintf(err, errlen, "%s: more than %d values", name, ROLLUP_MAX_VALUES);
			return 400;
		}
		if (n > ROLLUP_MAX_VALUE_LEN) {
			snprintf(err, errlen, "%s: a value is longer than %d bytes", name,
				 ROLLUP_MAX_VALUE_LEN);
			return 400;
		}
		if (n > 0 && !(v = strndup(p, n))) {
			snprintf(err, errlen, "out of memory");
			return 503;
		}
		f->values[f->n++] = v;
		if (!p[n])
			return 200;
		p += n + 1;
	}
}

static int rollup_query_group_by(struct rollup_query *q, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	if (!*p)
		return 200; /* group_by= : no group columns */
	for (;;) {
		size_t n = strcspn(p, ",");
		int c;

		for (c = 0; c < ROLLUP_NGROUP; c++)
			if (strlen(rollup_params_col_name((enum rollup_col)c)) == n &&
			    strncmp(rollup_params_col_name((enum rollup_col)c), p, n) == 0)
				break;
		if (c == ROLLUP_NGROUP) {
			snprintf(err, errlen,
				 "group_by: unknown value \"%.*s\"; expected a comma list of "
				 "project, agent, tenant, modality, provider, model",
				 rollup_params_clip(p, (int)(n > 64 ? 64 : n)), p);
			return 400;
		}
		for (int i = 0; i < q->ncols; i++) {
			if (q->cols[i] == (enum rollup_col)c) {
				snprintf(err, errlen, "group_by: \"%s\" is listed twice",
					 rollup_params_col_name((enum rollup_col)c));
				return 400;
			}
		}
		q->cols[q->ncols++] = (enum rollup_col)c;
		if (!p[n])
			return 200;
		p += n + 1;
	}
}

/* Parses a time parameter and checks it lies in the supported range (see
 * ROLLUP_TIME_MIN_US); a date-only value is at most 9999-12-31, so a caller's
 * "through that day" (+1 day) stays in range too. */
static int rollup_query_time(const char *name, const char *v, long long *us, bool *date_only,
			     char *err, size_t errlen)
{
	if (!timefmt_parse(v, us, date_only)) {
		snprintf(err, errlen,
			 "%s: \"%.*s\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp "
			 "(2024-05-01T00:00:00Z)",
			 name, rollup_params_clip(v, 64), v);
		return 400;
	}
	if (*us < ROLLUP_TIME_MIN_US || *us > ROLLUP_TIME_MAX_US) {
		snprintf(err, errlen,
			 "%s: \"%.*s\" is outside the supported range, 1970-01-01T00:00:00Z to "
			 "10000-01-01T00:00:00Z (years 1970 to 9999)",
			 name, rollup_params_clip(v, 64), v);
		return 400;
	}
	return 200;
}

/* Rollups need whole hours: the hourly table cannot split one. */
static int rollup_query_check_hour(const char *name, long long us, char *err, size_t errlen)
{
	char t[40];

	if (timefmt_floor_div(us, US_PER_HOUR) * US_PER_HOUR == us)
		return 200;
	timefmt_format(us, t, sizeof(t));
	snprintf(err, errlen,
		 "%s: %s is not on an hour boundary; rollups are summed from whole UTC hours", name,
		 t);
	return 400;
}

/* Period (rolling windows) or start/end for /v1/costs. */
static int rollup_query_costs_window(struct rollup_query *q, const char *start, const char *end,
				     const struct rollup_limits *lim, char *err, size_t errlen)
{
	long long now_us = (long long)(lim->now * 1e6), span = 0;
	long long now_hour = timefmt_floor_div(now_us, US_PER_HOUR) * US_PER_HOUR;
	bool date_only;
	int st;

	if (q->period[0] && (start || end)) {
		snprintf(err, errlen, "period: give either period or start/end, not both");
		return 400;
	}
	if (start || end) {
		if (start) {
			if ((st = rollup_query_time("start", start, &q->from_us, &date_only, err,
						    errlen)) != 200 ||
			    (st = rollup_query_check_hour("start", q->from_us, err, errlen)) != 200)
				return st;
			q->has_from = true;
		}
		if (end) {
			if ((st = rollup_query_time("end", end, &q->to_us, &date_only, err,
						    errlen)) != 200)
				return st;
			if (date_only)
				q->to_us += US_PER_DAY; /* a date as end means through that day */
			if ((st = rollup_query_check_hour("end", q->to_us, err, errlen)) != 200)
				return st;
			q->has_to = true;
		}
		if (!q->has_to) {
			/* Only start: through the current hour, and the answer says so. */
			q->to_us = now_hour + US_PER_HOUR;
			q->has_to = true;
			if (q->from_us >= q->to_us) {
				snprintf(
					err, errlen,
					"start: \"%.*s\" is not before the end of the current hour, "
					"the end used when end is not given",
					rollup_params_clip(start, 64), start);
				return 400;
			}
		}
		if (q->has_from && q->from_us >= q->to_us) {
			snprintf(err, errlen, "start, end: start must be before end");
			return 400;
		}
		return 200;
	}
	if (!q->period[0])
		strcpy(q->period, "today");
	if (strcmp(q->period, "today") == 0)
		span = 1;
	else if (strcmp(q->period, "week") == 0)
		span = 7;
	else if (strcmp(q->period, "month") == 0)
		span = 30;
	else if (strcmp(q->period, "all") != 0) {
		snprintf(err, errlen, "period: \"%.*s\": expected today, week, month or all",
			 rollup_params_clip(q->period, 8), q->period);
		return 400;
	}
	if (span) {
		/* Rolling: from the hour that holds now - span days, through now. */
		q->from_us =
			timefmt_floor_div(now_us - span * US_PER_DAY, US_PER_HOUR) * US_PER_HOUR;
		q->has_from = true;
	}
	q->to_us = now_hour + US_PER_HOUR;
	q->has_to = true;
	return 200;
}

/* /v1/billing/usage: period or start/end as /v1/costs takes them (default:
 * period=month), or from/to on whole hours (to defaults to the end of the
 * current hour). Not both kinds. */
static int rollup_query_usage_window(struct rollup_query *q, const char *from, const char *to,
				     const char *start, const char *end,
				     const struct rollup_limits *lim, char *err, size_t errlen)
{
	long long now_us = (long long)(lim->now * 1e6);
	bool date_only;
	int st;

	if (!from && !to) {
		if (!q->period[0] && !start && !end)
			strcpy(q->period, "month");
		return rollup_query_costs_window(q, start, end, lim, err, errlen);
	}
	if (q->period[0] || start || end) {
		snprintf(err, errlen,
			 "from, to: give either from/to or period or start/end, not two of them");
		return 400;
	}
	if (!from) {
		snprintf(err, errlen, "from: required with to");
		return 400;
	}
	if ((st = rollup_query_time("from", from, &q->from_us, &date_only, err, errlen)) != 200 ||
	    (st = rollup_query_check_hour("from", q->from_us, err, errlen)) != 200)
		return st;
	if (to) {
		if ((st = rollup_query_time("to", to, &q->to_us, &date_only, err, errlen)) != 200 ||
		    (st = rollup_query_check_hour("to", q->to_us, err, errlen)) != 200)
			return st;
	} else {
		q->to_us = (timefmt_floor_div(now_us, US_PER_HOUR) + 1) * US_PER_HOUR;
	}
	q->has_from = q->has_to = true;
	if (q->from_us >= q->to_us) {
		snprintf(err, errlen, "from, to: from must be before to (the range is [from, to))");
		return 400;
	}
	return 200;
}

int rollup_query_parse(struct rollup_query *q, const struct rollup_param *params, int nparams,
		       const struct rollup_limits *lim, char *err, size_t errlen)
{
	const char *from = NULL, *to = NULL, *start = NULL, *end = NULL;
	bool seen[ROLLUP_PARAMS_NDEFS] = { false }, group_by_given = false;
	bool date_only;
	int st;

	for (int i = 0; i < nparams; i++) {
		const char *name = params[i].name, *v = params[i].value ? params[i].value : "";
		const struct rollup_param_def *def;
		int t;

		if ((st = rollup_params_check_text("a parameter name", name, err, errlen)) != 200)
			return st;
		if ((t = rollup_params_lookup(q->kind, name)) < 0) {
			char known[256];
			rollup_params_list(q->kind, known, sizeof(known));
			snprintf(err, errlen, "unknown parameter \"%.*s\"; %s takes %s",
				 rollup_params_clip(name, 64), name, rollup_params_path(q->kind),
				 known);
			return 400;
		}
		def = rollup_params_def(t);
		if ((st = rollup_params_check_text(name, v, err, errlen)) != 200)
			return st;
		if (seen[t] && def->id != ROLLUP_P_FILTER && def->id != ROLLUP_P_GROUP_BY) {
			snprintf(err, errlen, "%s: given more than once", name);
			return 400;
		}
		seen[t] = true;
		switch (def->id) {
		case ROLLUP_P_FROM: from = v; break;
		case ROLLUP_P_TO: to = v; break;
		case ROLLUP_P_START: start = v; break;
		case ROLLUP_P_END: end = v; break;
		case ROLLUP_P_PERIOD:
			if (strlen(v) >= sizeof(q->period) || !*v) {
				snprintf(err, errlen,
					 "period: \"%.*s\": expected today, week, month or all",
					 rollup_params_clip(v, 32), v);
				return 400;
			}
			strcpy(q->period, v);
			break;
		case ROLLUP_P_GRANULARITY: {
			int g;
			for (g = 0; g < ROLLUP_NGRANULARITIES; g++)
				if (strcmp(v, rollup_params_granularity_name(
						      (enum rollup_granularity)g)) == 0)
					break;
			if (g == ROLLUP_NGRANULARITIES) {
				snprintf(
					err, errlen,
					"granularity: \"%.*s\": expected hour, day, month or total",
					rollup_params_clip(v, 32), v);
				return 400;
			}
			q->granularity = (enum rollup_granularity)g;
			break;
		}
		case ROLLUP_P_GROUP_BY:
			group_by_given = true;
			if ((st = rollup_query_group_by(q, v, err, errlen)) != 200)
				return st;
			break;
		case ROLLUP_P_FORMAT:
			if (strcmp(v, "csv") == 0)
				q->csv = true;
			else if (strcmp(v, "json") != 0) {
				snprintf(err, errlen, "format: \"%.*s\": expected json or csv",
					 rollup_params_clip(v, 32), v);
				return 400;
			}
			q->format_given = true;
			break;
		case ROLLUP_P_CSV_RAW:
			if (strcmp(v, "1") && strcmp(v, "0")) {
				snprintf(err, errlen, "csv_raw: \"%.*s\": expected 1 or 0",
					 rollup_params_clip(v, 32), v);
				return 400;
			}
			q->csv_raw = v[0] == '1';
			break;
		case ROLLUP_P_LIMIT: {
			char *e;
			long n;
			errno = 0;
			n = strtol(v, &e, 10);
			if (errno || e == v || *e || n < 1 || n > ROLLUP_ROWS_MAX_LIMIT) {
				snprintf(err, errlen,
					 "limit: \"%.*s\": expected a whole number from 1 to %d",
					 rollup_params_clip(v, 32), v, ROLLUP_ROWS_MAX_LIMIT);
				return 400;
			}
			q->limit = (int)n;
			break;
		}
		case ROLLUP_P_NEXT:
			if ((st = rollup_cursor_decode(v, &q->cursor_ts_us, &q->cursor_id, err,
						       errlen)) != 200)
				return st;
			q->has_cursor = true;
			break;
		case ROLLUP_P_FILTER:
			if ((st = rollup_query_add_filter(&q->filters[def->col], name, v, err,
							  errlen)) != 200)
				return st;
			break;
		}
	}
	/* Group-by default: tenant, unless group_by was given (even empty). */
	if (q->kind == ROLLUP_KIND_ROLLUPS) {
		if (!group_by_given) {
			q->cols[0] = ROLLUP_COL_TENANT;
			q->ncols = 1;
		}
	}
	for (int i = 0; i < q->filters[ROLLUP_COL_MODALITY].n; i++) {
		const char *m = q->filters[ROLLUP_COL_MODALITY].values[i];
		if (!m || (strcmp(m, "stt") && strcmp(m, "llm") && strcmp(m, "tts"))) {
			snprintf(err, errlen, "modality: \"%.*s\": expected stt, llm or tts",
				 m ? rollup_params_clip(m, 32) : 0, m ? m : "");
			return 400;
		}
	}
	if (q->kind == ROLLUP_KIND_COSTS)
		return rollup_query_costs_window(q, start, end, lim, err, errlen);
	if (q->kind == ROLLUP_KIND_USAGE)
		return rollup_query_usage_window(q, from, to, start, end, lim, err, errlen);

	if (from) {
		if ((st = rollup_query_time("from", from, &q->from_us, &date_only, err, errlen)) !=
		    200)
			return st;
		q->has_from = true;
	}
	if (to) {
		if ((st = rollup_query_time("to", to, &q->to_us, &date_only, err, errlen)) != 200)
			return st;
		q->has_to = true;
	}
	if (q->kind == ROLLUP_KIND_UNPRICED) {
		long long now_us = (long long)(lim->now * 1e6);

		/* Defaults: the 30 days up to the end of the current hour. */
		if (!q->has_to)
			q->to_us = (timefmt_floor_div(now_us, US_PER_HOUR) + 1) * US_PER_HOUR;
		if (!q->has_from)
			q->from_us = q->to_us - 30 * US_PER_DAY;
		q->has_from = q->has_to = true;
	}
	if (q->kind == ROLLUP_KIND_ROLLUPS) {
		long long now_us = (long long)(lim->now * 1e6), n;

		/* Defaults: the 30 days up to the end of the current hour. */
		if (!q->has_to)
			q->to_us = (timefmt_floor_div(now_us, US_PER_HOUR) + 1) * US_PER_HOUR;
		if (!q->has_from) {
			q->from_us = q->to_us - 30 * US_PER_DAY;
			if (q->from_us < ROLLUP_TIME_MIN_US)
				q->from_us = ROLLUP_TIME_MIN_US;
		}
		q->has_from = q->has_to = true;
		if ((st = rollup_query_check_hour("from", q->from_us, err, errlen)) != 200 ||
		    (st = rollup_query_check_hour("to", q->to_us, err, errlen)) != 200)
			return st;
		if (q->from_us >= q->to_us) {
			snprintf(err, errlen,
				 "from, to: from must be before to (the range is [from, to))");
			return 400;
		}
		n = rollup_query_count_periods(q->granularity, q->from_us, q->to_us);
		if (n > lim->max_periods) {
			snprintf(err, errlen,
				 "from, to: the range spans %lld %s periods, more than "
				 "max_rollup_periods (%d); narrow it or use a coarser granularity",
				 n, rollup_params_granularity_name(q->granularity),
				 lim->max_periods);
			return 400;
		}
	} else if (q->has_from && q->has_to && q->from_us >= q->to_us) {
		snprintf(err, errlen, "from, to: from must be before to (the range is [from, to))");
		return 400;
	}
	return 200;
}
