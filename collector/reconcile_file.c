/* Reads a provider usage file. CSV (RFC 4180, header first) and JSON (an array
 * of flat objects) both become a list of cells with their line and column;
 * one checker (reconcile_file_take) turns a record's cells into a
 * reconcile_record, so both formats obey the same rules and messages. */
#include "reconcile_file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "reconcile_sum.h"
#include "rollup_params.h"
#include "row.h"
#include "timefmt.h"

#define RF_MAX_CELLS 64	   /* columns in a CSV header, members in a JSON record */
#define RF_MAX_VALUE 1024  /* bytes in one cell */
#define RF_MAX_NUMBER 64   /* characters in one number */
#define RF_MAX_EXPONENT 60 /* |e| in 1.5e-7: beyond it no invoice has a reason to go */
#define RF_MAX_REQUESTS "9223372036854775807" /* n_requests: as our own bigint counter */

/* Unit columns by provider; the last row is everyone else. */
static const struct {
	const char *provider;
	const char *cols[3];
} reconcile_file_units[] = {
	{ "openai", { "input_tokens", "output_tokens", NULL } },
	{ "anthropic", { "input_tokens", "output_tokens", NULL } },
	{ "groq", { "input_tokens", "output_tokens", NULL } },
	{ "deepgram", { "audio_seconds", NULL, NULL } },
	{ "assemblyai", { "audio_seconds", NULL, NULL } },
	{ "cartesia", { "characters", NULL, NULL } },
	{ "elevenlabs", { "characters", NULL, NULL } },
	{ NULL, { "units", NULL, NULL } },
};

/* One cell of a record: its column's name, its text (NULL for JSON null) and
 * where it starts. col is the CSV column number or the JSON character column. */
struct rf_cell {
	char *name;
	char *value;
	int line, col;
};

/* A record being read: its cells, owned. */
struct rf_rec {
	struct rf_cell cells[RF_MAX_CELLS];
	int n;
	int line, col; /* where the record starts */
};

/* The running sums of one line of the comparison (out->recs[i] is its key). */
struct rf_sums {
	struct reconcile_sum cost, units[2], requests;
};

/* The parse in progress. */
struct rf_parse {
	const char *provider;
	const char *const *units;
	long long from_us, to_us;
	const struct reconcile_file_limits *lim;
	int nrecs;  /* records seen, for messages */
	int status; /* what a failure answers: 400, or 413 past a limit, 503 out of memory */
	struct reconcile_file *out;
	struct rf_sums *sums; /* parallel to out->recs */
	int *slots;	      /* open addressing over out->recs by (model, date); -1 empty */
	size_t nslots;	      /* a power of two, at least twice out->n */
	char *err;
	size_t errlen;
};

const char *const *reconcile_file_unit_columns(const char *provider)
{
	size_t i = 0;

	while (reconcile_file_units[i].provider &&
	       strcmp(reconcile_file_units[i].provider, provider) != 0)
		i++;
	return reconcile_file_units[i].cols;
}

bool reconcile_file_provider_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || s[0] == '.' || s[0] == '-' || s[0] == '_')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		      s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

enum reconcile_format reconcile_file_sniff(const char *text, size_t len)
{
	size_t i = 0;

	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	while (i < len && strchr(" \t\r\n", text[i]))
		i++;
	return i < len && (text[i] == '[' || text[i] == '{') ? RECONCILE_JSON : RECONCILE_CSV;
}

static void rf_rec_clear(struct rf_rec *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->cells[i].name);
		free(r->cells[i].value);
	}
	r->n = 0;
}

void reconcile_file_release(struct reconcile_file *f)
{
	for (int i = 0; i < f->n; i++) {
		struct reconcile_record *r = &f->recs[i];

		free(r->model);
		free(r->cost);
		free(r->units[0]);
		free(r->units[1]);
		free(r->n_requests);
	}
	free(f->recs);
	memset(f, 0, sizeof(*f));
}

