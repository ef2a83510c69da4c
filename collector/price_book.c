/* The price book (see price_book.h and schema/0012_price_book.sql). A feed is
 * checked field by field and refused whole on the first bad value, named:
 * "rejected rather than guessed". Amounts stay decimal text end to end. */
#include "price_book.h"

#include <cJSON.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jsoncheck.h"
#include "row.h"
#include "timefmt.h"

#define PRICE_AMOUNT_MAX_CHARS 40
#define PRICE_NAME_MAX_CHARS 256

/* The meter/unit pairs the book can apply to a row. */
static const struct {
	const char *meter, *unit;
} price_pairs[] = {
	{ "audio_input", "minute" },   { "audio_input", "second" },	 { "text_input", "token" },
	{ "text_input", "character" }, { "cached_text_input", "token" }, { "text_output", "token" },
	{ "request", "request" },
};

#define PRICE_PAIRS_WORDS                                                                          \
	"audio_input per minute or second, text_input per token or character, "                    \
	"cached_text_input per token, text_output per token, request per request"

void price_import_init(struct price_import *imp)
{
	memset(imp, 0, sizeof(*imp));
	buf_init(&imp->canonical, 0);
	buf_init(&imp->rates, 0);
}

void price_import_release(struct price_import *imp)
{
	buf_release(&imp->canonical);
	buf_release(&imp->rates);
}

/* A date or RFC 3339 time -> RFC 3339 UTC text; false when it is neither. */
static bool price_time(const char *when, char *out, size_t outlen)
{
	long long us;
	bool date_only;

	if (!when || !timefmt_parse(when, &us, &date_only))
		return false;
	timefmt_format(us, out, outlen);
	return true;
}

bool price_import_effective(struct price_import *imp, const char *when, char *err, size_t errlen)
{
	if (!price_time(when, imp->effective, sizeof(imp->effective))) {
		snprintf(err, errlen, "effective_from \"%.64s\": expected YYYY-MM-DD or RFC 3339",
			 when ? when : "");
		return false;
	}
	return true;
}

/* A non-negative decimal: digits, optionally '.' and digits. */
static bool price_decimal(const char *s)
{
	size_t n = 0, digits = 0;
	bool dot = false;

	for (; s[n]; n++) {
		if (s[n] >= '0' && s[n] <= '9')
			digits++;
		else if (s[n] == '.' && !dot && digits)
			dot = true;
		else
			return false;
	}
	return digits && n <= PRICE_AMOUNT_MAX_CHARS && s[n - 1] != '.';
}

static int price_key_cmp(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* Appends v as canonical JSON: objects with their keys in byte order, no
 * white space, strings escaped one way. False on a duplicate key (named in
 * err) or out of memory. */
static bool price_canonical(struct buf *out, const cJSON *v, char *err, size_t errlen)
{
	const cJSON *c;
	char *num;
	int n = 0;

	if (cJSON_IsObject(v)) {
		const cJSON **keys;
		bool ok = true;

		cJSON_ArrayForEach(c, v) n++;
		keys = calloc((size_t)n + 1, sizeof(*keys));
		if (!keys) {
			snprintf(err, errlen, "out of memory");
			return false;
		}
		n = 0;
		cJSON_ArrayForEach(c, v) keys[n++] = c;
		qsort(keys, (size_t)n, sizeof(*keys), price_key_cmp);
		buf_putc(out, '{');
		for (int i = 0; ok && i < n; i++) {
			if (i && strcmp(keys[i - 1]->string, keys[i]->string) == 0) {
				snprintf(err, errlen, "duplicate key \"%.64s\"", keys[i]->string);
				ok = false;
				break;
			}
			if (i)
				buf_putc(out, ',');
			row_json_string(out, keys[i]->string);
			buf_putc(out, ':');
			ok = price_canonical(out, keys[i], err, errlen);
		}
		free(keys);
		return ok && buf_putc(out, '}');
	}
	if (cJSON_IsArray(v)) {
		buf_putc(out, '[');
		cJSON_ArrayForEach(c, v)
		{
			if (n++)
				buf_putc(out, ',');
			if (!price_canonical(out, c, err, errlen))
				return false;
		}
		return buf_putc(out, ']');
	}
	if (cJSON_IsString(v))
		return row_json_string(out, v->valuestring);
	if (cJSON_IsNumber(v)) {
		/* cJSON prints the shortest text that reads back as the same double. */
		cJSON copy = *v;

		copy.next = copy.prev = copy.child = NULL;
		copy.string = NULL;
		num = cJSON_PrintUnformatted(&copy);
		if (!num) {
			snprintf(err, errlen, "out of memory");
			return false;
		}
		buf_puts(out, num);
		free(num);
		return true;
	}
	return buf_puts(out, cJSON_IsTrue(v) ? "true" : cJSON_IsFalse(v) ? "false" : "null");
}

/* A string member of o: NULL when absent; false (err set, naming where.key)
 * when present but not a string of 1..max characters. */
static bool price_string(const cJSON *o, const char *key, const char *where, bool required,
			 const char **out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = NULL;
	if (!v || cJSON_IsNull(v)) {
		if (required)
			snprintf(err, errlen, "%s%s: required", where, key);
		return !required;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0] ||
	    strlen(v->valuestring) > PRICE_NAME_MAX_CHARS) {
		snprintf(err, errlen, "%s%s: must be a string of 1-%d characters", where, key,
			 PRICE_NAME_MAX_CHARS);
		return false;
	}
	*out = v->valuestring;
	return true;
}

