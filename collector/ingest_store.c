/* One ingest transaction:
 *   BEGIN, a staging table that lives only as long as the transaction, and
 *   the retention horizon read FOR SHARE (one round trip); COPY the rows at
 *   or after the horizon -> the staging table; one statement: claim ids in
 *   cost_row_ids (sorted byte-wise, the index's order,
 *   ON CONFLICT DO NOTHING RETURNING id), insert only the claimed rows into
 *   cost_rows, each with its book cost (a join to the price book's rates in
 *   effect at its time, price_book.c) and its rated price by the rate card
 *   (rate_card.c, overwriting the worker's), and append the inserted rows'
 *   sums per (hour, group) to vgc_rollup_deltas, which the summariser folds
 *   into the rollup tables (rollup_fold.c); COPY rejects -> ingest_rejects;
 *   COMMIT.
 *   The statement is first tried under a savepoint in a form that assumes
 *   every id is new (a plain claim); a stored id fails it with
 *   unique_violation and the ON CONFLICT form runs instead (store_insert).
 * Sorting the id claims means concurrent batches lock in the same order and
 * cannot deadlock (the deltas take no lock another batch waits on); if PostgreSQL still reports a
 * deadlock or serialization failure, the whole transaction is retried. If the
 * database refuses the data itself (SQLSTATE class 22, 23, 54), the batch is
 * run again one row per savepoint, so each row it refuses is rejected on its
 * own and the others are stored. Every failure is classified by db_classify:
 * a condition that can pass is 503, never a rejection.
 *
 * No session state outlives a transaction (the collector must work through
 * pgbouncer in pool_mode = transaction): the staging table is created ON
 * COMMIT DROP inside each transaction, statements are unnamed (PQexecParams),
 * and the time zone the rollup's hours are cut in is SET LOCAL. */
#include "ingest_store.h"

#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "db.h"
#include "ingest_json.h"
#include "ingest_turns.h"
#include "log.h"
#include "metrics.h"
#include "num.h"
#include "pool.h"
#include "price_book.h"
#include "rate_card.h"
#include "rollup_shape.h"
#include "row.h"
#include "row_fields.h"

#define STORE_RETRIES 3

/* Why a statement failed: db_classify's verdict, the SQLSTATE, and whether
 * running the transaction again can help (deadlock, serialization, or a
 * partition retention dropped under a cached month). */
struct store_fail {
	enum db_fault fault;
	char state[6];
	bool retry;
	bool partition_gone;
};

/* The per-connection cache, kept behind the worker's slot and owned here:
 * the months known to have a cost_rows partition (database objects, so this
 * holds through a transaction pooler too). serial is the worker's
 * conn_serial it describes; a new connection starts it afresh. */
struct store_cache {
	unsigned serial;
	int known_months[64]; /* months (y*12+m) with a cost_rows partition */
	int known_months_count;
};

/* The SQL naming the row's columns, generated once from row_fields:
 * begin_sql opens the transaction, makes the staging table and reads the
 * retention horizon; fresh_sql and insert_sql are the one statement above,
 * tried in that order (store_insert). */
static char *begin_sql, *fresh_sql, *insert_sql;
static pthread_once_t store_sql_once = PTHREAD_ONCE_INIT;

/* The column list of row_fields, each prefixed with prefix, or with its SQL
 * type after it (typed). */
static void store_columns(struct buf *out, const char *prefix, bool typed)
{
	for (int i = 0; i < ROW_NFIELDS; i++)
		buf_printf(out, "%s%s%s%s%s", i ? ", " : "", prefix, row_fields[i].column,
			   typed ? " " : "", typed ? row_fields[i].sql_type : "");
}

/* The rest of ins's RETURNING list (the columns the rollup reads, after
 * ts) and the agg step: the batch's sums per (hour, group) appended to
 * vgc_rollup_deltas, which the summariser folds into the rollup tables
 * (rollup_fold.c, schema/0022_rollup_deltas.sql). A plain insert into a heap
 * with no index: no conflict check, and no lock any other batch waits on.
 * Built from the rollup shape. */
