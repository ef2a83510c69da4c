/* One ingest transaction:
 *   BEGIN; COPY batch -> temp staging table; [COPY rejects -> ingest_rejects];
 *   one statement: claim ids in cost_row_ids (sorted, ON CONFLICT DO NOTHING
 *   RETURNING id), insert only the claimed rows into cost_rows, and upsert the
 *   hourly rollup from those inserted rows (pre-aggregated, in key order);
 *   COMMIT.
 * Sorting both the id claims and the rollup keys means concurrent batches lock
 * in the same order and cannot deadlock; if PostgreSQL still reports a
 * deadlock or serialization failure, the whole transaction is retried. */
#include "ingest_store.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "db.h"
#include "ingest_decode.h"
#include "log.h"
#include "metrics.h"
#include "num.h"
#include "pool.h"
#include "row.h"

#define STORE_RETRIES 3

static const char stage_sql[] =
	"SET TimeZone = 'UTC';"
	"CREATE TEMP TABLE IF NOT EXISTS vgc_stage ("
	" id text, ts timestamptz, modality text, model_id text, provider text, project text,"
	" input_units numeric, output_units numeric, cached_input_units numeric,"
	" cost_usd numeric, rated_price_usd numeric, pricing_source text, rate_rule text,"
	" ttfb_ms float8, total_latency_ms float8, status text, fallback_from text,"
	" error_message text, metadata jsonb, session_id text, agent_id text, tenant_id text,"
	" revision text, turn_index integer) ON COMMIT DELETE ROWS";

static const char insert_sql[] =
	"WITH claimed AS ("
	"  INSERT INTO cost_row_ids (id, ts)"
	"  SELECT id, ts FROM vgc_stage ORDER BY id"
	"  ON CONFLICT (id) DO NOTHING RETURNING id"
	"), ins AS ("
	"  INSERT INTO cost_rows (id, ts, modality, model_id, provider, project, input_units,"
	"   output_units, cached_input_units, cost_usd, rated_price_usd, pricing_source, rate_rule,"
	"   ttfb_ms, total_latency_ms, status, fallback_from, error_message, metadata, session_id,"
	"   agent_id, tenant_id, revision, turn_index, key_id)"
	"  SELECT s.id, s.ts, s.modality, s.model_id, s.provider, s.project, s.input_units,"
	"   s.output_units, s.cached_input_units, s.cost_usd, s.rated_price_usd, s.pricing_source,"
	"   s.rate_rule, s.ttfb_ms, s.total_latency_ms, s.status, s.fallback_from, s.error_message,"
	"   s.metadata, s.session_id, s.agent_id, s.tenant_id, s.revision, s.turn_index, $1::bigint"
	"  FROM vgc_stage s JOIN claimed c ON c.id = s.id"
	"  RETURNING ts, project, agent_id, tenant_id, modality, provider, model_id, status,"
	"   cost_usd, rated_price_usd, input_units, output_units, cached_input_units"
	"), agg AS ("
	"  INSERT INTO cost_rollup_hourly AS r (hour, project, agent_id, tenant_id, modality,"
	"   provider, model_id, requests, errors, fallbacks, cost_usd, rated_price_usd,"
	"   input_units, output_units, cached_input_units)"
	"  SELECT date_trunc('hour', ts), project, agent_id, tenant_id, modality, provider,"
	"   model_id, count(*), count(*) FILTER (WHERE status = 'error'),"
	"   count(*) FILTER (WHERE status = 'fallback'), sum(cost_usd), sum(rated_price_usd),"
	"   sum(input_units), sum(output_units), sum(cached_input_units)"
	"  FROM ins GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7"
	"  ON CONFLICT (hour, project, agent_id, tenant_id, modality, provider, model_id)"
	"  DO UPDATE SET requests = r.requests + excluded.requests,"
	"   errors = r.errors + excluded.errors, fallbacks = r.fallbacks + excluded.fallbacks,"
	"   cost_usd = r.cost_usd + excluded.cost_usd,"
	"   rated_price_usd = r.rated_price_usd + excluded.rated_price_usd,"
	"   input_units = r.input_units + excluded.input_units,"
	"   output_units = r.output_units + excluded.output_units,"
	"   cached_input_units = r.cached_input_units + excluded.cached_input_units"
	"  RETURNING 1"
	") SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM agg)";

/* ---- COPY text encoding ------------------------------------------------------ */

static void copy_text(struct buf *out, const char *s)
{
	if (!s) {
		buf_append(out, "\\N", 2);
		return;
	}
	for (;;) {
		size_t plain = strcspn(s, "\\\t\n\r");

		buf_append(out, s, plain);
		s += plain;
		switch (*s) {
		case '\0': return;
		case '\\': buf_append(out, "\\\\", 2); break;
		case '\t': buf_append(out, "\\t", 2); break;
		case '\n': buf_append(out, "\\n", 2); break;
		default: buf_append(out, "\\r", 2); break;
		}
		s++;
	}
}

static void copy_number(struct buf *out, double v)
{
	char num[40];

	if (isnan(v)) {
		buf_append(out, "\\N", 2);
		return;
	}
	buf_append(out, num, num_format(v, num, sizeof(num)));
}