/* COPY text of one value (NULL as \N); the values here hold no tab,
 * newline or backslash escapes but a name may, so escape them. */
static void price_copy(struct buf *out, const char *s, bool last)
{
	if (!s) {
		buf_puts(out, "\\N");
	} else {
		for (; *s; s++) {
			if (*s == '\\' || *s == '\t' || *s == '\n' || *s == '\r')
				buf_putc(out, '\\');
			buf_putc(out, *s == '\t' ? 't' : *s == '\n' ? 'n' : *s == '\r' ? 'r' : *s);
		}
	}
	buf_putc(out, last ? '\n' : '\t');
}

/* One rate of a model: checked, then a COPY line. */
static bool price_rate(struct price_import *imp, const char *provider, const char *model,
		       const char *modality, const cJSON *rate, const char *where, char *err,
		       size_t errlen)
{
	const char *meter, *unit, *amount, *when, *plan, *voice, *currency;
	const cJSON *fq = cJSON_GetObjectItemCaseSensitive(rate, "from_quantity");
	char eff[40], fqtext[64] = "";
	bool known = false;

	if (!cJSON_IsObject(rate)) {
		snprintf(err, errlen, "%s: must be an object", where);
		return false;
	}
	if (!price_string(rate, "meter", where, true, &meter, err, errlen) ||
	    !price_string(rate, "unit", where, true, &unit, err, errlen) ||
	    !price_string(rate, "amount", where, true, &amount, err, errlen) ||
	    !price_string(rate, "effective_from", where, false, &when, err, errlen) ||
	    !price_string(rate, "plan", where, false, &plan, err, errlen) ||
	    !price_string(rate, "voice_class", where, false, &voice, err, errlen) ||
	    !price_string(rate, "currency", where, false, &currency, err, errlen))
		return false;
	for (size_t i = 0; i < sizeof(price_pairs) / sizeof(price_pairs[0]); i++)
		if (strcmp(price_pairs[i].meter, meter) == 0 &&
		    strcmp(price_pairs[i].unit, unit) == 0)
			known = true;
	if (!known) {
		snprintf(
			err, errlen,
			"%smeter \"%.64s\" per unit \"%.64s\" is not supported (supported: " PRICE_PAIRS_WORDS
			")",
			where, meter, unit);
		return false;
	}
	if (currency && strcmp(currency, "USD") != 0) {
		snprintf(err, errlen, "%scurrency \"%.16s\": only USD is supported", where,
			 currency);
		return false;
	}
	if (!price_decimal(amount)) {
		snprintf(err, errlen,
			 "%samount \"%.64s\": must be a non-negative decimal string such as "
			 "\"0.0043\"",
			 where, amount);
		return false;
	}
	if (when && !price_time(when, eff, sizeof(eff))) {
		snprintf(err, errlen, "%seffective_from \"%.64s\": expected YYYY-MM-DD or RFC 3339",
			 where, when);
		return false;
	}
	if (fq && !cJSON_IsNull(fq)) {
		if (cJSON_IsString(fq) && price_decimal(fq->valuestring))
			snprintf(fqtext, sizeof(fqtext), "%s", fq->valuestring);
		else if (cJSON_IsNumber(fq) && fq->valuedouble >= 0 && fq->valuedouble < 1e15)
			snprintf(fqtext, sizeof(fqtext), "%.0f", fq->valuedouble);
		else {
			snprintf(err, errlen, "%sfrom_quantity: must be a non-negative number",
				 where);
			return false;
		}
	}
	price_copy(&imp->rates, provider, false);
	price_copy(&imp->rates, model, false);
	price_copy(&imp->rates, modality, false);
	price_copy(&imp->rates, meter, false);
	price_copy(&imp->rates, unit, false);
	price_copy(&imp->rates, amount, false);
	/* A rate's own date wins; then the import's; else the moment of import. */
	price_copy(&imp->rates, when ? eff : imp->effective[0] ? imp->effective : "now", false);
	price_copy(&imp->rates, plan, false);
	price_copy(&imp->rates, fqtext[0] ? fqtext : NULL, false);
	price_copy(&imp->rates, voice, true);
	imp->nrates++;
	return true;
}