static void store_rollup_sql(struct buf *sql)
{
	for (int i = 0; i < ROLLUP_NKEYS; i++)
		buf_printf(sql, ", %s", rollup_keys[i]);
	for (int i = 0; i < ROLLUP_NMEASURES; i++) {
		const char *uses = rollup_measures[i].uses;
		int j;

		for (j = 0; j < i && uses; j++)
			if (rollup_measures[j].uses && strcmp(rollup_measures[j].uses, uses) == 0)
				break;
		if (uses && j == i)
			buf_printf(sql, ", %s", uses);
	}
	buf_puts(sql, "), agg AS (  INSERT INTO vgc_rollup_deltas (hour");
	for (int i = 0; i < ROLLUP_NKEYS; i++)
		buf_printf(sql, ", %s", rollup_keys[i]);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			buf_printf(sql, ", %s", rollup_measures[i].name);
	buf_puts(sql, ")  SELECT date_trunc('hour', ts)");
	for (int i = 0; i < ROLLUP_NKEYS; i++)
		buf_printf(sql, ", %s", rollup_keys[i]);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			buf_printf(sql, ", %s", rollup_measures[i].from_rows);
	buf_puts(sql, "  FROM ins GROUP BY 1");
	for (int i = 0; i < ROLLUP_NKEYS; i++)
		buf_printf(sql, ", %d", i + 2);
	buf_puts(sql, "  RETURNING 1");
}

/* One insert statement (see the top of the file): claim ends the id claim
 * (ON CONFLICT or not, and what it returns); source is where the rows for
 * cost_rows come from, after "FROM <the staged rows priced by the book and
 * rated by the card> s".
 * NULL on out of memory. */
static char *store_insert_sql(const char *claim, const char *source)
{
	struct buf sql;
	char *out;

	buf_init(&sql, 0);
	buf_puts(&sql, "WITH claimed AS ("
		       "  INSERT INTO cost_row_ids (id, ts)"
		       "  SELECT id, ts FROM vgc_stage ORDER BY id COLLATE \"C\"");
	buf_puts(&sql, claim);
	buf_puts(&sql, "), ");
	rate_card_pick_sql(&sql);
	buf_puts(&sql, ", ins AS (  INSERT INTO cost_rows (");
	store_columns(&sql, "", false);
	buf_puts(&sql, ", key_id) SELECT ");
	for (int i = 0; i < ROW_NFIELDS; i++) {
		if (i)
			buf_puts(&sql, ", ");
		if (rate_card_sets(row_fields[i].column))
			rate_card_field_sql(&sql, row_fields[i].column); /* never the worker's */
		else if (row_fields[i].kind == ROW_KIND_BOOK)
			price_book_field_sql(&sql, row_fields[i].column); /* never the worker's */
		else if (strcmp(row_fields[i].column, "cost_usd") == 0 ||
			 strcmp(row_fields[i].column, "pricing_source") == 0)
			price_book_unpriced_sql(&sql, row_fields[i].column);
		else
			buf_printf(&sql, "s.%s", row_fields[i].column);
	}
	buf_puts(&sql, ", $1::bigint FROM ");
	rate_card_source_sql(&sql);
	buf_puts(&sql, source);
	buf_puts(&sql, "  RETURNING ts");
	store_rollup_sql(&sql);
	/* ins returns book_cost_usd: the rollup's priced_rows measure reads it. */
	buf_puts(&sql, ") SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM agg),"
		       " (SELECT count(*) FROM ins WHERE book_cost_usd IS NULL)");
	out = sql.over ? NULL : buf_steal(&sql, NULL);
	buf_release(&sql);
	return out;
}

