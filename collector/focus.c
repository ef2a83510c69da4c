/* The FOCUS 1.2 export: the column table, the SQL of a month's lines (one per
 * UTC day, tenant, project, agent, provider, model and modality, read from the
 * rollups, never from cost_rows), the CSV and the tie-out manifest. */
#include "focus.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "db.h"
#include "rollup.h"
#include "rollup_shape.h"
#include "row.h"
#include "timefmt.h"

/* Where a column's value comes from. */
enum focus_src {
	FOCUS_COST,
	FOCUS_LIST_COST,
	FOCUS_ACCOUNT,
	FOCUS_CURRENCY,
	FOCUS_BILLING_END,
	FOCUS_BILLING_START,
	FOCUS_CATEGORY,
	FOCUS_CLASS,
	FOCUS_DESCRIPTION,
	FOCUS_CHARGE_END,
	FOCUS_CHARGE_START,
	FOCUS_QUANTITY,
	FOCUS_UNIT,
	FOCUS_PROVIDER,
	FOCUS_AGENT,
	FOCUS_SERVICE_CATEGORY,
	FOCUS_MODEL,
	FOCUS_TENANT,
	FOCUS_TAGS,
	FOCUS_REQUESTS,
	FOCUS_MODALITY,
	FOCUS_RATED,
};

/* The CSV's columns, in order: FOCUS's mandatory and the conditional ones
 * that apply, by FOCUS's names (alphabetical), then ours, x_-prefixed. */
static const struct {
	const char *name;
	enum focus_src src;
} focus_columns[] = {
	{ "BilledCost", FOCUS_COST },
	{ "BillingAccountId", FOCUS_ACCOUNT },
	{ "BillingAccountName", FOCUS_ACCOUNT },
	{ "BillingCurrency", FOCUS_CURRENCY },
	{ "BillingPeriodEnd", FOCUS_BILLING_END },
	{ "BillingPeriodStart", FOCUS_BILLING_START },
	{ "ChargeCategory", FOCUS_CATEGORY },
	{ "ChargeClass", FOCUS_CLASS },
	{ "ChargeDescription", FOCUS_DESCRIPTION },
	{ "ChargePeriodEnd", FOCUS_CHARGE_END },
	{ "ChargePeriodStart", FOCUS_CHARGE_START },
	{ "ConsumedQuantity", FOCUS_QUANTITY },
	{ "ConsumedUnit", FOCUS_UNIT },
	{ "ContractedCost", FOCUS_COST },
	{ "EffectiveCost", FOCUS_COST },
	{ "InvoiceIssuerName", FOCUS_PROVIDER },
	{ "ListCost", FOCUS_LIST_COST },
	{ "PricingQuantity", FOCUS_QUANTITY },
	{ "PricingUnit", FOCUS_UNIT },
	{ "ProviderName", FOCUS_PROVIDER },
	{ "PublisherName", FOCUS_PROVIDER },
	{ "ResourceId", FOCUS_AGENT },
	{ "ResourceName", FOCUS_AGENT },
	{ "ServiceCategory", FOCUS_SERVICE_CATEGORY },
	{ "ServiceName", FOCUS_PROVIDER },
	{ "SkuId", FOCUS_MODEL },
	{ "SubAccountId", FOCUS_TENANT },
	{ "SubAccountName", FOCUS_TENANT },
	{ "Tags", FOCUS_TAGS },
	{ "x_Requests", FOCUS_REQUESTS },
	{ "x_Modality", FOCUS_MODALITY },
	/* Last: a month closed before the rated price was frozen with its lines
	 * renders every column but this one (focus_ncolumns). */
	{ "x_RatedPrice", FOCUS_RATED },
};
#define FOCUS_NCOLUMNS (int)(sizeof(focus_columns) / sizeof(focus_columns[0]))

