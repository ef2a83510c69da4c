/* The provider usage file that `vgcollector reconcile` and POST /v1/reconcile
 * compare against: CSV or JSON records of model, cost and units (per day when
 * a date is given), parsed into checked decimal text. Pure: no I/O. */
#ifndef VGC_RECONCILE_FILE_H
#define VGC_RECONCILE_FILE_H

#include <stdbool.h>
#include <stddef.h>

enum reconcile_format { RECONCILE_CSV = 0, RECONCILE_JSON };

/* One line of the comparison: every record of the file for one model (and
 * day, when the file has dates), summed exactly while the file is read. The
 * sums are decimal text PostgreSQL numeric reads exactly. */
struct reconcile_record {
	int line;	  /* where the first of its records starts */
	char *model;	  /* owned; the provider prefix "<provider>/" removed */
	char date[11];	  /* YYYY-MM-DD, "" when the file has no dates */
	char *cost;	  /* owned: the sum of cost_usd */
	char *units[2];	  /* owned: the sums of the unit columns (units[1] NULL when one) */
	char *n_requests; /* owned; NULL when no record gave one */
};

struct reconcile_file {
	struct reconcile_record *recs; /* owned; in the order each first appears */
	int n, cap;
	int nrecords; /* records read */
	bool per_day; /* the file has a date column: compare per model and day */
};

/* What one file may hold. Past either the parse stops with 413. */
struct reconcile_file_limits {
	long long max_records; /* CSV lines or JSON objects: reconcile_max_records */
	long long max_groups;  /* distinct (model, day) pairs: reconcile_max_groups */
};

/* The unit columns a provider's file carries ("input_tokens",
 * "output_tokens"), NULL-terminated; any provider not named in the table
 * takes the one generic column "units". */
const char *const *reconcile_file_unit_columns(const char *provider);

/* True when name is a provider name we can reconcile: 1-64 of a-z, 0-9, '.',
 * '-', '_', starting with a letter or digit. */
bool reconcile_file_provider_valid(const char *name);

/* Parses text (len bytes) as fmt for provider. Dates must lie in
 * [from_us, to_us) (epoch microseconds, whole UTC days). Returns 200 and fills
 * out (release with reconcile_file_release); or 400 with err naming the line
 * and column ("line 3, column 2 (cost_usd): ..."), 413 with err naming the
 * limit passed, or 503 when out of memory, and out empty. */
int reconcile_file_parse(const char *provider, const char *text, size_t len,
			 enum reconcile_format fmt, long long from_us, long long to_us,
			 const struct reconcile_file_limits *lim, struct reconcile_file *out,
			 char *err, size_t errlen) __attribute__((warn_unused_result));

void reconcile_file_release(struct reconcile_file *f);

/* What is wrong with s as a plain decimal PostgreSQL numeric reads exactly,
 * [-]digits[.digits][e[+-]digits], or NULL when nothing. sign: a leading '-'
 * is allowed; integer: digits only. */
const char *reconcile_file_number_problem(const char *s, bool sign, bool integer);

/* The format a file's text looks like: JSON when its first non-blank byte is
 * '[' or '{', else CSV. */
enum reconcile_format reconcile_file_sniff(const char *text, size_t len);

#endif