/* Sets the message: "line L, column C (name): why". */
static bool rf_fail(struct rf_parse *p, const struct rf_cell *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool rf_fail(struct rf_parse *p, const struct rf_cell *c, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "line %d, column %d (%s): %s", c->line, c->col, c->name, why);
	return false;
}

/* How many bytes of s a message may quote: at most 64, never half a character. */
static int rf_clip(const char *s)
{
	int n = 0;

	while (s[n] && n < 64)
		n++;
	while (n > 0 && s[n] && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

const char *reconcile_file_number_problem(const char *s, bool sign, bool integer)
{
	const char *p = s;
	int e = 0;

	if (strlen(s) > RF_MAX_NUMBER)
		return "too long for a number";
	if (*p == '-') {
		if (!sign)
			return integer ? "expected a whole number, 0 or more"
				       : "expected a number, 0 or more";
		p++;
	}
	if (*p < '0' || *p > '9')
		goto bad;
	while (*p >= '0' && *p <= '9')
		p++;
	if (integer)
		return *p ? "expected a whole number" : NULL;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			goto bad;
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			goto bad;
		for (; *p >= '0' && *p <= '9'; p++)
			if ((e = e * 10 + (*p - '0')) > RF_MAX_EXPONENT)
				return "exponent out of range";
	}
	if (!*p)
		return NULL;
bad:
	return "not a number (expected a decimal like 12.5 or 1.5e-7)";
}

static struct rf_cell *rf_find(struct rf_rec *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->cells[i].name, name) == 0)
			return &r->cells[i];
	return NULL;
}

/* The required cell name of r: present and not null. */
static bool rf_need(struct rf_parse *p, struct rf_rec *r, const char *name, struct rf_cell **out)
{
	struct rf_cell where = { (char *)name, NULL, r->line, r->col };

	*out = rf_find(r, name);
	if (!*out)
		return rf_fail(p, &where, "record %d has no %s", p->nrecs, name);
	if (!(*out)->value || !(*out)->value[0])
		return rf_fail(p, *out, "empty; a value is required");
	return true;
}

/* A date cell: YYYY-MM-DD, a real day (timefmt_parse refuses 2023-02-29),
 * inside the period. */
static bool rf_date(struct rf_parse *p, struct rf_cell *c, char out[11])
{
	long long us;
	bool date_only = false;

	if (strlen(c->value) != 10 || !timefmt_parse(c->value, &us, &date_only) || !date_only)
		return rf_fail(p, c, "\"%.*s\": expected a date, YYYY-MM-DD", rf_clip(c->value),
			       c->value);
	if (us < p->from_us || us >= p->to_us)
		return rf_fail(p, c, "%s is outside the period being reconciled (--from/--to)",
			       c->value);
	memcpy(out, c->value, 11);
	return true;
}

/* Checks n_requests: a whole number that fits our bigint request counter. */
static bool rf_requests(struct rf_parse *p, struct rf_cell *c)
{
	const char *why = reconcile_file_number_problem(c->value, false, true);
	const char *v = c->value;
	size_t n, max = sizeof(RF_MAX_REQUESTS) - 1;

	if (why)
		return rf_fail(p, c, "\"%.*s\": %s", rf_clip(c->value), c->value, why);
	while (v[0] == '0' && v[1])
		v++;
	n = strlen(v);
	if (n > max || (n == max && strcmp(v, RF_MAX_REQUESTS) > 0))
		return rf_fail(p, c, "\"%.*s\": out of range (0 to %s)", rf_clip(c->value),
			       c->value, RF_MAX_REQUESTS);
	return true;
}