/* The feed's models, each with its rates. */
static bool price_models(struct price_import *imp, const char *provider, const cJSON *models,
			 char *err, size_t errlen)
{
	const cJSON *m, *rate;
	int i = 0;

	if (!cJSON_IsArray(models)) {
		snprintf(err, errlen, "models: required, an array");
		return false;
	}
	cJSON_ArrayForEach(m, models)
	{
		const char *id, *modality;
		const cJSON *rates;
		char where[PRICE_NAME_MAX_CHARS + 64];
		int j = 0;

		snprintf(where, sizeof(where), "models[%d].", i);
		if (!cJSON_IsObject(m)) {
			snprintf(err, errlen, "models[%d]: must be an object", i);
			return false;
		}
		if (!price_string(m, "id", where, true, &id, err, errlen) ||
		    !price_string(m, "modality", where, true, &modality, err, errlen))
			return false;
		if (strcmp(modality, "stt") != 0 && strcmp(modality, "llm") != 0 &&
		    strcmp(modality, "tts") != 0) {
			snprintf(
				err, errlen,
				"models[%d] (\"%.64s\").modality \"%.32s\": must be stt, llm or tts",
				i, id, modality);
			return false;
		}
		rates = cJSON_GetObjectItemCaseSensitive(m, "rates");
		if (!cJSON_IsArray(rates)) {
			snprintf(err, errlen, "models[%d] (\"%.64s\").rates: required, an array", i,
				 id);
			return false;
		}
		cJSON_ArrayForEach(rate, rates)
		{
			snprintf(where, sizeof(where), "models[%d] (\"%.64s\").rates[%d]: ", i, id,
				 j++);
			if (!price_rate(imp, provider, id, modality, rate, where, err, errlen))
				return false;
		}
		i++;
	}
	return true;
}