/* Epoch seconds -> "YYYY-MM-DD HH:MM:SS.ffffff+00", rounded to microseconds. */
static void copy_timestamp(struct buf *out, double epoch)
{
	long long us = llround(epoch * 1e6);
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;
	char ts[48];

	gmtime_r(&secs, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1000000);
	buf_puts(out, ts);
}

static void copy_row(struct buf *out, const struct row *r)
{
	copy_text(out, r->id);
	buf_putc(out, '\t');
	copy_timestamp(out, r->timestamp);
	buf_putc(out, '\t');
	copy_text(out, row_modality_name(r->modality));
	buf_putc(out, '\t');
	copy_text(out, r->model_id);
	buf_putc(out, '\t');
	copy_text(out, r->provider);
	buf_putc(out, '\t');
	copy_text(out, r->project);
	buf_putc(out, '\t');
	copy_number(out, r->input_units);
	buf_putc(out, '\t');
	copy_number(out, r->output_units);
	buf_putc(out, '\t');
	copy_number(out, r->cached_input_units);
	buf_putc(out, '\t');
	copy_number(out, r->cost_usd);
	buf_putc(out, '\t');
	copy_number(out, r->rated_price_usd);
	buf_putc(out, '\t');
	copy_text(out, r->pricing_source);
	buf_putc(out, '\t');
	copy_text(out, r->rate_rule);
	buf_putc(out, '\t');
	copy_number(out, r->ttfb_ms);
	buf_putc(out, '\t');
	copy_number(out, r->total_latency_ms);
	buf_putc(out, '\t');
	copy_text(out, row_status_name(r->status));
	buf_putc(out, '\t');
	copy_text(out, r->fallback_from);
	buf_putc(out, '\t');
	copy_text(out, r->error_message);
	buf_putc(out, '\t');
	copy_text(out, r->metadata_json);
	buf_putc(out, '\t');
	copy_text(out, r->session_id);
	buf_putc(out, '\t');
	copy_text(out, r->agent_id);
	buf_putc(out, '\t');
	copy_text(out, r->tenant_id);
	buf_putc(out, '\t');
	copy_text(out, r->revision);
	buf_putc(out, '\t');
	if (r->turn_index < 0)
		buf_append(out, "\\N", 2);
	else
		buf_printf(out, "%lld", r->turn_index);
	buf_putc(out, '\n');
}

/* ---- transaction steps ------------------------------------------------------- */

/* Sends data through an open COPY ... FROM STDIN and finishes it. */
static bool store_copy(PGconn *conn, const char *sql, const struct buf *data, char *err,
		       size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	bool ok;

	if (PQresultStatus(res) != PGRES_COPY_IN) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	PQclear(res);
	ok = (data->len == 0 || PQputCopyData(conn, data->data, (int)data->len) == 1) &&
	     PQputCopyEnd(conn, NULL) == 1;
	res = PQgetResult(conn);
	ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		db_result_error(conn, res, err, errlen);
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return ok;
}

static bool store_prepare(struct pool_worker *w, PGconn *conn, char *err, size_t errlen)
{
	PGresult *res;

	if (w->stage_ready)
		return true;
	if (!db_exec(conn, stage_sql, err, errlen))
		return false;
	res = PQprepare(conn, "vgc_ingest", insert_sql, 1, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	PQclear(res);
	w->stage_ready = true;
	return true;
}

/* Makes sure every month the batch touches has a partition. Run outside the
 * batch transaction: creating a partition locks the parent table briefly. */
static bool store_partitions(struct pool_worker *w, PGconn *conn, const struct ingest_batch *b,
			     char *err, size_t errlen)
{
	for (int i = 0; i < b->nrows; i++) {
		time_t t = (time_t)floor(b->rows[i].timestamp);
		struct tm tm;
		int month, k;
		char ts[40];
		const char *params[1] = { ts };
		PGresult *res;

		gmtime_r(&t, &tm);
		month = (tm.tm_year + 1900) * 12 + tm.tm_mon;
		for (k = 0; k < w->known_months_count; k++)
			if (w->known_months[k] == month)
				break;
		if (k < w->known_months_count)
			continue;
		snprintf(ts, sizeof(ts), "%04d-%02d-01 00:00:00+00", tm.tm_year + 1900,
			 tm.tm_mon + 1);
		res = PQexecParams(conn, "SELECT vgc_ensure_partition($1::timestamptz)", 1, NULL,
				   params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			db_result_error(conn, res, err, errlen);
			PQclear(res);
			return false;
		}
		PQclear(res);
		if (w->known_months_count == (int)(sizeof(w->known_months) / sizeof(int)))
			w->known_months_count = 0;
		w->known_months[w->known_months_count++] = month;
	}
	return true;
}

/* SQLSTATE classes worth retrying: deadlock, serialization failure, and "no
 * partition for row" (retention dropped a month we had cached). */
static bool store_retryable(const PGresult *res, bool *partition_gone)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	*partition_gone = state && strcmp(state, "23514") == 0;
	return state &&
	       (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0 || *partition_gone);
}