static size_t rf_hash(const char *model, const char *date)
{
	size_t h = 1469598103934665603ULL;

	for (const char *s = model; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h = (h ^ 0xFF) * 1099511628211ULL;
	for (const char *s = date; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* Doubles the slot table; false when out of memory. */
static bool rf_rehash(struct rf_parse *p)
{
	size_t n = p->nslots ? p->nslots * 2 : 256;
	int *slots = malloc(n * sizeof(*slots));

	if (!slots)
		return false;
	for (size_t i = 0; i < n; i++)
		slots[i] = -1;
	for (int k = 0; k < p->out->n; k++) {
		size_t i = rf_hash(p->out->recs[k].model, p->out->recs[k].date) & (n - 1);

		while (slots[i] >= 0)
			i = (i + 1) & (n - 1);
		slots[i] = k;
	}
	free(p->slots);
	p->slots = slots;
	p->nslots = n;
	return true;
}

/* The sums of (model, date), a new line when the file has not named it yet;
 * NULL with the message set past reconcile_max_groups or out of memory. */
static struct rf_sums *rf_group(struct rf_parse *p, struct rf_rec *r, const char *model,
				const char *date)
{
	struct reconcile_file *f = p->out;
	struct rf_cell where = { (char *)"model", NULL, r->line, r->col };
	struct reconcile_record *rec;
	size_t i;

	if (p->nslots < 2 * (size_t)f->n + 2 && !rf_rehash(p))
		goto oom;
	for (i = rf_hash(model, date) & (p->nslots - 1); p->slots[i] >= 0;
	     i = (i + 1) & (p->nslots - 1)) {
		rec = &f->recs[p->slots[i]];
		if (strcmp(rec->model, model) == 0 && strcmp(rec->date, date) == 0)
			return &p->sums[p->slots[i]];
	}
	if (f->n >= p->lim->max_groups) {
		p->status = 413;
		rf_fail(p, &where,
			"more than reconcile_max_groups (%lld) different models%s; split the "
			"file by date",
			p->lim->max_groups, f->per_day ? " and days" : "");
		return NULL;
	}
	if (f->n == f->cap) {
		int cap = f->cap ? f->cap * 2 : 64;
		struct reconcile_record *n = realloc(f->recs, (size_t)cap * sizeof(*n));
		struct rf_sums *ns;

		if (n)
			f->recs = n;
		ns = n ? realloc(p->sums, (size_t)cap * sizeof(*ns)) : NULL;
		if (!ns)
			goto oom;
		p->sums = ns;
		f->cap = cap;
	}
	rec = &f->recs[f->n];
	memset(rec, 0, sizeof(*rec));
	memset(&p->sums[f->n], 0, sizeof(p->sums[f->n]));
	if (!(rec->model = strdup(model)))
		goto oom;
	rec->line = r->line;
	memcpy(rec->date, date, strlen(date) + 1);
	p->slots[i] = f->n;
	return &p->sums[f->n++];
oom:
	p->status = 503;
	rf_fail(p, &where, "out of memory");
	return NULL;
}

/* Adds a checked number cell to a sum. */
static bool rf_add(struct rf_parse *p, struct rf_cell *c, struct reconcile_sum *sum)
{
	if (!reconcile_sum_add(sum, c->value))
		return rf_fail(p, c, "\"%.*s\": the sum leaves the range a file may add up to",
			       rf_clip(c->value), c->value);
	return true;
}

/* Checks one record's cells and adds it to its (model, day) line. */
static bool rf_take(struct rf_parse *p, struct rf_rec *r)
{
	struct reconcile_file *f = p->out;
	struct rf_cell *c, *cost, *units[2] = { NULL, NULL }, *req;
	struct rf_sums *sums;
	size_t plen = strlen(p->provider);
	const char *model, *why;
	char date[11] = "", whyb[160];

	if (p->nrecs >= p->lim->max_records) {
		struct rf_cell where = { (char *)"record", NULL, r->line, r->col };

		p->status = 413;
		return rf_fail(p, &where,
			       "more than reconcile_max_records (%lld) records; sum them per "
			       "model and day, or split the file by date",
			       p->lim->max_records);
	}
	p->nrecs++;
	if ((c = rf_find(r, "provider")) && c->value && c->value[0] &&
	    strcmp(c->value, p->provider) != 0)
		return rf_fail(p, c, "unknown provider \"%.*s\": this file is reconciled as %s",
			       rf_clip(c->value), c->value, p->provider);
	if (!rf_need(p, r, "model", &c))
		return false;
	if (rollup_params_check_text("text", c->value, whyb, sizeof(whyb)) != 200)
		return rf_fail(p, c, "%s", whyb);
	model = c->value;
	if (strncmp(model, p->provider, plen) == 0 && model[plen] == '/' && model[plen + 1])
		model += plen + 1;
	if (strlen(model) > 256)
		return rf_fail(p, c, "longer than 256 bytes");
	if (!rf_need(p, r, "cost_usd", &cost))
		return false;
	if ((why = reconcile_file_number_problem(cost->value, true, false)))
		return rf_fail(p, cost, "\"%.*s\": %s", rf_clip(cost->value), cost->value, why);
	for (int i = 0; p->units[i]; i++) {
		if (!rf_need(p, r, p->units[i], &units[i]))
			return false;
		if ((why = reconcile_file_number_problem(units[i]->value, false, false)))
			return rf_fail(p, units[i], "\"%.*s\": %s", rf_clip(units[i]->value),
				       units[i]->value, why);
	}
	if ((req = rf_find(r, "n_requests")) && (!req->value || !req->value[0]))
		req = NULL;
	if (req && !rf_requests(p, req))
		return false;
	c = rf_find(r, "date");
	if (c && c->value && c->value[0]) {
		if (!f->per_day)
			return rf_fail(
				p, c,
				"a date, but record 1 has none: give every record a date or none");
		if (!rf_date(p, c, date))
			return false;
	} else if (f->per_day) {
		if (!rf_need(p, r, "date", &c))
			return false;
	}
	if (!(sums = rf_group(p, r, model, date)) || !rf_add(p, cost, &sums->cost))
		return false;
	for (int i = 0; p->units[i]; i++)
		if (!rf_add(p, units[i], &sums->units[i]))
			return false;
	return !req || rf_add(p, req, &sums->requests);
}

/* Writes each line's sums into its record's text. */
static bool rf_finish(struct rf_parse *p)
{
	struct reconcile_file *f = p->out;
	struct buf b;

	buf_init(&b, 0);
	for (int i = 0; i < f->n; i++) {
		struct reconcile_record *rec = &f->recs[i];
		struct rf_sums *s = &p->sums[i];
		struct {
			const struct reconcile_sum *sum;
			char **text;
		} cols[] = { { &s->cost, &rec->cost },
			     { &s->units[0], &rec->units[0] },
			     { &s->units[1], &rec->units[1] },
			     { &s->requests, &rec->n_requests } };

		for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
			if (!cols[k].sum->any)
				continue;
			buf_reset(&b);
			if (!reconcile_sum_format(cols[k].sum, &b) ||
			    !(*cols[k].text = strdup(b.data))) {
				buf_release(&b);
				p->status = 503;
				snprintf(p->err, p->errlen, "out of memory summing the file");
				return false;
			}
		}
	}
	buf_release(&b);
	return true;
}

/* ---- CSV ------------------------------------------------------------------ */

/* Reads one field at s[*i] into cell (RFC 4180: quoted fields may hold commas,
 * doubled quotes and line breaks). Advances *i and *line. */
static bool rf_csv_field(struct rf_parse *p, const char *s, size_t len, size_t *i, int *line,
			 struct rf_cell *where, struct buf *cell)
{
	buf_reset(cell);
	if (*i < len && s[*i] == '"') {
		for (++*i;; ++*i) {
			if (*i >= len)
				return rf_fail(p, where, "a quoted field is never closed");
			if (s[*i] == '"') {
				if (*i + 1 < len && s[*i + 1] == '"') {
					buf_putc(cell, '"');
					++*i;
					continue;
				}
				++*i;
				break;
			}
			if (s[*i] == '\n')
				++*line;
			buf_putc(cell, s[*i]);
		}
		if (*i < len && s[*i] != ',' && s[*i] != '\n' &&
		    !(s[*i] == '\r' && *i + 1 < len && s[*i + 1] == '\n'))
			return rf_fail(p, where, "text after the closing quote");
	} else {
		for (; *i < len && s[*i] != ',' && s[*i] != '\n'; ++*i) {
			if (s[*i] == '\r' && *i + 1 < len && s[*i + 1] == '\n')
				break;
			if (s[*i] == '"')
				return rf_fail(p, where, "a quote inside an unquoted field");
			buf_putc(cell, s[*i]);
		}
	}
	if (cell->over)
		return rf_fail(p, where, "longer than %d bytes", RF_MAX_VALUE);
	if (cell->data && memchr(cell->data, '\0', cell->len))
		return rf_fail(p, where, "holds a NUL byte");
	return true;
}

/* Trims blanks and lowers a header name in place. */
static char *rf_header_name(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	for (char *c = s; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
	return s;
}

static bool rf_csv_header_check(struct rf_parse *p, char **header, int nh)
{
	const char *need[8] = { "model", "cost_usd" };
	int nneed = 2;
	char list[256] = "model, cost_usd";

	for (int i = 0; p->units[i]; i++) {
		need[nneed++] = p->units[i];
		snprintf(list + strlen(list), sizeof(list) - strlen(list), ", %s", p->units[i]);
	}
	for (int k = 0; k < nneed; k++) {
		bool found = false;

		for (int c = 0; c < nh; c++)
			found = found || strcmp(header[c], need[k]) == 0;
		if (!found) {
			snprintf(p->err, p->errlen,
				 "line 1, column %d: missing column \"%s\" (a %s file needs %s)",
				 nh + 1, need[k], p->provider, list);
			return false;
		}
	}
	for (int c = 0; c < nh; c++)
		if (strcmp(header[c], "date") == 0)
			p->out->per_day = true;
	return true;
}

static bool rf_csv(struct rf_parse *p, const char *s, size_t len)
{
	char *header[RF_MAX_CELLS];
	int nh = -1, nhdr = 0, line = 1; /* nhdr: header names allocated */
	size_t i = 0;
	struct rf_rec rec;
	struct buf cell;
	bool ok = false;

	memset(&rec, 0, sizeof(rec));
	buf_init(&cell, RF_MAX_VALUE);
	if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	while (i < len) {
		int ncol = 0;

		if (s[i] == '\n' || (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')) {
			i += s[i] == '\r' ? 2 : 1; /* a blank line */
			line++;
			continue;
		}
		rec.line = line;
		rec.col = 1;
		for (;;) {
			struct rf_cell where = { (char *)"header", NULL, line, ncol + 1 };

			if (nh >= 0) {
				if (ncol >= nh) {
					snprintf(
						p->err, p->errlen,
						"line %d, column %d: more fields than the header's %d "
						"columns",
						line, ncol + 1, nh);
					goto out;
				}
				where.name = header[ncol];
			} else if (ncol >= RF_MAX_CELLS) {
				rf_fail(p, &where, "more than %d columns", RF_MAX_CELLS);
				goto out;
			}
			if (!rf_csv_field(p, s, len, &i, &line, &where, &cell))
				goto out;
			if (nh < 0) {
				char *name = strdup(cell.data ? rf_header_name(cell.data) : "");

				if (!name) {
					rf_fail(p, &where, "out of memory");
					goto out;
				}
				header[nhdr++] = name;
				for (int k = 0; k < ncol; k++)
					if (strcmp(header[k], name) == 0 && name[0]) {
						where.name = name;
						rf_fail(p, &where, "column \"%s\" appears twice",
							name);
						goto out;
					}
			} else {
				struct rf_cell *c = &rec.cells[rec.n++];

				c->line = where.line;
				c->col = ncol + 1;
				if (!(c->name = strdup(header[ncol])) ||
				    !(c->value = strdup(cell.data ? cell.data : ""))) {
					rf_fail(p, &where, "out of memory");
					goto out;
				}
			}
			ncol++;
			if (i < len && s[i] == ',') {
				i++;
				continue;
			}
			if (i < len && s[i] == '\r')
				i++;
			if (i < len && s[i] == '\n') {
				i++;
				line++;
			}
			break;
		}
		if (nh < 0) {
			nh = ncol;
			if (!rf_csv_header_check(p, header, nh))
				goto out;
			continue;
		}
		if (ncol < nh) {
			snprintf(p->err, p->errlen,
				 "line %d, column %d (%s): missing; the record has %d fields, the "
				 "header %d",
				 rec.line, ncol + 1, header[ncol], ncol, nh);
			goto out;
		}
		if (!rf_take(p, &rec))
			goto out;
		rf_rec_clear(&rec);
	}
	if (nh < 0) {
		snprintf(p->err, p->errlen,
			 "line 1, column 1: the file is empty; expected a header line naming "
			 "the columns");
		goto out;
	}
	ok = true;
out:
	rf_rec_clear(&rec);
	for (int k = 0; k < nhdr; k++)
		free(header[k]);
	buf_release(&cell);
	return ok;
}

/* ---- JSON ----------------------------------------------------------------- */

/* A JSON text being read, with the position of s[i]. */
struct rf_json {
	const char *s;
	size_t len, i, line_start;
	int line;
};

static int rj_col(const struct rf_json *j)
{
	return (int)(j->i - j->line_start) + 1;
}

static void rj_ws(struct rf_json *j)
{
	while (j->i < j->len && strchr(" \t\r\n", j->s[j->i]) && j->s[j->i]) {
		if (j->s[j->i] == '\n') {
			j->line++;
			j->line_start = j->i + 1;
		}
		j->i++;
	}
}

static bool rj_fail(struct rf_parse *p, const struct rf_json *j, const char *name, const char *why)
{
	struct rf_cell where = { (char *)name, NULL, j->line, rj_col(j) };

	return rf_fail(p, &where, "%s", why);
}

static int rj_hex4(const char *s)
{
	int v = 0;

	for (int k = 0; k < 4; k++) {
		char c = s[k];
		v = v * 16 + (c >= '0' && c <= '9'   ? c - '0'
			      : c >= 'a' && c <= 'f' ? c - 'a' + 10
			      : c >= 'A' && c <= 'F' ? c - 'A' + 10
						     : -1000000);
	}
	return v < 0 ? -1 : v;
}

static void rj_utf8(struct buf *out, unsigned cp)
{
	if (cp < 0x80) {
		buf_putc(out, (char)cp);
	} else if (cp < 0x800) {
		buf_putc(out, (char)(0xC0 | cp >> 6));
		buf_putc(out, (char)(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		buf_putc(out, (char)(0xE0 | cp >> 12));
		buf_putc(out, (char)(0x80 | (cp >> 6 & 0x3F)));
		buf_putc(out, (char)(0x80 | (cp & 0x3F)));
	} else {
		buf_putc(out, (char)(0xF0 | cp >> 18));
		buf_putc(out, (char)(0x80 | (cp >> 12 & 0x3F)));
		buf_putc(out, (char)(0x80 | (cp >> 6 & 0x3F)));
		buf_putc(out, (char)(0x80 | (cp & 0x3F)));
	}
}

/* A string at s[i] (the opening quote) into out. */
static bool rj_string(struct rf_parse *p, struct rf_json *j, const char *name, struct buf *out)
{
	buf_reset(out);
	for (j->i++;; j->i++) {
		unsigned char c;

		if (j->i >= j->len)
			return rj_fail(p, j, name, "a string is never closed");
		c = (unsigned char)j->s[j->i];
		if (c == '"') {
			j->i++;
			break;
		}
		if (c < 0x20)
			return rj_fail(p, j, name, "a control character inside a string");
		if (c != '\\') {
			buf_putc(out, (char)c);
			continue;
		}
		if (++j->i >= j->len)
			return rj_fail(p, j, name, "a string is never closed");
		switch (j->s[j->i]) {
		case '"': buf_putc(out, '"'); break;
		case '\\': buf_putc(out, '\\'); break;
		case '/': buf_putc(out, '/'); break;
		case 'b': buf_putc(out, '\b'); break;
		case 'f': buf_putc(out, '\f'); break;
		case 'n': buf_putc(out, '\n'); break;
		case 'r': buf_putc(out, '\r'); break;
		case 't': buf_putc(out, '\t'); break;
		case 'u': {
			int cp = j->i + 4 < j->len ? rj_hex4(j->s + j->i + 1) : -1;

			if (cp < 0)
				return rj_fail(p, j, name, "a bad \\u escape");
			j->i += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				int lo = j->i + 6 < j->len && j->s[j->i + 1] == '\\' &&
							 j->s[j->i + 2] == 'u'
						 ? rj_hex4(j->s + j->i + 3)
						 : -1;

				if (lo < 0xDC00 || lo > 0xDFFF)
					return rj_fail(p, j, name,
						       "a lone surrogate in a \\u escape");
				j->i += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				return rj_fail(p, j, name, "a lone surrogate in a \\u escape");
			}
			if (cp == 0)
				return rj_fail(p, j, name, "\\u0000 cannot be stored");
			rj_utf8(out, (unsigned)cp);
			break;
		}
		default: return rj_fail(p, j, name, "a bad escape in a string");
		}
	}
	if (out->over)
		return rj_fail(p, j, name, "a string longer than 1024 bytes");
	if (!row_utf8_valid(out->data ? out->data : "", out->len))
		return rj_fail(p, j, name, "a string that is not valid UTF-8");
	return true;
}

/* One member value into c->value: a string's text, a number's own text, or
 * NULL for null. */
static bool rj_value(struct rf_parse *p, struct rf_json *j, struct rf_cell *c, struct buf *tmp)
{
	const char *s = j->s + j->i;
	size_t rest = j->len - j->i, n = 0;

	c->line = j->line;
	c->col = rj_col(j);
	if (rest && *s == '"') {
		if (!rj_string(p, j, c->name, tmp))
			return false;
		c->value = strdup(tmp->data ? tmp->data : "");
	} else if (rest >= 4 && memcmp(s, "null", 4) == 0) {
		j->i += 4;
		return true;
	} else if (rest && (*s == '-' || (*s >= '0' && *s <= '9'))) {
		while (n < rest && strchr("+-.eE0123456789", s[n]) && s[n])
			n++;
		if (n > RF_MAX_NUMBER)
			return rj_fail(p, j, c->name, "a number too long");
		c->value = strndup(s, n);
		j->i += n;
	} else {
		return rj_fail(p, j, c->name, "expected a string, a number or null");
	}
	if (!c->value)
		return rj_fail(p, j, c->name, "out of memory");
	return true;
}

/* One object at s[i] into rec. */
static bool rj_record(struct rf_parse *p, struct rf_json *j, struct rf_rec *rec, struct buf *tmp)
{
	rec->line = j->line;
	rec->col = rj_col(j);
	if (j->i >= j->len || j->s[j->i] != '{')
		return rj_fail(p, j, "record", "expected an object {...} for each record");
	j->i++;
	rj_ws(j);
	if (j->i < j->len && j->s[j->i] == '}') {
		j->i++;
		return true;
	}
	for (;;) {
		struct rf_cell *c;

		rj_ws(j);
		if (j->i >= j->len || j->s[j->i] != '"')
			return rj_fail(p, j, "record", "expected a member name in quotes");
		if (!rj_string(p, j, "record", tmp))
			return false;
		if (rec->n == RF_MAX_CELLS)
			return rj_fail(p, j, "record", "more than 64 members");
		c = &rec->cells[rec->n];
		if (!(c->name = strdup(tmp->data ? tmp->data : "")))
			return rj_fail(p, j, "record", "out of memory");
		rec->n++;
		for (int k = 0; k + 1 < rec->n; k++)
			if (strcmp(rec->cells[k].name, c->name) == 0)
				return rj_fail(p, j, c->name, "this member appears twice");
		rj_ws(j);
		if (j->i >= j->len || j->s[j->i] != ':')
			return rj_fail(p, j, c->name, "expected ':' after the member name");
		j->i++;
		rj_ws(j);
		if (!rj_value(p, j, c, tmp))
			return false;
		rj_ws(j);
		if (j->i < j->len && j->s[j->i] == ',') {
			j->i++;
			continue;
		}
		if (j->i < j->len && j->s[j->i] == '}') {
			j->i++;
			return true;
		}
		return rj_fail(p, j, c->name, "expected ',' or '}'");
	}
}

static bool rf_json(struct rf_parse *p, const char *s, size_t len)
{
	struct rf_json j = { s, len, 0, 0, 1 };
	struct rf_rec rec;
	struct buf tmp;
	bool ok = false;

	memset(&rec, 0, sizeof(rec));
	buf_init(&tmp, RF_MAX_VALUE);
	if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		j.i = j.line_start = 3;
	rj_ws(&j);
	if (j.i >= len || s[j.i] != '[') {
		rj_fail(p, &j, "file", "expected a JSON array of records, [{...}, ...]");
		goto out;
	}
	j.i++;
	rj_ws(&j);
	if (j.i < len && s[j.i] == ']') {
		j.i++;
	} else {
		for (;;) {
			struct rf_cell *date;

			rj_ws(&j);
			if (!rj_record(p, &j, &rec, &tmp))
				goto out;
			if (p->nrecs == 0) {
				date = rf_find(&rec, "date");
				p->out->per_day = date && date->value && date->value[0];
			}
			if (!rf_take(p, &rec))
				goto out;
			rf_rec_clear(&rec);
			rj_ws(&j);
			if (j.i < len && s[j.i] == ',') {
				j.i++;
				continue;
			}
			if (j.i < len && s[j.i] == ']') {
				j.i++;
				break;
			}
			rj_fail(p, &j, "file", "expected ',' or ']' after a record");
			goto out;
		}
	}
	rj_ws(&j);
	if (j.i < len) {
		rj_fail(p, &j, "file", "text after the closing ']'");
		goto out;
	}
	ok = true;
out:
	rf_rec_clear(&rec);
	buf_release(&tmp);
	return ok;
}

int reconcile_file_parse(const char *provider, const char *text, size_t len,
			 enum reconcile_format fmt, long long from_us, long long to_us,
			 const struct reconcile_file_limits *lim, struct reconcile_file *out,
			 char *err, size_t errlen)
{
	struct rf_parse p = {
		.provider = provider,
		.units = reconcile_file_unit_columns(provider),
		.from_us = from_us,
		.to_us = to_us,
		.lim = lim,
		.status = 400,
		.out = out,
		.err = err,
		.errlen = errlen,
	};
	bool ok;

	memset(out, 0, sizeof(*out));
	if (memchr(text, '\0', len)) {
		size_t at = (size_t)((const char *)memchr(text, '\0', len) - text);
		int line = 1;

		for (size_t k = 0; k < at; k++)
			line += text[k] == '\n';
		snprintf(err, errlen, "line %d: a NUL byte; the file must be text", line);
		return 400;
	}
	ok = fmt == RECONCILE_JSON ? rf_json(&p, text, len) : rf_csv(&p, text, len);
	ok = ok && rf_finish(&p);
	out->nrecords = p.nrecs;
	free(p.sums);
	free(p.slots);
	if (!ok) {
		reconcile_file_release(out);
		return p.status;
	}
	return 200;
}