bool price_import_add_feed(struct price_import *imp, const char *text, size_t len, char *err,
			   size_t errlen)
{
	const char *provider, *currency;
	cJSON *root;
	bool nul = false, ok;
	char *copy;

	if (!jsoncheck_object(text, len, &nul)) {
		snprintf(err, errlen, "the feed is not one valid JSON object");
		return false;
	}
	if (nul) {
		snprintf(err, errlen, "a string in the feed holds \\u0000, which is refused");
		return false;
	}
	if (!(copy = malloc(len + 1))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	root = cJSON_Parse(copy);
	free(copy);
	if (!root) {
		snprintf(err, errlen, "the feed is not valid JSON (or out of memory)");
		return false;
	}
	ok = price_string(root, "provider", "", true, &provider, err, errlen) &&
	     price_string(root, "currency", "", true, &currency, err, errlen);
	if (ok && strcmp(currency, "USD") != 0) {
		snprintf(err, errlen, "currency \"%.16s\": only USD is supported", currency);
		ok = false;
	}
	if (ok) {
		buf_putc(&imp->canonical, imp->nfeeds ? ',' : '[');
		ok = price_canonical(&imp->canonical, root, err, errlen) &&
		     price_models(imp, provider, cJSON_GetObjectItemCaseSensitive(root, "models"),
				  err, errlen);
	}
	if (ok && !imp->nfeeds)
		snprintf(imp->provider, sizeof(imp->provider), "%s", provider);
	if (ok)
		imp->nfeeds++;
	if (ok && (imp->canonical.over || imp->rates.over)) {
		snprintf(err, errlen, "out of memory");
		ok = false;
	}
	cJSON_Delete(root);
	return ok;
}

int price_import_store(PGconn *conn, struct price_import *imp, char revision[65], bool *created,
		       char *err, size_t errlen)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	const char *p[3];
	int status = 500;
	PGresult *res;

	*created = false;
	if (!imp->nfeeds) {
		snprintf(err, errlen, "no feed to import");
		return 400;
	}
	if (!imp->closed)
		buf_putc(&imp->canonical, ']');
	imp->closed = true;
	if (imp->canonical.over) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	/* The id: the canonical feeds, a newline, the import's date (or none). */
	buf_putc(&imp->canonical, '\n');
	buf_puts(&imp->canonical, imp->effective);
	if (imp->canonical.over) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	SHA256((const unsigned char *)imp->canonical.data, imp->canonical.len, md);
	/* Stored without the date: the revision row has its own column. */
	imp->canonical.len -= 1 + strlen(imp->effective);
	imp->canonical.data[imp->canonical.len] = '\0';
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(revision + 2 * i, 3, "%02x", md[i]);
	p[0] = revision;
	p[1] = imp->effective[0] ? imp->effective : NULL;
	p[2] = imp->canonical.data;
	/* One import at a time: each rewrites its providers' spans whole. */
	if (!db_exec(conn,
		     "BEGIN; SET LOCAL TimeZone = 'UTC';"
		     " SELECT pg_advisory_xact_lock(hashtext('vgcollector.price_book'))",
		     err, errlen)) {
		db_rollback(conn);
		return 503;
	}
	res = db_query(conn,
		       "INSERT INTO price_book_revisions (revision, effective_from, feeds)"
		       " VALUES ($1, $2::timestamptz, $3) ON CONFLICT (revision) DO NOTHING"
		       " RETURNING 1",
		       3, p, &status, err, errlen);
	if (!res)
		goto fail;
	*created = PQntuples(res) == 1;
	PQclear(res);
	if (*created) {
		struct buf copy;
		const char *line = imp->rates.data;
		bool ok;

		/* Each rate line gets the revision in front. */
		buf_init(&copy, 0);
		for (int i = 0; i < imp->nrates; i++) {
			const char *end = strchr(line, '\n');

			buf_printf(&copy, "%s\t", revision);
			buf_append(&copy, line, (size_t)(end - line) + 1);
			line = end + 1;
		}
		ok = !copy.over;
		res = ok ? PQexec(conn, "COPY price_book_rates (revision, provider, model_id,"
					" modality, meter, unit, amount, effective_from, plan,"
					" from_quantity, voice_class) FROM STDIN")
			 : NULL;
		ok = ok && PQresultStatus(res) == PGRES_COPY_IN;
		PQclear(res);
		ok = ok && (copy.len == 0 || PQputCopyData(conn, copy.data, (int)copy.len) == 1) &&
		     PQputCopyEnd(conn, NULL) == 1;
		buf_release(&copy);
		if (ok) {
			res = PQgetResult(conn);
			ok = PQresultStatus(res) == PGRES_COMMAND_OK;
			if (!ok) {
				db_result_error(conn, res, err, errlen);
				status = db_fault_status(db_classify(conn, res));
			}
			PQclear(res);
			while ((res = PQgetResult(conn)) != NULL)
				PQclear(res);
		} else {
			snprintf(err, errlen, "COPY of the rates failed: %s", PQerrorMessage(conn));
			status = 503;
		}
		if (!ok)
			goto fail;
		res = db_query(
			conn,
			"SELECT vgc_price_book_rebuild(provider) FROM"
			" (SELECT DISTINCT provider FROM price_book_rates WHERE revision = $1)"
			" x",
			1, p, &status, err, errlen);
		if (!res)
			goto fail;
		PQclear(res);
	}
	if (!db_exec(conn, "COMMIT", err, errlen))
		return 503;
	return 200;
fail:
	db_rollback(conn);
	return status;
}

