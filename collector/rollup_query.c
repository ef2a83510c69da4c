/* Read-API query parsing, scope enforcement and SQL. Everything a peer sends
 * is checked here, with a 400 that names the parameter, before any SQL
 * exists; the SQL text is then assembled from fixed fragments only and every
 * value is a PQexecParams parameter. */
#include "rollup_query.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "row.h"

#define US_PER_S 1000000LL
#define US_PER_HOUR (3600LL * US_PER_S)
#define US_PER_DAY (86400LL * US_PER_S)

/* ---- names --------------------------------------------------------------- */

/* Result names (the API's) and columns (cost_rows' and cost_rollup_hourly's). */
static const char *const col_names[ROLLUP_NCOLS] = {
	"project", "agent", "tenant", "modality", "provider", "model", "session_id",
};
static const char *const col_sql[ROLLUP_NCOLS] = {
	"project", "agent_id", "tenant_id", "modality", "provider", "model_id", "session_id",
};
static const char *const gran_names[] = { "hour", "day", "month", "total" };

const char *const rollup_measures[ROLLUP_NMEASURES] = {
	"requests",	   "errors",	  "fallbacks",	  "cost_usd",
	"rated_price_usd", "input_units", "output_units", "cached_input_units",
};

const char *rollup_col_name(enum rollup_col c)
{
	return col_names[c];
}

const char *rollup_granularity_name(enum rollup_granularity g)
{
	return gran_names[g];
}

bool rollup_measure_is_count(int i)
{
	return i < 3;
}

bool rollup_measure_is_money(int i)
{
	return i == 3 || i == 4;
}

static const char *kind_path(enum rollup_kind k)
{
	return k == ROLLUP_KIND_ROLLUPS ? "/v1/rollups"
	       : k == ROLLUP_KIND_COSTS ? "/v1/costs"
					: "/v1/rows";
}

/* ---- text ------------------------------------------------------------------- */

/* How many bytes of s a message may echo: at most max, never half a character. */
static int clip(const char *s, int max)
{
	int n = (int)strnlen(s, (size_t)max + 1);

	if (n <= max)
		return n;
	for (n = max; n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; n--)
		;
	return n;
}

/* A parameter's text must be UTF-8 without control characters (C0, DEL and
 * C1): they mean nothing in a name and would reach PostgreSQL, CSV cells and
 * terminals. what names the parameter in the message. */