static int store_once(struct pool_worker *w, PGconn *conn, const struct ingest_batch *b,
		      const struct buf *rows, const struct buf *rejects, const char *key_id,
		      struct ingest_result *res, bool *retry, char *err, size_t errlen)
{
	const char *params[1] = { key_id };
	PGresult *r;
	bool gone = false;

	*retry = false;
	if (!store_partitions(w, conn, b, err, errlen))
		return 503;
	if (!db_exec(conn, "BEGIN", err, errlen))
		return 503;
	if (rejects->len &&
	    !store_copy(conn, "COPY ingest_rejects (key_id, row_index, reason, raw) FROM STDIN",
			rejects, err, errlen))
		goto fail;
	if (b->nrows) {
		if (!store_copy(conn, "COPY vgc_stage FROM STDIN", rows, err, errlen))
			goto fail;
		r = PQexecPrepared(conn, "vgc_ingest", 1, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			db_result_error(conn, r, err, errlen);
			*retry = store_retryable(r, &gone);
			if (gone)
				w->known_months_count = 0;
			PQclear(r);
			goto fail;
		}
		res->accepted = atoi(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	res->duplicates = b->duplicates + (b->nrows - res->accepted);
	if (!db_exec(conn, "COMMIT", err, errlen)) {
		/* The outcome is unknown: answer 503 so the client retries, and
		 * let dedup make that retry harmless. */
		return 503;
	}
	return 200;
fail:
	db_rollback(conn);
	return PQstatus(conn) == CONNECTION_OK ? 500 : 503;
}

int ingest_store(struct pool_worker *w, const struct ingest_batch *b, long long key_id,
		 struct ingest_result *res, char *err, size_t errlen)
{
	struct buf rows, rejects;
	char key[24];
	int status = 503;

	memset(res, 0, sizeof(*res));
	buf_init(&rows, 0);
	buf_init(&rejects, 0);
	snprintf(key, sizeof(key), "%lld", key_id);
	for (int i = 0; i < b->nrows; i++)
		copy_row(&rows, &b->rows[i]);
	for (int i = 0; i < b->nrejects; i++) {
		buf_printf(&rejects, "%s\t%d\t", key, b->rejects[i].index);
		copy_text(&rejects, b->rejects[i].reason);
		buf_putc(&rejects, '\t');
		copy_text(&rejects, b->rejects[i].raw);
		buf_putc(&rejects, '\n');
	}
	if (rows.over || rejects.over) {
		snprintf(err, errlen, "out of memory encoding the batch");
		goto out;
	}
	for (int attempt = 0; attempt < STORE_RETRIES; attempt++) {
		PGconn *conn = pool_worker_conn(w, err, errlen);
		bool retry;

		if (!conn) {
			status = 503;
			break;
		}
		if (!store_prepare(w, conn, err, errlen)) {
			metrics_db_error();
			pool_worker_reset(w);
			status = 503;
			continue;
		}
		status = store_once(w, conn, b, &rows, &rejects, key, res, &retry, err, errlen);
		if (status == 200)
			break;
		metrics_db_error();
		if (PQstatus(conn) != CONNECTION_OK) {
			pool_worker_reset(w);
			break; /* a COMMIT may have been lost: let the client decide */
		}
		if (!retry)
			break;
		log_debug("ingest transaction retried: %s", err);
	}
out:
	buf_release(&rows);
	buf_release(&rejects);
	return status;
}

int ingest_store_turns(struct pool_worker *w, const cJSON *root, const bool *nul, long long key_id,
		       const char *project, const char *tenant, int *stored, char *err,
		       size_t errlen)
{
	struct buf data;
	const cJSON *item;
	char key[24];
	PGconn *conn;
	int status = 200, i = -1;

	*stored = 0;
	buf_init(&data, 0);
	snprintf(key, sizeof(key), "%lld", key_id);
	cJSON_ArrayForEach(item, root)
	{
		char *json, *clean;

		i++;
		if (ingest_turn_error(item, nul, i))
			continue;
		json = cJSON_PrintUnformatted(item);
		clean = json ? ingest_utf8_sanitize(json) : NULL;
		free(json);
		if (!clean) {
			snprintf(err, errlen, "out of memory encoding turns");
			buf_release(&data);
			return 503;
		}
		buf_printf(&data, "%s\t", key);
		copy_text(&data, project);
		buf_putc(&data, '\t');
		copy_text(&data, tenant);
		buf_putc(&data, '\t');
		copy_text(&data, clean);
		buf_putc(&data, '\n');
		free(clean);
		(*stored)++;
	}
	if (*stored == 0)
		goto out;
	conn = pool_worker_conn(w, err, errlen);
	if (!conn) {
		status = 503;
		goto out;
	}
	if (!store_copy(conn, "COPY ingest_turns (key_id, project, tenant_id, payload) FROM STDIN",
			&data, err, errlen)) {
		metrics_db_error();
		status = PQstatus(conn) == CONNECTION_OK ? 500 : 503;
		if (status == 503)
			pool_worker_reset(w);
	}
out:
	buf_release(&data);
	return status;
}