static void store_sql_build(void)
{
	struct buf stage;

	buf_init(&stage, 0);
	buf_puts(&stage, "BEGIN; SET LOCAL TimeZone = 'UTC'; CREATE TEMP TABLE vgc_stage (");
	store_columns(&stage, "", true);
	buf_puts(&stage, ") ON COMMIT DROP;"
			 " SELECT (extract(epoch FROM dropped_before) * 1000000)::bigint,"
			 " to_char(dropped_before AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
			 " FROM vgc_retention FOR SHARE");
	/* NULL on out of memory: store_begin reports it. */
	begin_sql = stage.over ? NULL : buf_steal(&stage, NULL);
	buf_release(&stage);

	/* The two statements differ only in how ids are claimed: fresh_sql
	 * claims every staged id with a plain INSERT, which fails on the first
	 * id already stored (a resend); insert_sql skips those with
	 * ON CONFLICT and stores only the rows whose ids it claimed. In both,
	 * every claim is made, in id order, before the first row goes into
	 * cost_rows (in fresh_sql through the InitPlan over claimed), so
	 * concurrent batches meet in the same order and cannot deadlock. */
	fresh_sql = store_insert_sql(" RETURNING 1", " WHERE (SELECT count(*) FROM claimed) > 0");
	insert_sql = store_insert_sql(" ON CONFLICT (id) DO NOTHING RETURNING id",
				      " JOIN claimed c ON c.id = s.id COLLATE \"C\"");
}

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

/* The one rounding rule for a row's time: epoch seconds to the nearest whole
 * microsecond. The partition month and the COPY text both come from it. */
static long long store_micros(double epoch)
{
	return llround(epoch * 1e6);
}

/* Microseconds since the epoch (>= 0) -> "YYYY-MM-DD HH:MM:SS.ffffff+00". */
static void copy_timestamp(struct buf *out, long long us)
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;
	char ts[48];

	gmtime_r(&secs, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1000000);
	buf_puts(out, ts);
}

/* One row as a line of COPY text, its columns in row_fields order (the
 * staging table's). us is the row's time, rounded by store_micros. */
static void copy_row(struct buf *out, const struct row *r, long long us)
{
	for (int i = 0; i < ROW_NFIELDS; i++) {
		const struct row_field *f = &row_fields[i];
		const void *m = f->kind == ROW_KIND_BOOK ? NULL : ROW_FIELD_CPTR(r, f->offset);

		if (i)
			buf_putc(out, '\t');
		switch (f->kind) {
		case ROW_KIND_TEXT:
		case ROW_KIND_JSON: copy_text(out, *(const char *const *)m); break;
		case ROW_KIND_TIME: copy_timestamp(out, us); break;
		case ROW_KIND_MODALITY:
			copy_text(out, row_modality_name(*(const enum row_modality *)m));
			break;
		case ROW_KIND_STATUS:
			copy_text(out, row_status_name(*(const enum row_status *)m));
			break;
		case ROW_KIND_AMOUNT:
		case ROW_KIND_MEASURE: copy_number(out, *(const double *)m); break;
		case ROW_KIND_COUNT:
			if (*(const long long *)m < 0)
				buf_append(out, "\\N", 2);
			else
				buf_printf(out, "%lld", *(const long long *)m);
			break;
		case ROW_KIND_BOOK: buf_append(out, "\\N", 2); break; /* set by the insert */
		}
	}
	buf_putc(out, '\n');
}

/* ---- transaction steps ------------------------------------------------------- */

/* Records why a statement failed: err gets the database's own text (for the
 * log, never for the client), f its classification. */
static void store_failed(PGconn *conn, const PGresult *res, struct store_fail *f, char *err,
			 size_t errlen)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	db_result_error(conn, res, err, errlen);
	f->fault = db_classify(conn, res);
	snprintf(f->state, sizeof(f->state), "%s", state ? state : "");
	/* "no partition of relation ... found for row" is 23514 without a
	 * constraint name; a CHECK constraint's violation names its constraint. */
	f->partition_gone = state && strcmp(state, "23514") == 0 &&
			    !PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
	f->retry =
		PQstatus(conn) == CONNECTION_OK && state &&
		(strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0 || f->partition_gone);
}

/* Runs commands that return no rows or rows we ignore, classifying a failure. */
static bool store_exec(PGconn *conn, const char *sql, struct store_fail *f, char *err,
		       size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = res && (PQresultStatus(res) == PGRES_COMMAND_OK ||
			  PQresultStatus(res) == PGRES_TUPLES_OK);

	if (!ok)
		store_failed(conn, res, f, err, errlen);
	PQclear(res);
	return ok;
}