static int check_text(const char *what, const char *s, char *err, size_t errlen)
{
	size_t len = strlen(s);

	if (!row_utf8_valid(s, len)) {
		snprintf(err, errlen, "%s: not valid UTF-8", what);
		return 400;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned c = (unsigned char)s[i], next = (unsigned char)s[i + 1];

		if (c == 0xC2 && next >= 0x80 && next <= 0x9F)
			c = next; /* U+0080..U+009F, the C1 controls */
		else if (c >= 0x20 && c != 0x7F)
			continue;
		snprintf(err, errlen,
			 "%s: control character U+%04X at byte %zu; only printable text", what, c,
			 i);
		return 400;
	}
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s in place ('+' is a space; a '%' without two hex digits
 * stays as it is). Returns the decoded length, which counts any NUL bytes. */
static size_t url_decode(char *s)
{
	char *w = s;

	for (const char *r = s; *r; r++) {
		if (*r == '+') {
			*w++ = ' ';
		} else if (*r == '%' && hex_value(r[1]) >= 0 && hex_value(r[2]) >= 0) {
			*w++ = (char)(hex_value(r[1]) * 16 + hex_value(r[2]));
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* A name fit to echo in a message, or a stand-in. */
static const char *echo_name(const char *name)
{
	char scratch[8];

	if (strlen(name) > 64 || check_text("", name, scratch, sizeof(scratch)))
		return "a parameter";
	return name;
}

int rollup_params_split(char *qs, struct rollup_param *params, int *nparams, char *err,
			size_t errlen)
{
	char *p = qs;

	*nparams = 0;
	while (p && *p) {
		char *amp = strchr(p, '&'), *eq;

		if (amp)
			*amp = '\0';
		if (*p) {
			if (*nparams == ROLLUP_MAX_PARAMS) {
				snprintf(err, errlen, "more than %d query parameters",
					 ROLLUP_MAX_PARAMS);
				return 400;
			}
			if (!(eq = strchr(p, '='))) {
				bool nul = url_decode(p) != strlen(p);
				snprintf(err, errlen, "%s: expected name=value",
					 nul ? "a parameter" : echo_name(p));
				return 400;
			}
			*eq = '\0';
			if (url_decode(p) != strlen(p)) {
				snprintf(err, errlen, "a parameter name holds a NUL byte (%%00)");
				return 400;
			}
			if (url_decode(eq + 1) != strlen(eq + 1)) {
				snprintf(err, errlen, "%s: holds a NUL byte (%%00)", echo_name(p));
				return 400;
			}
			params[*nparams].name = p;
			params[*nparams].value = eq + 1;
			(*nparams)++;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

/* ---- the parameter table --------------------------------------------------- */

enum param_id {
	P_FROM,
	P_TO,
	P_START,
	P_END,
	P_PERIOD,
	P_GRANULARITY,
	P_GROUP_BY,
	P_FORMAT,
	P_CSV_RAW,
	P_LIMIT,
	P_NEXT,
	P_FILTER,
};

#define K_RU ROLLUP_KIND_ROLLUPS
#define K_CO ROLLUP_KIND_COSTS
#define K_RO ROLLUP_KIND_ROWS

static const struct {
	const char *name;
	int kinds;
	enum param_id id;
	enum rollup_col col; /* P_FILTER only */
} params_table[] = {
	{ "from", K_RU | K_RO, P_FROM, 0 },
	{ "to", K_RU | K_RO, P_TO, 0 },
	{ "start", K_CO, P_START, 0 },
	{ "end", K_CO, P_END, 0 },
	{ "period", K_CO, P_PERIOD, 0 },
	{ "granularity", K_RU, P_GRANULARITY, 0 },
	{ "group_by", K_RU, P_GROUP_BY, 0 },
	{ "format", K_RU, P_FORMAT, 0 },
	{ "csv_raw", K_RU, P_CSV_RAW, 0 },
	{ "limit", K_RO, P_LIMIT, 0 },
	{ "next", K_RO, P_NEXT, 0 },
	{ "project", K_RU | K_CO | K_RO, P_FILTER, ROLLUP_COL_PROJECT },
	{ "agent", K_RU | K_RO, P_FILTER, ROLLUP_COL_AGENT },
	{ "tenant", K_RU | K_CO | K_RO, P_FILTER, ROLLUP_COL_TENANT },
	{ "modality", K_RU | K_RO, P_FILTER, ROLLUP_COL_MODALITY },
	{ "provider", K_RU | K_RO, P_FILTER, ROLLUP_COL_PROVIDER },
	{ "model", K_RU | K_RO, P_FILTER, ROLLUP_COL_MODEL },
	{ "session_id", K_RO, P_FILTER, ROLLUP_COL_SESSION },
};
#define NPARAMS_TABLE (int)(sizeof(params_table) / sizeof(params_table[0]))

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

/* ---- time ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static long long days_from_civil(long long y, int m, int d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(long long z, int *y, int *m, int *d)
{
	long long era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static long long floor_div(long long a, long long b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void rollup_format_time(long long us, char *out, size_t outlen)
{
	long long days = floor_div(us, US_PER_DAY), rem = us - days * US_PER_DAY;
	int y, m, d;
	long long secs = rem / US_PER_S, frac = rem % US_PER_S;

	civil_from_days(days, &y, &m, &d);
	if (frac)
		snprintf(out, outlen, "%04d-%02d-%02dT%02lld:%02lld:%02lld.%06lldZ", y, m, d,
			 secs / 3600, secs / 60 % 60, secs % 60, frac);
	else
		snprintf(out, outlen, "%04d-%02d-%02dT%02lld:%02lld:%02lldZ", y, m, d, secs / 3600,
			 secs / 60 % 60, secs % 60);
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static int days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/* Parses YYYY-MM-DD (midnight UTC) or an RFC 3339 timestamp into epoch
 * microseconds. *date_only tells which it was. */
static bool parse_time(const char *s, long long *us, bool *date_only)
{
	int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0;
	long long frac = 0, t;
	size_t len = strlen(s);
	const char *p;

	if (len < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		return false;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return false;
	*date_only = len == 10;
	if (len > 10) {
		if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || len < 20 ||
		    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
		    s[16] != ':' || !digits(s + 17, 2, &se) || h > 23 || mi > 59 || se > 59)
			return false;
		p = s + 19;
		if (*p == '.') {
			int n = 0;
			for (p++; *p >= '0' && *p <= '9'; p++, n++) {
				if (n < 6)
					frac = frac * 10 + (*p - '0');
			}
			if (n == 0)
				return false;
			for (; n < 6; n++)
				frac *= 10;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == ' ' || *p == '-') {
			/* ' ': a '+' that a query string decoded as a space */
			sign = *p == '-' ? -1 : 1;
			if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) ||
			    oh > 23 || om > 59)
				return false;
			p += 6;
		} else {
			return false;
		}
		if (*p)
			return false;
	}
	t = days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + se;
	t -= sign * (oh * 3600LL + om * 60LL);
	*us = t * US_PER_S + frac;
	return true;
}

static long long month_index(long long us)
{
	int y, m, d;

	civil_from_days(floor_div(us, US_PER_DAY), &y, &m, &d);
	return (long long)y * 12 + (m - 1);
}

/* The number of hour, day or month periods [from, to) touches. */
static long long count_periods(enum rollup_granularity g, long long from, long long to)
{
	switch (g) {
	case ROLLUP_HOUR: return floor_div(to - 1, US_PER_HOUR) - floor_div(from, US_PER_HOUR) + 1;
	case ROLLUP_DAY: return floor_div(to - 1, US_PER_DAY) - floor_div(from, US_PER_DAY) + 1;
	case ROLLUP_MONTH: return month_index(to - 1) - month_index(from) + 1;
	case ROLLUP_TOTAL: break;
	}
	return 1;
}

/* ---- parsing --------------------------------------------------------------- */

static int add_filter_values(struct rollup_filter *f, const char *name, const char *list, char *err,
			     size_t errlen)
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
			return 0;
		p += n + 1;
	}
}

static int parse_group_by(struct rollup_query *q, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	if (!*p)
		return 0; /* group_by= : no group columns */
	for (;;) {
		size_t n = strcspn(p, ",");
		int c;

		for (c = 0; c < ROLLUP_NGROUP; c++)
			if (strlen(col_names[c]) == n && strncmp(col_names[c], p, n) == 0)
				break;
		if (c == ROLLUP_NGROUP) {
			snprintf(err, errlen,
				 "group_by: unknown value \"%.*s\"; expected a comma list of "
				 "project, agent, tenant, modality, provider, model",
				 clip(p, (int)(n > 64 ? 64 : n)), p);
			return 400;
		}
		for (int i = 0; i < q->ncols; i++) {
			if (q->cols[i] == (enum rollup_col)c) {
				snprintf(err, errlen, "group_by: \"%s\" is listed twice",
					 col_names[c]);
				return 400;
			}
		}
		q->cols[q->ncols++] = (enum rollup_col)c;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

/* Parses a time parameter and checks it lies in the supported range (see
 * ROLLUP_TIME_MIN_US); a date-only value is at most 9999-12-31, so a caller's
 * "through that day" (+1 day) stays in range too. */
static int parse_time_param(const char *name, const char *v, long long *us, bool *date_only,
			    char *err, size_t errlen)
{
	if (!parse_time(v, us, date_only)) {
		snprintf(err, errlen,
			 "%s: \"%.*s\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp "
			 "(2024-05-01T00:00:00Z)",
			 name, clip(v, 64), v);
		return 400;
	}
	if (*us < ROLLUP_TIME_MIN_US || *us > ROLLUP_TIME_MAX_US) {
		snprintf(err, errlen,
			 "%s: \"%.*s\" is outside the supported range, 1970-01-01T00:00:00Z to "
			 "10000-01-01T00:00:00Z (years 1970 to 9999)",
			 name, clip(v, 64), v);
		return 400;
	}
	return 0;
}

static bool b64url_decode(const char *in, unsigned char *out, size_t outcap, size_t *outlen)
{
	unsigned acc = 0;
	int bits = 0;
	size_t n = 0;

	for (const char *p = in; *p; p++) {
		int v;
		if (*p >= 'A' && *p <= 'Z')
			v = *p - 'A';
		else if (*p >= 'a' && *p <= 'z')
			v = *p - 'a' + 26;
		else if (*p >= '0' && *p <= '9')
			v = *p - '0' + 52;
		else if (*p == '-')
			v = 62;
		else if (*p == '_')
			v = 63;
		else
			return false;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == outcap)
				return false;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*outlen = n;
	return true;
}

bool rollup_cursor_encode(long long ts_us, const char *id, struct buf *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char head[32];
	struct buf raw;
	unsigned acc = 0;
	int bits = 0;
	bool ok;

	buf_init(&raw, 0);
	snprintf(head, sizeof(head), "%lld|", ts_us);
	buf_puts(&raw, head);
	buf_puts(&raw, id);
	ok = !raw.over;
	for (size_t i = 0; ok && i < raw.len; i++) {
		acc = (acc << 8) | (unsigned char)raw.data[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			buf_putc(out, tbl[(acc >> bits) & 63]);
		}
		acc &= (1u << bits) - 1;
	}
	if (ok && bits)
		buf_putc(out, tbl[(acc << (6 - bits)) & 63]);
	buf_release(&raw);
	return ok && !out->over;
}

/* Decodes and checks a cursor: its time must be in the supported range and
 * its id UTF-8 (ids may hold control characters: the cursor is ours). */
static int parse_cursor(struct rollup_query *q, const char *v, char *err, size_t errlen)
{
	unsigned char raw[512];
	const char *why = "it does not decode";
	size_t n;
	char *bar, *end;
	long long ts;

	if (strlen(v) > 600 || !b64url_decode(v, raw, sizeof(raw) - 1, &n))
		goto bad;
	raw[n] = '\0';
	if (memchr(raw, '\0', n) || !(bar = strchr((char *)raw, '|')) || bar == (char *)raw ||
	    !bar[1])
		goto bad;
	*bar = '\0';
	errno = 0;
	ts = strtoll((char *)raw, &end, 10);
	if (errno || *end || ts < ROLLUP_TIME_MIN_US || ts > ROLLUP_TIME_MAX_US) {
		why = "its time is not a time in the supported range";
		goto bad;
	}
	if (!row_utf8_valid(bar + 1, strlen(bar + 1))) {
		why = "its id is not UTF-8";
		goto bad;
	}
	if (!(q->cursor_id = strdup(bar + 1))) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	q->cursor_ts_us = ts;
	q->has_cursor = true;
	return 0;
bad:
	snprintf(err, errlen, "next: not a cursor this endpoint returned (%s)", why);
	return 400;
}

static void list_params(enum rollup_kind kind, char *out, size_t outlen)
{
	size_t pos = 0;

	out[0] = '\0';
	for (int i = 0; i < NPARAMS_TABLE && pos < outlen; i++)
		if (params_table[i].kinds & (int)kind)
			pos += (size_t)snprintf(out + pos, outlen - pos, "%s%s", pos ? ", " : "",
						params_table[i].name);
}

/* Rollups need whole hours: the hourly table cannot split one. */
static int check_hour(const char *name, long long us, char *err, size_t errlen)
{
	char t[40];

	if (floor_div(us, US_PER_HOUR) * US_PER_HOUR == us)
		return 0;
	rollup_format_time(us, t, sizeof(t));
	snprintf(err, errlen,
		 "%s: %s is not on an hour boundary; rollups are summed from whole UTC hours", name,
		 t);
	return 400;
}

/* Period (rolling windows) or start/end for /v1/costs. */
static int costs_window(struct rollup_query *q, const char *start, const char *end,
			const struct rollup_limits *lim, char *err, size_t errlen)
{
	long long now_us = (long long)(lim->now * 1e6), span = 0;
	long long now_hour = floor_div(now_us, US_PER_HOUR) * US_PER_HOUR;
	bool date_only;
	int st;

	if (q->period[0] && (start || end)) {
		snprintf(err, errlen, "period: give either period or start/end, not both");
		return 400;
	}
	if (start || end) {
		if (start) {
			if ((st = parse_time_param("start", start, &q->from_us, &date_only, err,
						   errlen)) ||
			    (st = check_hour("start", q->from_us, err, errlen)))
				return st;
			q->has_from = true;
		}
		if (end) {
			if ((st = parse_time_param("end", end, &q->to_us, &date_only, err, errlen)))
				return st;
			if (date_only)
				q->to_us += US_PER_DAY; /* a date as end means through that day */
			if ((st = check_hour("end", q->to_us, err, errlen)))
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
					clip(start, 64), start);
				return 400;
			}
		}
		if (q->has_from && q->from_us >= q->to_us) {
			snprintf(err, errlen, "start, end: start must be before end");
			return 400;
		}
		return 0;
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
			 clip(q->period, 8), q->period);
		return 400;
	}
	if (span) {
		/* Rolling: from the hour that holds now - span days, through now. */
		q->from_us = floor_div(now_us - span * US_PER_DAY, US_PER_HOUR) * US_PER_HOUR;
		q->has_from = true;
	}
	q->to_us = now_hour + US_PER_HOUR;
	q->has_to = true;
	return 0;
}

int rollup_query_parse(struct rollup_query *q, const struct rollup_param *params, int nparams,
		       const struct rollup_limits *lim, char *err, size_t errlen)
{
	const char *from = NULL, *to = NULL, *start = NULL, *end = NULL;
	bool seen[NPARAMS_TABLE] = { false };
	bool date_only;
	int st;

	for (int i = 0; i < nparams; i++) {
		const char *name = params[i].name, *v = params[i].value ? params[i].value : "";
		int t;

		if ((st = check_text("a parameter name", name, err, errlen)))
			return st;
		for (t = 0; t < NPARAMS_TABLE; t++)
			if (strcmp(params_table[t].name, name) == 0 &&
			    (params_table[t].kinds & (int)q->kind))
				break;
		if (t == NPARAMS_TABLE) {
			char known[256];
			list_params(q->kind, known, sizeof(known));
			snprintf(err, errlen, "unknown parameter \"%.*s\"; %s takes %s",
				 clip(name, 64), name, kind_path(q->kind), known);
			return 400;
		}
		if ((st = check_text(name, v, err, errlen)))
			return st;
		if (seen[t] && params_table[t].id != P_FILTER && params_table[t].id != P_GROUP_BY) {
			snprintf(err, errlen, "%s: given more than once", name);
			return 400;
		}
		seen[t] = true;
		switch (params_table[t].id) {
		case P_FROM: from = v; break;
		case P_TO: to = v; break;
		case P_START: start = v; break;
		case P_END: end = v; break;
		case P_PERIOD:
			if (strlen(v) >= sizeof(q->period) || !*v) {
				snprintf(err, errlen,
					 "period: \"%.*s\": expected today, week, month or all",
					 clip(v, 32), v);
				return 400;
			}
			strcpy(q->period, v);
			break;
		case P_GRANULARITY: {
			int g;
			for (g = 0; g < 4; g++)
				if (strcmp(v, gran_names[g]) == 0)
					break;
			if (g == 4) {
				snprintf(
					err, errlen,
					"granularity: \"%.*s\": expected hour, day, month or total",
					clip(v, 32), v);
				return 400;
			}
			q->granularity = (enum rollup_granularity)g;
			break;
		}
		case P_GROUP_BY:
			if ((st = parse_group_by(q, v, err, errlen)))
				return st;
			break;
		case P_FORMAT:
			if (strcmp(v, "csv") == 0)
				q->csv = true;
			else if (strcmp(v, "json") != 0) {
				snprintf(err, errlen, "format: \"%.*s\": expected json or csv",
					 clip(v, 32), v);
				return 400;
			}
			q->format_given = true;
			break;
		case P_CSV_RAW:
			if (strcmp(v, "1") && strcmp(v, "0")) {
				snprintf(err, errlen, "csv_raw: \"%.*s\": expected 1 or 0",
					 clip(v, 32), v);
				return 400;
			}
			q->csv_raw = v[0] == '1';
			break;
		case P_LIMIT: {
			char *e;
			long n;
			errno = 0;
			n = strtol(v, &e, 10);
			if (errno || e == v || *e || n < 1 || n > ROLLUP_ROWS_MAX_LIMIT) {
				snprintf(err, errlen,
					 "limit: \"%.*s\": expected a whole number from 1 to %d",
					 clip(v, 32), v, ROLLUP_ROWS_MAX_LIMIT);
				return 400;
			}
			q->limit = (int)n;
			break;
		}
		case P_NEXT:
			if ((st = parse_cursor(q, v, err, errlen)))
				return st;
			break;
		case P_FILTER:
			if ((st = add_filter_values(&q->filters[params_table[t].col], name, v, err,
						    errlen)))
				return st;
			break;
		}
	}
	/* Group-by default: tenant, unless group_by was given (even empty). */
	if (q->kind == ROLLUP_KIND_ROLLUPS) {
		bool given = false;
		for (int t = 0; t < NPARAMS_TABLE; t++)
			if (params_table[t].id == P_GROUP_BY && seen[t])
				given = true;
		if (!given) {
			q->cols[0] = ROLLUP_COL_TENANT;
			q->ncols = 1;
		}
	}
	for (int i = 0; i < q->filters[ROLLUP_COL_MODALITY].n; i++) {
		const char *m = q->filters[ROLLUP_COL_MODALITY].values[i];
		if (!m || (strcmp(m, "stt") && strcmp(m, "llm") && strcmp(m, "tts"))) {
			snprintf(err, errlen, "modality: \"%.*s\": expected stt, llm or tts",
				 m ? clip(m, 32) : 0, m ? m : "");
			return 400;
		}
	}
	if (q->kind == ROLLUP_KIND_COSTS)
		return costs_window(q, start, end, lim, err, errlen);

	if (from) {
		if ((st = parse_time_param("from", from, &q->from_us, &date_only, err, errlen)))
			return st;
		q->has_from = true;
	}
	if (to) {
		if ((st = parse_time_param("to", to, &q->to_us, &date_only, err, errlen)))
			return st;
		q->has_to = true;
	}
	if (q->kind == ROLLUP_KIND_ROLLUPS) {
		long long now_us = (long long)(lim->now * 1e6), n;

		/* Defaults: the 30 days up to the end of the current hour. */
		if (!q->has_to)
			q->to_us = (floor_div(now_us, US_PER_HOUR) + 1) * US_PER_HOUR;
		if (!q->has_from) {
			q->from_us = q->to_us - 30 * US_PER_DAY;
			if (q->from_us < ROLLUP_TIME_MIN_US)
				q->from_us = ROLLUP_TIME_MIN_US;
		}
		q->has_from = q->has_to = true;
		if ((st = check_hour("from", q->from_us, err, errlen)) ||
		    (st = check_hour("to", q->to_us, err, errlen)))
			return st;
		if (q->from_us >= q->to_us) {
			snprintf(err, errlen,
				 "from, to: from must be before to (the range is [from, to))");
			return 400;
		}
		n = count_periods(q->granularity, q->from_us, q->to_us);
		if (n > lim->max_periods) {
			snprintf(err, errlen,
				 "from, to: the range spans %lld %s periods, more than "
				 "max_rollup_periods (%d); narrow it or use a coarser granularity",
				 n, gran_names[q->granularity], lim->max_periods);
			return 400;
		}
	} else if (q->has_from && q->has_to && q->from_us >= q->to_us) {
		snprintf(err, errlen, "from, to: from must be before to (the range is [from, to))");
		return 400;
	}
	return 0;
}

/* ---- scope ------------------------------------------------------------------- */

static int scope_one(struct rollup_filter *f, const char *scope, const char *what,
		     const char *key_prefix, char *err, size_t errlen)
{
	if (!scope)
		return 0;
	if (f->n == 0) {
		if (!(f->values[0] = strdup(scope))) {
			snprintf(err, errlen, "out of memory");
			return 503;
		}
		f->n = 1;
		return 0;
	}
	for (int i = 0; i < f->n; i++) {
		if (f->values[i] && strcmp(f->values[i], scope) == 0)
			continue;
		if (f->values[i])
			snprintf(err, errlen,
				 "key %s is scoped to %s \"%s\" and may not read %s \"%.*s\"",
				 key_prefix, what, scope, what, clip(f->values[i], 64),
				 f->values[i]);
		else
			snprintf(err, errlen,
				 "key %s is scoped to %s \"%s\" and may not read rows without a %s",
				 key_prefix, what, scope, what);
		return 403;
	}
	return 0;
}

int rollup_query_scope(struct rollup_query *q, const char *project, const char *tenant,
		       const char *key_prefix, char *err, size_t errlen)
{
	int st = scope_one(&q->filters[ROLLUP_COL_TENANT], tenant, "tenant", key_prefix, err,
			   errlen);

	if (st)
		return st;
	return scope_one(&q->filters[ROLLUP_COL_PROJECT], project, "project", key_prefix, err,
			 errlen);
}

/* ---- SQL --------------------------------------------------------------------- */

void rollup_sql_free(struct rollup_sql *s)
{
	for (int i = 0; i < s->nparams; i++)
		free(s->params[i]);
	s->nparams = 0;
	buf_release(&s->text);
}

/* Adds a parameter (taking ownership of v) and writes its placeholder. */
static bool sql_param(struct rollup_sql *s, char *v, const char *cast)
{
	if (!v || s->nparams == ROLLUP_SQL_MAX_PARAMS) {
		free(v);
		return false;
	}
	s->params[s->nparams++] = v;
	return buf_printf(&s->text, "$%d::%s", s->nparams, cast);
}

static char *time_text(long long us)
{
	char t[40];

	rollup_format_time(us, t, sizeof(t));
	return strdup(t);
}

/* A PostgreSQL array literal of the non-NULL values: {"a","b\"c"}. */
static char *array_literal(const struct rollup_filter *f)
{
	struct buf b;

	buf_init(&b, 0);
	buf_putc(&b, '{');
	for (int i = 0, n = 0; i < f->n; i++) {
		if (!f->values[i])
			continue;
		if (n++)
			buf_putc(&b, ',');
		buf_putc(&b, '"');
		for (const char *p = f->values[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_putc(&b, '\\');
			buf_putc(&b, *p);
		}
		buf_putc(&b, '"');
	}
	buf_putc(&b, '}');
	if (b.over) {
		buf_release(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

/* WHERE over time (timecol) and every filter. */
static bool sql_where(const struct rollup_query *q, struct rollup_sql *s, const char *timecol)
{
	bool ok = buf_puts(&s->text, " WHERE true");

	if (q->has_from)
		ok = ok && buf_printf(&s->text, " AND %s >= ", timecol) &&
		     sql_param(s, time_text(q->from_us), "timestamptz");
	if (q->has_to)
		ok = ok && buf_printf(&s->text, " AND %s < ", timecol) &&
		     sql_param(s, time_text(q->to_us), "timestamptz");
	for (int c = 0; ok && c < ROLLUP_NCOLS; c++) {
		const struct rollup_filter *f = &q->filters[c];
		bool has_null = false, has_value = false;

		for (int i = 0; i < f->n; i++) {
			if (f->values[i])
				has_value = true;
			else
				has_null = true;
		}
		if (!f->n)
			continue;
		ok = buf_puts(&s->text, " AND (");
		if (has_value)
			ok = ok && buf_printf(&s->text, "%s = ANY(", col_sql[c]) &&
			     sql_param(s, array_literal(f), "text[]") && buf_putc(&s->text, ')');
		if (has_null)
			ok = ok && buf_printf(&s->text, "%s%s IS NULL", has_value ? " OR " : "",
					      col_sql[c]);
		ok = ok && buf_putc(&s->text, ')');
	}
	return ok;
}

/* Starts an empty statement in out; free it with rollup_sql_free whatever happens. */
static struct buf *sql_begin(struct rollup_sql *out)
{
	memset(out, 0, sizeof(*out));
	buf_init(&out->text, 0);
	return &out->text;
}

static const char period_fmt[] = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

/* One statement for rows and totals: GROUPING SETS ((period, cols...), ()).
 * Grouping on the timestamp and formatting after aggregation keeps the sort
 * cheap; for total the period is a constant NULL, which still lets
 * GROUPING() tell the totals row apart (and gives no data rows on no data). */
bool rollup_sql_rollups(const struct rollup_query *q, struct rollup_sql *out)
{
	struct buf *t = sql_begin(out);
	char period[80];
	bool ok;

	if (q->granularity == ROLLUP_TOTAL)
		snprintf(period, sizeof(period), "NULL::timestamp");
	else if (q->granularity == ROLLUP_HOUR)
		snprintf(period, sizeof(period), "(hour AT TIME ZONE 'UTC')");
	else
		snprintf(period, sizeof(period), "date_trunc('%s', hour AT TIME ZONE 'UTC')",
			 gran_names[q->granularity]);
	ok = buf_printf(t, "SELECT GROUPING(%s), to_char(%s, %s)", period, period, period_fmt);
	for (int i = 0; i < q->ncols; i++)
		ok = ok && buf_printf(t, ", %s", col_sql[q->cols[i]]);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		ok = ok && buf_printf(t, ", coalesce(sum(%s), 0)", rollup_measures[i]);
	ok = ok && buf_puts(t, " FROM cost_rollup_hourly") && sql_where(q, out, "hour") &&
	     buf_printf(t, " GROUP BY GROUPING SETS ((%s", period);
	for (int i = 0; i < q->ncols; i++)
		ok = ok && buf_printf(t, ", %s", col_sql[q->cols[i]]);
	ok = ok && buf_puts(t, "), ()) ORDER BY 1, 2");
	for (int i = 0; i < q->ncols; i++)
		ok = ok && buf_printf(t, ", %d", i + 3);
	return ok && !t->over;
}

bool rollup_sql_costs(const struct rollup_query *q, struct rollup_sql *out)
{
	struct buf *t = sql_begin(out);
	bool ok;

	ok = buf_puts(t, "SELECT CASE WHEN GROUPING(provider) = 0 THEN 'p'"
			 " WHEN GROUPING(model_id) = 0 THEN 'm'"
			 " WHEN GROUPING(project) = 0 THEN 'j' ELSE 't' END,"
			 " CASE WHEN GROUPING(provider) = 0 THEN provider"
			 " WHEN GROUPING(model_id) = 0 THEN model_id ELSE project END,"
			 " coalesce(sum(requests), 0), coalesce(sum(cost_usd), 0)"
			 " FROM cost_rollup_hourly") &&
	     sql_where(q, out, "hour") &&
	     buf_puts(t, " GROUP BY GROUPING SETS ((provider), (model_id), (project), ())"
			 " ORDER BY 1, 2");
	return ok && !t->over;
}

bool rollup_sql_rows(const struct rollup_query *q, struct rollup_sql *out)
{
	struct buf *t = sql_begin(out);
	char lim[16];
	bool ok;

	ok = buf_puts(
		     t,
		     "SELECT json_build_object('id', id, 'timestamp', extract(epoch FROM ts),"
		     " 'received_at', to_char(received_at AT TIME ZONE 'UTC',"
		     " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
		     " 'modality', modality, 'model_id', model_id, 'provider', provider,"
		     " 'project', project, 'tenant_id', tenant_id, 'agent_id', agent_id,"
		     " 'session_id', session_id, 'status', status, 'fallback_from', fallback_from,"
		     " 'error_message', error_message, 'cost_usd', cost_usd::text,"
		     " 'rated_price_usd', rated_price_usd::text, 'input_units', input_units,"
		     " 'output_units', output_units, 'cached_input_units', cached_input_units,"
		     " 'pricing_source', pricing_source, 'rate_rule', rate_rule,"
		     " 'ttfb_ms', ttfb_ms, 'total_latency_ms', total_latency_ms,"
		     " 'revision', revision, 'turn_index', turn_index, 'metadata', metadata)::text,"
		     " (extract(epoch FROM ts) * 1000000)::bigint, id"
		     " FROM cost_rows") &&
	     sql_where(q, out, "ts");
	if (ok && q->has_cursor) {
		char ts[24];
		snprintf(ts, sizeof(ts), "%lld", q->cursor_ts_us);
		ok = buf_puts(t, " AND (ts, id) < ('epoch'::timestamptz + ") &&
		     sql_param(out, strdup(ts), "bigint") &&
		     buf_puts(t, " * interval '1 microsecond', ") &&
		     sql_param(out, strdup(q->cursor_id), "text") && buf_putc(t, ')');
	}
	snprintf(lim, sizeof(lim), "%d", q->limit + 1);
	ok = ok && buf_puts(t, " ORDER BY ts DESC, id DESC LIMIT ") &&
	     sql_param(out, strdup(lim), "int");
	return ok && !t->over;
}