/* Columns of a line as the statements return it (focus_sql_select). */
enum {
	FOCUS_L_CLASS,
	FOCUS_L_START,
	FOCUS_L_END,
	FOCUS_L_TENANT,
	FOCUS_L_PROJECT,
	FOCUS_L_AGENT,
	FOCUS_L_PROVIDER,
	FOCUS_L_MODEL,
	FOCUS_L_MODALITY,
	FOCUS_L_REQUESTS,
	FOCUS_L_COST,
	FOCUS_L_LIST_COST,
	FOCUS_L_QUANTITY,
	FOCUS_L_RATED,
	FOCUS_L_USAGE_SUM,
	FOCUS_L_CORRECTION_SUM,
};

/* ListCost. The one place it is decided: the price book's cost when the book
 * priced every row of the line (priced_rows = requests), else the recorded
 * cost, so a line is never listed at a partial book price. */
static const char focus_list_cost_sql[] =
	"CASE WHEN priced_rows = requests THEN book_cost_usd ELSE cost_usd END";

/* ConsumedQuantity and PricingQuantity of a group, and their unit. */
static const char focus_quantity_sql[] =
	"CASE modality WHEN 'llm' THEN input_units + output_units ELSE input_units END";

/* The rated price a Correction line bills for a day: the rollups' minus what
 * the closed months' lines billed. A line frozen before the lines kept a rated
 * price has none (NULL); its line key's rated price counts as billed in full,
 * so its corrections carry a rated delta of 0. */
static const char focus_rated_delta_sql[] =
	"CASE WHEN count(*) FILTER (WHERE rated_price_usd IS NULL) > 0 THEN 0"
	" ELSE sum(rated_price_usd) END";

static const char focus_time_fmt[] = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

/* The line columns every statement's lines CTE has, in order. */
#define FOCUS_LINE_KEYS "tenant_id, project, agent_id, provider, model_id, modality"

bool focus_period_parse(const char *s, long long *month_us)
{
	int y, m;

	if (strlen(s) != 7 || s[4] != '-')
		return false;
	for (int i = 0; i < 7; i++)
		if (i != 4 && (s[i] < '0' || s[i] > '9'))
			return false;
	y = atoi(s);
	m = atoi(s + 5);
	if (y < 1970 || m < 1 || m > 12)
		return false;
	*month_us = timefmt_days_from_civil(y, m, 1) * TIMEFMT_US_PER_DAY;
	return true;
}

long long focus_next_month(long long month_us)
{
	int y, m, d;

	timefmt_civil_from_days(timefmt_floor_div(month_us, TIMEFMT_US_PER_DAY), &y, &m, &d);
	if (++m > 12) {
		m = 1;
		y++;
	}
	return timefmt_days_from_civil(y, m, 1) * TIMEFMT_US_PER_DAY;
}

static long long focus_prev_month(long long month_us)
{
	int y, m, d;

	timefmt_civil_from_days(timefmt_floor_div(month_us, TIMEFMT_US_PER_DAY), &y, &m, &d);
	if (--m < 1) {
		m = 12;
		y--;
	}
	return timefmt_days_from_civil(y, m, 1) * TIMEFMT_US_PER_DAY;
}

void focus_period_name(long long month_us, char *out, size_t outlen)
{
	int y, m, d;

	timefmt_civil_from_days(timefmt_floor_div(month_us, TIMEFMT_US_PER_DAY), &y, &m, &d);
	snprintf(out, outlen, "%04d-%02d", y, m);
}

void focus_result_free(struct focus_result *r)
{
	free(r->billed_cost);
	free(r->usage_cost);
	free(r->correction_cost);
	free(r->rollup_cost_usd);
	memset(r, 0, sizeof(*r));
}

/* Adds a parameter (a copy of v) and writes its placeholder. */
bool focus_sql_param(struct rollup_sql *s, const char *v, const char *cast)
{
	if (!v || s->nparams == ROLLUP_SQL_MAX_PARAMS || !(s->params[s->nparams] = strdup(v)))
		return false;
	s->nparams++;
	return buf_printf(&s->text, "$%d::%s", s->nparams, cast);
}