/* Sends len bytes of data through COPY ... FROM STDIN and finishes it. */
static bool store_copy(PGconn *conn, const char *sql, const char *data, size_t len,
		       struct store_fail *f, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	bool ok;

	if (PQresultStatus(res) != PGRES_COPY_IN) {
		store_failed(conn, res, f, err, errlen);
		PQclear(res);
		return false;
	}
	PQclear(res);
	ok = (len == 0 || PQputCopyData(conn, data, (int)len) == 1) &&
	     PQputCopyEnd(conn, NULL) == 1;
	res = PQgetResult(conn);
	ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		store_failed(conn, res, f, err, errlen);
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return ok;
}

/* The worker's cache for its current connection, made on first use; NULL
 * when out of memory. */
static struct store_cache *store_cache_get(struct pool_worker *w)
{
	struct store_cache *c = w->slot;

	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return NULL;
		w->slot = c;
		w->slot_free = free;
		c->serial = w->conn_serial;
	}
	if (c->serial != w->conn_serial) {
		c->serial = w->conn_serial;
		c->known_months_count = 0;
	}
	return c;
}

/* Makes sure every month the batch touches has a partition, the month taken
 * from the same rounded microseconds as the COPY text (us). Run outside the
 * batch transaction: creating a partition locks the parent table briefly.
 * vgc_ensure_partition creates nothing for a month retention dropped; the
 * transaction refuses those rows by the horizon. */
static bool store_partitions(struct store_cache *c, PGconn *conn, const struct ingest_batch *b,
			     const long long *us, struct store_fail *f, char *err, size_t errlen)
{
	for (int i = 0; i < b->nrows; i++) {
		time_t t = (time_t)(us[i] / 1000000);
		struct tm tm;
		int month, k;
		char ts[40];
		const char *params[1] = { ts };
		PGresult *res;
		bool made;

		gmtime_r(&t, &tm);
		month = (tm.tm_year + 1900) * 12 + tm.tm_mon;
		for (k = 0; k < c->known_months_count; k++)
			if (c->known_months[k] == month)
				break;
		if (k < c->known_months_count)
			continue;
		snprintf(ts, sizeof(ts), "%04d-%02d-01 00:00:00+00", tm.tm_year + 1900,
			 tm.tm_mon + 1);
		res = PQexecParams(conn, "SELECT vgc_ensure_partition($1::timestamptz)", 1, NULL,
				   params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			store_failed(conn, res, f, err, errlen);
			PQclear(res);
			return false;
		}
		made = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
		PQclear(res);
		if (!made)
			continue;
		if (c->known_months_count == (int)(sizeof(c->known_months) / sizeof(int)))
			c->known_months_count = 0;
		c->known_months[c->known_months_count++] = month;
	}
	return true;
}

/* Opens the transaction with begin_sql, which ends by reading the retention
 * horizon FOR SHARE, so a retention pass cannot drop a month under this
 * transaction (it raises the horizon FOR UPDATE). *has is false while nothing
 * was dropped; day is the horizon as YYYY-MM-DD (UTC). */
static bool store_begin(PGconn *conn, bool *has, long long *us, char *day, size_t daylen,
			struct store_fail *f, char *err, size_t errlen)
{
	PGresult *res;

	pthread_once(&store_sql_once, store_sql_build);
	if (!begin_sql || !fresh_sql || !insert_sql) {
		f->fault = DB_FAULT_TRANSIENT;
		snprintf(err, errlen, "out of memory building the ingest SQL");
		return false;
	}
	res = PQexec(conn, begin_sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		store_failed(conn, res, f, err, errlen);
		PQclear(res);
		return false;
	}
	*has = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0);
	if (*has) {
		*us = atoll(PQgetvalue(res, 0, 0));
		snprintf(day, daylen, "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return true;
}

/* Runs one of the insert statements; counts gets the rows it stored and how
 * many of them the price book did not price. */
static bool store_run(PGconn *conn, const char *sql, const char *key, int counts[2],
		      struct store_fail *f, char *err, size_t errlen)
{
	const char *params[1] = { key };
	PGresult *r = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		store_failed(conn, r, f, err, errlen);
		PQclear(r);
		return false;
	}
	counts[0] = atoi(PQgetvalue(r, 0, 0));
	counts[1] = atoi(PQgetvalue(r, 0, 2));
	PQclear(r);
	return true;
}