/* Models that run on our own hardware cost nothing by the book. */
#define PRICE_LOCAL                                                                                \
	"(s.provider IN ('local', 'ollama') OR starts_with(s.model_id, 'local/')"                  \
	" OR starts_with(s.model_id, 'ollama/'))"

/* quantity x rate, where no quantity needs no rate (0), and a quantity
 * without its rate leaves the row unpriced (NULL). */
#define PRICE_TERM(q, r) "CASE WHEN " q " = 0 THEN 0 ELSE " q " * " r " END"

/* The exact cost by the formulas of each modality, plus the request rate. */
#define PRICE_RAW                                                                                                                                                             \
	"(CASE s.modality"                                                                                                                                                    \
	" WHEN 'stt' THEN " PRICE_TERM("s.input_units", "p.audio_minute") " WHEN 'tts' THEN " PRICE_TERM("s.input_units", "p.text_character") " WHEN 'llm' THEN " PRICE_TERM( \
		"(s.input_units - s.cached_input_units)",                                                                                                                     \
		"p.text_token") " + " PRICE_TERM("s.cached_input_units",                                                                                                      \
						 "coalesce(p.cached_token,"                                                                                                   \
						 " p.text_token)") " + " PRICE_TERM("s.output_units",                                                                         \
										    "p.output_token") " END + coalesce(p.request, 0))"

bool price_book_source_sql(struct buf *out)
{
	return buf_puts(out, "(SELECT s.*, " PRICE_LOCAL " AS book_local, p.revision AS book_rev,"
			     " p.provider IS NOT NULL AS book_found, " PRICE_RAW " AS book_raw"
			     " FROM vgc_stage s LEFT JOIN price_book_periods p"
			     " ON p.provider = s.provider AND p.row_model = s.model_id"
			     " AND s.ts >= p.valid_from AND s.ts < p.valid_to OFFSET 0) s");
}

bool price_money_round_sql(struct buf *out, const char *column)
{
	return buf_printf(out,
			  "CASE WHEN scale(%s) <= 12 THEN %s"
			  " WHEN mod(abs(%s) * 1e13, 20) = 5 THEN trunc(%s, 12)"
			  " ELSE round(%s, 12) END",
			  column, column, column, column, column);
}

bool price_book_field_sql(struct buf *out, const char *column)
{
	if (strcmp(column, "book_revision") == 0) /* only on a priced row */
		return buf_puts(out, "CASE WHEN s.book_local OR s.book_raw IS NULL THEN NULL"
				     " ELSE s.book_rev END");
	buf_puts(out, "CASE WHEN s.book_local THEN 0 WHEN NOT s.book_found THEN NULL ELSE ");
	price_money_round_sql(out, "s.book_raw");
	return buf_puts(out, " END");
}

/* A row that came without a cost (pricing_source 'unpriced', as an OTLP span
 * with no gen_ai.usage.cost) takes the book's cost as its cost_usd and
 * pricing_source 'book' when the book prices it; otherwise it stays unpriced
 * with cost_usd 0, and its NULL book_cost_usd says so. Other rows keep what
 * the worker recorded. */
bool price_book_unpriced_sql(struct buf *out, const char *column)
{
	bool cost = strcmp(column, "cost_usd") == 0;

	buf_puts(out, "CASE WHEN s.pricing_source = 'unpriced' AND (");
	price_book_field_sql(out, "book_cost_usd");
	buf_puts(out, ") IS NOT NULL THEN ");
	if (cost)
		price_book_field_sql(out, "book_cost_usd");
	else
		buf_puts(out, "'book'");
	return buf_printf(out, " ELSE s.%s END", column);
}