static bool focus_sql_time(struct rollup_sql *s, long long us)
{
	char t[40];

	timefmt_format(us, t, sizeof(t));
	return focus_sql_param(s, t, "timestamptz");
}

/* " AND (col = ANY($n) OR col IS NULL)" for a filter of q over a table of
 * lines (tenant and project: the only filters a key's scope and the export's
 * parameters set). */
static bool focus_sql_filter(struct rollup_sql *s, const struct rollup_filter *f, const char *col)
{
	struct buf arr;
	bool has_null = false, ok;
	int n = 0;

	if (!f->n)
		return true;
	buf_init(&arr, 0);
	buf_putc(&arr, '{');
	for (int i = 0; i < f->n; i++) {
		if (!f->values[i]) {
			has_null = true;
			continue;
		}
		buf_puts(&arr, n++ ? ",\"" : "\"");
		for (const char *c = f->values[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				buf_putc(&arr, '\\');
			buf_putc(&arr, *c);
		}
		buf_putc(&arr, '"');
	}
	buf_putc(&arr, '}');
	buf_putc(&arr, '\0');
	ok = !arr.over && buf_printf(&s->text, " AND (%s = ANY(", col) &&
	     focus_sql_param(s, arr.data, "text[]") &&
	     buf_printf(&s->text, ")%s%s%s)", has_null ? " OR " : "", has_null ? col : "",
			has_null ? " IS NULL" : "");
	buf_release(&arr);
	return ok;
}

bool focus_sql_filters(struct rollup_sql *s, const struct rollup_query *q)
{
	return focus_sql_filter(s, &q->filters[ROLLUP_COL_TENANT], "tenant_id") &&
	       focus_sql_filter(s, &q->filters[ROLLUP_COL_PROJECT], "project");
}

bool focus_sql_lines(const struct focus_params *p, long long cfrom_us, struct rollup_sql *s)
{
	struct rollup_query rq;
	struct buf head;
	bool ok;

	/* The rollups per day and line key over the correction run and the month:
	 * /v1/rollups' own statement (daily and hourly combined exactly). */
	memset(&rq, 0, sizeof(rq));
	rq.kind = ROLLUP_KIND_ROLLUPS;
	rq.granularity = ROLLUP_DAY;
	rq.has_from = rq.has_to = true;
	rq.from_us = cfrom_us;
	rq.to_us = focus_next_month(p->month_us);
	rq.ncols = 6;
	rq.cols[0] = ROLLUP_COL_TENANT;
	rq.cols[1] = ROLLUP_COL_PROJECT;
	rq.cols[2] = ROLLUP_COL_AGENT;
	rq.cols[3] = ROLLUP_COL_PROVIDER;
	rq.cols[4] = ROLLUP_COL_MODEL;
	rq.cols[5] = ROLLUP_COL_MODALITY;
	memcpy(rq.filters, p->q->filters, sizeof(rq.filters)); /* borrowed, never freed here */
	if (!rollup_sql_rollups(&rq, s))
		return false;

	buf_init(&head, 0);
	/* The rollup answer's measure columns, named as the rollup shape names them. */
	ok = buf_puts(&head, "WITH r(g, day, " FOCUS_LINE_KEYS);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		ok = ok && buf_printf(&head, ", %s", rollup_measures[i].name);
	ok = ok && buf_puts(&head, ") AS (") && buf_append(&head, s->text.data, s->text.len) &&
	     buf_puts(&head, "), lines AS (");
	buf_release(&s->text);
	s->text = head;

	/* The month's own days. */
	ok = ok &&
	     buf_printf(
		     &s->text,
		     "SELECT day::timestamptz AS charge_day, ''::text AS charge_class, " FOCUS_LINE_KEYS
		     ", requests, cost_usd, %s AS list_cost_usd, %s AS quantity, rated_price_usd"
		     " FROM r WHERE g = 0 AND day::timestamptz >= ",
		     focus_list_cost_sql, focus_quantity_sql) &&
	     focus_sql_time(s, p->month_us);

	/* Corrections: the closed days' rollups minus every line already billed for them. */
	ok = ok &&
	     buf_printf(
		     &s->text,
		     " UNION ALL SELECT charge_day, 'Correction', " FOCUS_LINE_KEYS
		     ", sum(requests)::bigint, sum(cost_usd), sum(list_cost_usd), sum(quantity), %s"
		     " FROM (SELECT day::timestamptz AS charge_day, " FOCUS_LINE_KEYS
		     ", requests, cost_usd, %s AS list_cost_usd, %s AS quantity, rated_price_usd"
		     " FROM r WHERE g = 0 AND day::timestamptz < ",
		     focus_rated_delta_sql, focus_list_cost_sql, focus_quantity_sql) &&
	     focus_sql_time(s, p->month_us) &&
	     buf_puts(&s->text,
		      " UNION ALL SELECT charge_day, " FOCUS_LINE_KEYS
		      ", -requests, -cost_usd, -list_cost_usd, -quantity, -rated_price_usd"
		      " FROM billing_period_lines WHERE charge_day >= ") &&
	     focus_sql_time(s, cfrom_us) && buf_puts(&s->text, " AND charge_day < ") &&
	     focus_sql_time(s, p->month_us) && focus_sql_filters(s, p->q) &&
	     buf_printf(&s->text,
			") c GROUP BY charge_day, " FOCUS_LINE_KEYS
			" HAVING sum(cost_usd) <> 0 OR sum(requests) <> 0"
			" OR sum(quantity) <> 0 OR %s <> 0)",
			focus_rated_delta_sql);
	return ok && !s->text.over;
}

/* "SELECT <line columns> FROM <from> ORDER BY ..." appended to s: the same
 * columns and order for live and frozen lines, so a closed month's bytes are
 * the bytes it had when open. */
static bool focus_sql_select(struct rollup_sql *s, const char *from)
{
	return buf_printf(
		&s->text,
		" SELECT charge_class, to_char(charge_day AT TIME ZONE 'UTC', %s),"
		" to_char((charge_day + interval '1 day') AT TIME ZONE 'UTC', %s), " FOCUS_LINE_KEYS
		", requests, cost_usd, list_cost_usd, quantity, rated_price_usd,"
		" sum(cost_usd) FILTER (WHERE charge_class = '') OVER (),"
		" sum(cost_usd) FILTER (WHERE charge_class <> '') OVER ()"
		" FROM %s ORDER BY charge_class, charge_day, tenant_id COLLATE \"C\","
		" project COLLATE \"C\", agent_id COLLATE \"C\", provider COLLATE \"C\","
		" model_id COLLATE \"C\", modality",
		focus_time_fmt, focus_time_fmt, from);
}

bool focus_closed_run(PGconn *conn, long long month_us, long long *cfrom_us, bool *closed,
		      char *closed_at, char *account, bool *rated, char *err, size_t errlen)
{
	char t[40];
	const char *params[1] = { t };
	PGresult *res;
	int n;

	timefmt_format(month_us, t, sizeof(t));
	res = PQexecParams(
		conn,
		"SELECT (extract(epoch FROM period::timestamp) * 1000000)::bigint,"
		" to_char(closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
		" billing_account, x_rated_price FROM billing_periods WHERE period <= ($1::timestamptz AT TIME ZONE 'UTC')::date"
		" ORDER BY period DESC",
		1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	n = PQntuples(res);
	*closed = false;
	*rated = true;
	*cfrom_us = month_us;
	for (int r = 0; r < n; r++) {
		long long p = strtoll(PQgetvalue(res, r, 0), NULL, 10);

		if (p == month_us) {
			*closed = true;
			snprintf(closed_at, 40, "%s", PQgetvalue(res, r, 1));
			snprintf(account, 256, "%s", PQgetvalue(res, r, 2));
			*rated = PQgetvalue(res, r, 3)[0] == 't';
		} else if (p == focus_prev_month(*cfrom_us)) {
			*cfrom_us = p;
		} else if (p < *cfrom_us) {
			break;
		}
	}
	PQclear(res);
	return true;
}

/* True for the columns whose text comes from the workers that send rows
 * (names a spreadsheet must not run, as in every CSV of ours); money,
 * quantities, times and our own words are never changed. */
static bool focus_src_is_name(enum focus_src src)
{
	return src == FOCUS_PROVIDER || src == FOCUS_AGENT || src == FOCUS_MODEL ||
	       src == FOCUS_TENANT;
}

static const char *focus_value(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}

static const char *focus_unit(const char *modality)
{
	if (strcmp(modality, "llm") == 0)
		return "Tokens";
	if (strcmp(modality, "stt") == 0)
		return "Minutes";
	return "Characters";
}

/* The CSV's header line, of its first ncols columns. */
static void focus_render_header(int ncols, struct buf *out)
{
	for (int c = 0; c < ncols; c++)
		buf_printf(out, "%s%s", focus_columns[c].name, c + 1 < ncols ? "," : "\r\n");
}

/* The CSV lines of the lines in res, their first ncols columns each. */
static void focus_render(const struct focus_params *p, const char *account, int ncols,
			 const PGresult *res, struct buf *out)
{
	char bstart[40], bend[40];
	struct buf tmp;

	timefmt_format(p->month_us, bstart, sizeof(bstart));
	timefmt_format(focus_next_month(p->month_us), bend, sizeof(bend));
	buf_init(&tmp, 0);
	for (int r = 0; r < PQntuples(res); r++) {
		const char *provider = focus_value(res, r, FOCUS_L_PROVIDER);
		const char *model = focus_value(res, r, FOCUS_L_MODEL);
		const char *modality = PQgetvalue(res, r, FOCUS_L_MODALITY);

		for (int c = 0; c < ncols; c++) {
			const char *v = NULL;

			buf_reset(&tmp);
			switch (focus_columns[c].src) {
			case FOCUS_COST: v = PQgetvalue(res, r, FOCUS_L_COST); break;
			case FOCUS_LIST_COST: v = PQgetvalue(res, r, FOCUS_L_LIST_COST); break;
			case FOCUS_ACCOUNT: v = account; break;
			case FOCUS_CURRENCY: v = "USD"; break;
			case FOCUS_BILLING_END: v = bend; break;
			case FOCUS_BILLING_START: v = bstart; break;
			case FOCUS_CATEGORY: v = "Usage"; break;
			case FOCUS_CLASS: v = PQgetvalue(res, r, FOCUS_L_CLASS); break;
			case FOCUS_DESCRIPTION:
				buf_printf(&tmp, "%s%s: %s via %s", modality,
					   PQgetvalue(res, r, FOCUS_L_CLASS)[0] ? " late usage"
										: " usage",
					   model ? model : "unknown model",
					   provider ? provider : "unknown provider");
				buf_putc(&tmp, '\0');
				v = tmp.data;
				break;
			case FOCUS_CHARGE_END: v = PQgetvalue(res, r, FOCUS_L_END); break;
			case FOCUS_CHARGE_START: v = PQgetvalue(res, r, FOCUS_L_START); break;
			case FOCUS_QUANTITY: v = PQgetvalue(res, r, FOCUS_L_QUANTITY); break;
			case FOCUS_UNIT: v = focus_unit(modality); break;
			case FOCUS_PROVIDER: v = provider ? provider : "unknown"; break;
			case FOCUS_AGENT: v = focus_value(res, r, FOCUS_L_AGENT); break;
			case FOCUS_SERVICE_CATEGORY: v = "AI and Machine Learning"; break;
			case FOCUS_MODEL: v = model; break;
			case FOCUS_TENANT: v = focus_value(res, r, FOCUS_L_TENANT); break;
			case FOCUS_TAGS:
				buf_puts(&tmp, "{\"vg/project\":");
				row_json_string(&tmp, PQgetvalue(res, r, FOCUS_L_PROJECT));
				buf_puts(&tmp, "}");
				buf_putc(&tmp, '\0');
				v = tmp.data;
				break;
			case FOCUS_REQUESTS: v = PQgetvalue(res, r, FOCUS_L_REQUESTS); break;
			case FOCUS_MODALITY: v = modality; break;
			case FOCUS_RATED: v = focus_value(res, r, FOCUS_L_RATED); break;
			}
			csv_field(out, v, focus_src_is_name(focus_columns[c].src));
			buf_puts(out, c + 1 < ncols ? "," : "\r\n");
		}
	}
	if (tmp.over)
		out->over = true;
	buf_release(&tmp);
}

/* Sets *dst to a copy of v ("0" for NULL); false when out of memory. */
static bool focus_copy(char **dst, const char *v)
{
	*dst = strdup(v ? v : "0");
	return *dst != NULL;
}

/* billed_cost = usage + corrections, summed by PostgreSQL. */
static bool focus_sum(PGconn *conn, struct focus_result *out, char *err, size_t errlen)
{
	const char *params[2] = { out->usage_cost, out->correction_cost };
	PGresult *res = PQexecParams(conn, "SELECT $1::numeric + $2::numeric", 2, NULL, params,
				     NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		db_result_error(conn, res, err, errlen);
	else
		ok = focus_copy(&out->billed_cost, PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

/* /v1/rollups' total cost for the month, under q's filters. */
static int focus_rollup_total(PGconn *conn, const struct focus_params *p, char **total, char *err,
			      size_t errlen)
{
	struct rollup_query rq;
	PGresult *res;
	int status;

	memset(&rq, 0, sizeof(rq));
	rq.kind = ROLLUP_KIND_ROLLUPS;
	rq.granularity = ROLLUP_TOTAL;
	rq.has_from = rq.has_to = true;
	rq.from_us = p->month_us;
	rq.to_us = focus_next_month(p->month_us);
	memcpy(rq.filters, p->q->filters, sizeof(rq.filters)); /* borrowed */
	if (!(res = rollup_fetch(conn, &rq, &status, NULL, err, errlen)))
		return status;
	status = focus_copy(total, PQgetvalue(res, PQntuples(res) - 1, ROLLUP_COL0_GROUPS + 3))
			 ? 200
			 : 503;
	PQclear(res);
	return status;
}

/* A closed month's whole-export manifest as stored at its close: 200, or 404
 * when there is none (then the lines are rendered). */
static int focus_stored_manifest(PGconn *conn, const struct focus_params *p,
				 struct focus_result *out, char *err, size_t errlen)
{
	char d[40];
	const char *params[1] = { d };
	PGresult *res;
	int status = 404;

	focus_period_name(p->month_us, d, sizeof(d));
	strcat(d, "-01");
	res = PQexecParams(
		conn,
		"SELECT csv_sha256, csv_rows, billed_cost, usage_cost, correction_cost"
		" FROM billing_periods WHERE period = $1::date AND csv_sha256 IS NOT NULL",
		1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		status = db_fault_status(db_classify(conn, res));
	} else if (PQntuples(res) == 1) {
		snprintf(out->sha256, sizeof(out->sha256), "%s", PQgetvalue(res, 0, 0));
		out->rows = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		status = focus_copy(&out->billed_cost, PQgetvalue(res, 0, 2)) &&
					 focus_copy(&out->usage_cost, PQgetvalue(res, 0, 3)) &&
					 focus_copy(&out->correction_cost, PQgetvalue(res, 0, 4)) &&
					 focus_copy(&out->rollup_cost_usd, PQgetvalue(res, 0, 3))
				 ? 200
				 : 503;
		out->ties_out = true; /* its lines tied out at the close (usage_cost) */
	}
	PQclear(res);
	return status;
}

/* s's text behind "DECLARE focus_lines ... FOR ": the export is read from a
 * cursor, a piece at a time. */
static bool focus_sql_cursor(struct rollup_sql *s)
{
	struct buf t;

	buf_init(&t, 0);
	buf_puts(&t, "DECLARE focus_lines NO SCROLL CURSOR FOR ");
	buf_append(&t, s->text.data, s->text.len);
	buf_release(&s->text);
	s->text = t;
	return !t.over;
}

/* The statement of the export's lines, as a cursor: the frozen lines of a
 * closed month, else the month as it would be billed now. */
static bool focus_sql_export(const struct focus_params *p, bool closed, long long cfrom,
			     struct rollup_sql *s)
{
	bool built;

	memset(s, 0, sizeof(*s));
	buf_init(&s->text, 0);
	if (closed) {
		char d[40];

		focus_period_name(p->month_us, d, sizeof(d));
		strcat(d, "-01");
		built = buf_puts(&s->text, "WITH lines AS (SELECT * FROM billing_period_lines"
					   " WHERE billing_period = ") &&
			focus_sql_param(s, d, "date") && focus_sql_filters(s, p->q) &&
			buf_putc(&s->text, ')');
	} else {
		buf_release(&s->text);
		built = focus_sql_lines(p, cfrom, s);
	}
	return built && focus_sql_select(s, "lines") && !s->text.over && focus_sql_cursor(s);
}

/* The CSV from the open cursor, FETCH by FETCH: each piece hashed, counted
 * and handed to the sink, so no more than one piece is ever held. Sets the
 * usage and correction sums (every line carries them). */
static int focus_stream(PGconn *conn, const struct focus_params *p, const char *account, int ncols,
			struct focus_result *out, char *err, size_t errlen)
{
	int rows = p->fetch_rows > 0 ? p->fetch_rows : FOCUS_FETCH_ROWS_DEFAULT, n, status = 200;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char fetch[64];
	struct buf piece;
	bool first = true;

	buf_init(&piece, 0);
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		snprintf(err, errlen, "out of memory hashing the export");
		return 503;
	}
	snprintf(fetch, sizeof(fetch), "FETCH %d FROM focus_lines", rows);
	focus_render_header(ncols, &piece);
	do {
		PGresult *res = PQexec(conn, fetch);

		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			db_result_error(conn, res, err, errlen);
			status = db_fault_status(db_classify(conn, res));
			PQclear(res);
			break;
		}
		n = PQntuples(res);
		if (first && (!focus_copy(&out->usage_cost,
					  n ? focus_value(res, 0, FOCUS_L_USAGE_SUM) : NULL) ||
			      !focus_copy(&out->correction_cost,
					  n ? focus_value(res, 0, FOCUS_L_CORRECTION_SUM) : NULL)))
			piece.over = true;
		first = false;
		focus_render(p, account, ncols, res, &piece);
		PQclear(res);
		if (piece.over) {
			snprintf(err, errlen, "out of memory rendering the export");
			status = 503;
			break;
		}
		out->rows += n;
		if (EVP_DigestUpdate(ctx, piece.data ? piece.data : "", piece.len) != 1) {
			snprintf(err, errlen, "hashing the export failed");
			status = 500;
			break;
		}
		if (p->sink && piece.len && !p->sink->write(p->sink->arg, piece.data, piece.len)) {
			snprintf(err, errlen, "the export's receiver stopped taking it");
			status = FOCUS_STOPPED;
			break;
		}
		buf_reset(&piece);
	} while (n == rows);
	if (status == 200 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1) {
		for (unsigned int i = 0; i < mdlen && i < 32; i++)
			snprintf(out->sha256 + 2 * i, 3, "%02x", md[i]);
	} else if (status == 200) {
		snprintf(err, errlen, "hashing the export failed");
		status = 500;
	}
	EVP_MD_CTX_free(ctx);
	buf_release(&piece);
	return status;
}

int focus_export_tx(PGconn *conn, const struct focus_params *p, struct focus_result *out, char *err,
		    size_t errlen)
{
	struct rollup_sql s;
	char account[256];
	long long cfrom;
	PGresult *res;
	int status = 503;
	bool rated;

	memset(out, 0, sizeof(*out));
	if (!focus_closed_run(conn, p->month_us, &cfrom, &out->closed, out->closed_at, account,
			      &rated, err, errlen))
		return 503;
	if (out->closed && p->manifest_only && !p->q->filters[ROLLUP_COL_TENANT].n &&
	    !p->q->filters[ROLLUP_COL_PROJECT].n &&
	    (status = focus_stored_manifest(conn, p, out, err, errlen)) != 404)
		return status;
	if (!focus_sql_export(p, out->closed, cfrom, &s)) {
		snprintf(err, errlen, "out of memory");
		rollup_sql_free(&s);
		return 503;
	}
	res = db_query(conn, s.text.data, s.nparams, (const char *const *)s.params, &status, err,
		       errlen);
	rollup_sql_free(&s);
	if (!res)
		return status;
	PQclear(res);
	/* A closed month renders the columns it was closed with. */
	status = focus_stream(conn, p, out->closed ? account : p->account_id,
			      out->closed && !rated ? FOCUS_NCOLUMNS - 1 : FOCUS_NCOLUMNS, out, err,
			      errlen);
	if (status != 200)
		return status;
	res = PQexec(conn, "CLOSE focus_lines");
	PQclear(res);
	if (!focus_sum(conn, out, err, errlen))
		return 500;
	/* A closed month's rollup total is the one its lines tied out to at the close. */
	if (out->closed)
		status = focus_copy(&out->rollup_cost_usd, out->usage_cost) ? 200 : 503;
	else
		status = focus_rollup_total(conn, p, &out->rollup_cost_usd, err, errlen);
	if (status == 200)
		out->ties_out = strcmp(out->usage_cost, out->rollup_cost_usd) == 0;
	return status;
}

int focus_export(PGconn *conn, const struct focus_params *p, struct focus_result *out, char *err,
		 size_t errlen)
{
	PGresult *res;
	int status;

	/* One snapshot: the lines, the closed months and the rollup total agree. */
	res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		memset(out, 0, sizeof(*out));
		db_result_error(conn, res, err, errlen);
		status = db_fault_status(db_classify(conn, res));
		PQclear(res);
		return status;
	}
	PQclear(res);
	status = focus_export_tx(conn, p, out, err, errlen);
	PQclear(PQexec(conn, status == 200 ? "COMMIT" : "ROLLBACK"));
	return status;
}

void focus_manifest_render(const struct focus_params *p, const struct focus_result *r,
			   long long now_us, struct buf *out)
{
	char period[16], t[40];

	focus_period_name(p->month_us, period, sizeof(period));
	if (r->closed)
		snprintf(t, sizeof(t), "%s", r->closed_at);
	else
		timefmt_format(now_us, t, sizeof(t));
	buf_printf(out,
		   "{\"billing_period\":\"%s\",\"focus_version\":\"1.2\",\"rows\":%lld,"
		   "\"sha256\":\"",
		   period, r->rows);
	buf_puts(out, r->sha256);
	buf_puts(out, "\",\"billed_cost\":");
	row_json_string(out, r->billed_cost);
	buf_puts(out, ",\"rollup_cost_usd\":");
	row_json_string(out, r->rollup_cost_usd);
	buf_printf(out, ",\"ties_out\":%s,\"state\":\"%s\",\"generated_at\":\"%s\",",
		   r->ties_out ? "true" : "false", r->closed ? "closed" : "open", t);
	buf_puts(out, "\"x_usage_cost\":");
	row_json_string(out, r->usage_cost);
	buf_puts(out, ",\"x_correction_cost\":");
	row_json_string(out, r->correction_cost);
	buf_puts(out, "}");
}