/* Stages len bytes of COPY rows and stores the ones whose ids are new;
 * counts gets how many (the others were duplicates), and of them how many
 * are unpriced (store_run). With fresh, it first
 * assumes every id is new, as for almost every batch a fleet sends: a plain
 * claim skips ON CONFLICT's speculative insertion and the join back to the
 * claimed ids. The first id already stored (a resend, or an id twice in the
 * batch) fails it with unique_violation; its savepoint is rolled back and
 * insert_sql, which skips stored ids, runs instead. */
static bool store_insert(PGconn *conn, const char *rows, size_t len, const char *key, bool fresh,
			 int counts[2], struct store_fail *f, char *err, size_t errlen)
{
	if (!store_copy(conn, "COPY vgc_stage FROM STDIN", rows, len, f, err, errlen))
		return false;
	if (fresh) {
		if (!store_exec(conn, "SAVEPOINT vgc_fresh", f, err, errlen))
			return false;
		if (store_run(conn, fresh_sql, key, counts, f, err, errlen)) {
			metrics_ingest_claim(true);
			return true;
		}
		if (strcmp(f->state, "23505") != 0 ||
		    !store_exec(conn, "ROLLBACK TO SAVEPOINT vgc_fresh", f, err, errlen))
			return false;
		metrics_ingest_claim(false);
	}
	return store_run(conn, insert_sql, key, counts, f, err, errlen);
}

/* Our words for a row PostgreSQL refused, by SQLSTATE class. */
static const char *store_data_words(const char *state)
{
	if (strncmp(state, "22", 2) == 0)
		return "a value is out of range or malformed for its column";
	if (strncmp(state, "23", 2) == 0)
		return "it breaks a constraint of the schema";
	return "it is too large for the database to store";
}

/* Adds row i of b to res's rejects with reason; raw is the row as JSON. */
static bool store_reject(struct ingest_result *res, const struct ingest_batch *b, int i,
			 const char *reason)
{
	struct ingest_reject *r = &res->rejects[res->nrejects];
	struct buf raw;

	buf_init(&raw, 0);
	if (!row_to_json(&b->rows[i], &raw)) {
		buf_release(&raw);
		return false;
	}
	r->index = b->row_index[i];
	r->reason = strdup(reason);
	r->raw = buf_steal(&raw, NULL);
	if (!r->reason || !r->raw) {
		free(r->reason);
		free(r->raw);
		return false;
	}
	res->nrejects++;
	return true;
}

static void store_result_reset(struct ingest_result *res)
{
	for (int i = 0; i < res->nrejects; i++) {
		free(res->rejects[i].reason);
		free(res->rejects[i].raw);
	}
	res->nrejects = 0;
	res->accepted = 0;
	res->unpriced = 0;
	res->duplicates = 0;
}

/* Stores each staged row under its own savepoint: a row the database refuses
 * (a DATA fault) is rolled back alone and rejected in our words with its
 * SQLSTATE; any other failure ends the transaction. */
