/* The provider usage file that `vgcollector reconcile` and POST /v1/reconcile
 * compare against: CSV or JSON records of model, cost and units (per day when
 * a date is given), parsed into checked decimal text. Pure: no I/O. */
#ifndef VGC_RECONCILE_FILE_H
#define VGC_RECONCILE_FILE_H

#include <stdbool.h>
#include <stddef.h>

enum reconcile_format { RECONCILE_CSV = 0, RECONCILE_JSON };

/* One record of the file. Numbers are the file's own decimal text, checked
 * to be plain decimals PostgreSQL numeric reads exactly. */
struct reconcile_record {
	int line;	  /* where the record starts */
	char *model;	  /* owned; the provider prefix "<provider>/" removed */
	char date[11];	  /* YYYY-MM-DD, "" when the file has no dates */
	char *cost;	  /* owned: cost_usd */
	char *units[2];	  /* owned: the unit columns (units[1] NULL when one) */
	char *n_requests; /* owned; NULL when not given */
};

struct reconcile_file {
	struct reconcile_record *recs; /* owned */
	int n, cap;
	bool per_day; /* the file has a date column: compare per model and day */
};

/* The unit columns a provider's file carries ("input_tokens",
 * "output_tokens"), NULL-terminated; any provider not named in the table
 * takes the one generic column "units". */
const char *const *reconcile_file_unit_columns(const char *provider);

/* True when name is a provider name we can reconcile: 1-64 of a-z, 0-9, '.',
 * '-', '_', starting with a letter or digit. */
bool reconcile_file_provider_valid(const char *name);

/* Parses text (len bytes) as fmt for provider. Dates must lie in
 * [from_us, to_us) (epoch microseconds, whole UTC days). Returns true and fills
 * out (release with reconcile_file_release), or false with err naming the
 * line and column ("line 3, column 2 (cost_usd): ...") and out empty. */
bool reconcile_file_parse(const char *provider, const char *text, size_t len,
			  enum reconcile_format fmt, long long from_us, long long to_us,
			  struct reconcile_file *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void reconcile_file_release(struct reconcile_file *f);

/* What is wrong with s as a plain decimal PostgreSQL numeric reads exactly,
 * [-]digits[.digits][e[+-]digits], or NULL when nothing. sign: a leading '-'
 * is allowed; integer: digits only. */
const char *reconcile_file_number_problem(const char *s, bool sign, bool integer);

/* The format a file's text looks like: JSON when its first non-blank byte is
 * '[' or '{', else CSV. */
enum reconcile_format reconcile_file_sniff(const char *text, size_t len);

#endif