static bool store_rows_one_by_one(PGconn *conn, const struct ingest_batch *b,
				  const struct buf *rows, const size_t *starts, const int *which,
				  int n, const char *key, struct ingest_result *res,
				  struct store_fail *f, char *err, size_t errlen)
{
	for (int k = 0; k < n; k++) {
		int counts[2] = { 0, 0 };
		char why[256];

		if (!store_exec(conn, "SAVEPOINT vgc_row", f, err, errlen))
			return false;
		if (store_insert(conn, rows->data + starts[k], starts[k + 1] - starts[k], key,
				 false, counts, f, err, errlen)) {
			res->accepted += counts[0];
			res->unpriced += counts[1];
			if (!store_exec(conn, "DELETE FROM vgc_stage; RELEASE SAVEPOINT vgc_row", f,
					err, errlen))
				return false;
			continue;
		}
		if (f->fault != DB_FAULT_DATA || f->partition_gone)
			return false;
		log_warn("ingest: PostgreSQL refused row %d (SQLSTATE %s): %s",
			 b->row_index[which[k]], f->state, err);
		snprintf(why, sizeof(why), "row refused by the database (SQLSTATE %s): %s",
			 f->state, store_data_words(f->state));
		if (!store_exec(conn, "ROLLBACK TO SAVEPOINT vgc_row", f, err, errlen))
			return false;
		if (!store_reject(res, b, which[k], why)) {
			f->fault = DB_FAULT_TRANSIENT;
			snprintf(err, errlen, "out of memory recording a refused row");
			return false;
		}
	}
	return true;
}

/* One attempt at the batch's transaction (see the top of the file). With
 * per_row, rows are stored one per savepoint to isolate the ones PostgreSQL
 * refuses. rejects holds the decoder's rejects as COPY text. */
static bool store_txn(PGconn *conn, const struct ingest_batch *b, const long long *us,
		      const struct buf *rejects, const char *key, bool per_row,
		      struct ingest_result *res, struct store_fail *f, char *err, size_t errlen)
{
	struct buf rows, rej;
	size_t *starts = calloc((size_t)b->nrows + 1, sizeof(*starts));
	int *which = calloc((size_t)b->nrows + 1, sizeof(*which));
	long long horizon = 0;
	bool has = false, ok = false;
	char day[16] = "";
	int n = 0;

	store_result_reset(res);
	buf_init(&rows, 0);
	buf_init(&rej, 0);
	if (!starts || !which) {
		f->fault = DB_FAULT_TRANSIENT;
		snprintf(err, errlen, "out of memory encoding the batch");
		goto out;
	}
	if (!store_begin(conn, &has, &horizon, day, sizeof(day), f, err, errlen))
		goto fail;
	for (int i = 0; i < b->nrows; i++) {
		if (has && us[i] < horizon) {
			char why[160];

			snprintf(why, sizeof(why),
				 "row older than the retained window: months before %s were"
				 " dropped by retention",
				 day);
			if (!store_reject(res, b, i, why))
				goto oom;
			continue;
		}
		starts[n] = rows.len;
		which[n++] = i;
		copy_row(&rows, &b->rows[i], us[i]);
	}
	starts[n] = rows.len;
	buf_append(&rej, rejects->data ? rejects->data : "", rejects->len);
	if (rows.over)
		goto oom;
	if (!per_row) {
		int counts[2] = { 0, 0 };

		if (n &&
		    !store_insert(conn, rows.data, rows.len, key, true, counts, f, err, errlen))
			goto fail;
		res->accepted = counts[0];
		res->unpriced = counts[1];
	} else if (!store_rows_one_by_one(conn, b, &rows, starts, which, n, key, res, f, err,
					  errlen)) {
		goto fail;
	}
	for (int i = 0; i < res->nrejects; i++) {
		buf_printf(&rej, "%s\t%d\t", key, res->rejects[i].index);
		copy_text(&rej, res->rejects[i].reason);
		buf_putc(&rej, '\t');
		copy_text(&rej, res->rejects[i].raw);
		buf_putc(&rej, '\n');
	}
	if (rej.over)
		goto oom;
	if (rej.len &&
	    !store_copy(conn, "COPY ingest_rejects (key_id, row_index, reason, raw) FROM STDIN",
			rej.data, rej.len, f, err, errlen))
		goto fail;
	/* A failed COMMIT has ended the transaction (or lost the connection,
	 * when its outcome is unknown: transient, so the client retries and
	 * dedup makes the retry harmless). */
	ok = store_exec(conn, "COMMIT", f, err, errlen);
	goto out;
oom:
	f->fault = DB_FAULT_TRANSIENT;
	snprintf(err, errlen, "out of memory encoding the batch");
fail:
	db_rollback(conn);
out:
	free(starts);
	free(which);
	buf_release(&rows);
	buf_release(&rej);
	return ok;
}

int ingest_store(struct pool_worker *w, const struct ingest_batch *b, long long key_id,
		 struct ingest_result *res, char *err, size_t errlen)
{
	struct buf rejects;
	long long *us = NULL;
	char key[24];
	int status = 503;
	bool per_row = false;

	memset(res, 0, sizeof(*res));
	buf_init(&rejects, 0);
	snprintf(key, sizeof(key), "%lld", key_id);
	for (int i = 0; i < b->nrejects; i++) {
		buf_printf(&rejects, "%s\t%d\t", key, b->rejects[i].index);
		copy_text(&rejects, b->rejects[i].reason);
		buf_putc(&rejects, '\t');
		copy_text(&rejects, b->rejects[i].raw);
		buf_putc(&rejects, '\n');
	}
	us = calloc((size_t)b->nrows + 1, sizeof(*us));
	res->rejects = calloc((size_t)b->nrows + 1, sizeof(*res->rejects));
	if (rejects.over || !us || !res->rejects) {
		snprintf(err, errlen, "out of memory encoding the batch");
		goto out;
	}
	for (int i = 0; i < b->nrows; i++)
		us[i] = store_micros(b->rows[i].timestamp);
	/* One more attempt than retries: switching to row-by-row is not a retry. */
	for (int attempt = 0; attempt <= STORE_RETRIES; attempt++) {
		PGconn *conn = pool_worker_conn(w, err, errlen);
		struct store_fail f = { DB_FAULT_TRANSIENT, "", false, false };
		struct store_cache *c;

		if (!conn) {
			status = 503;
			break;
		}
		c = store_cache_get(w);
		if (!c) {
			snprintf(err, errlen, "out of memory for the ingest cache");
			status = 503;
			break;
		}
		if (store_partitions(c, conn, b, us, &f, err, errlen) &&
		    store_txn(conn, b, us, &rejects, key, per_row, res, &f, err, errlen)) {
			res->duplicates =
				b->duplicates + (b->nrows - res->nrejects - res->accepted);
			status = 200;
			break;
		}
		metrics_db_error();
		status = db_fault_status(f.fault);
		if (PQstatus(conn) != CONNECTION_OK) {
			pool_worker_reset(w);
			status = 503;
			break; /* a COMMIT may have been lost: let the client decide */
		}
		if (f.partition_gone)
			c->known_months_count = 0;
		if (f.fault == DB_FAULT_DATA && !f.partition_gone && !per_row) {
			log_info("ingest: PostgreSQL refused the batch's data (SQLSTATE %s);"
				 " storing it row by row to reject only the rows it refuses",
				 f.state);
			per_row = true;
			continue;
		}
		if (!f.retry)
			break;
		log_debug("ingest transaction retried: %s", err);
	}
out:
	free(us);
	buf_release(&rejects);
	return status;
}

void ingest_result_release(struct ingest_result *res)
{
	store_result_reset(res);
	free(res->rejects);
	res->rejects = NULL;
}

int ingest_store_turns(struct pool_worker *w, const cJSON *root, const bool *nul, long long key_id,
		       const char *project, const char *tenant, int *stored, char *err,
		       size_t errlen)
{
	struct buf data;
	const cJSON *item;
	char key[24];
	PGconn *conn;
	struct store_fail f = { DB_FAULT_TRANSIENT, "", false, false };
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
	if (data.over) {
		snprintf(err, errlen, "out of memory encoding turns");
		status = 503;
		goto out;
	}
	conn = pool_worker_conn(w, err, errlen);
	if (!conn) {
		status = 503;
		goto out;
	}
	if (!store_copy(conn, "COPY ingest_turns (key_id, project, tenant_id, payload) FROM STDIN",
			data.data, data.len, &f, err, errlen)) {
		metrics_db_error();
		status = db_fault_status(f.fault);
		if (PQstatus(conn) != CONNECTION_OK)
			pool_worker_reset(w);
	}
out:
	buf_release(&data);
	return status;
}
