/* The read API's parameter table and the text rules for what a peer sends in
 * a query string: splitting and percent-decoding, UTF-8 without controls, and
 * how much of a bad value a message may echo. */
#include "rollup_params.h"

#include <stdio.h>
#include <string.h>

#include "row.h"

#define K_RU ROLLUP_KIND_ROLLUPS
#define K_CO ROLLUP_KIND_COSTS
#define K_RO ROLLUP_KIND_ROWS
#define K_UN ROLLUP_KIND_UNPRICED
#define K_US ROLLUP_KIND_USAGE

/* Order matters: it is the order of the list in "unknown parameter" messages. */
static const struct rollup_param_def rollup_params_table[] = {
	{ "from", K_RU | K_RO | K_UN | K_US, ROLLUP_P_FROM, 0 },
	{ "to", K_RU | K_RO | K_UN | K_US, ROLLUP_P_TO, 0 },
	{ "start", K_CO | K_US, ROLLUP_P_START, 0 },
	{ "end", K_CO | K_US, ROLLUP_P_END, 0 },
	{ "period", K_CO | K_US, ROLLUP_P_PERIOD, 0 },
	{ "granularity", K_RU, ROLLUP_P_GRANULARITY, 0 },
	{ "group_by", K_RU, ROLLUP_P_GROUP_BY, 0 },
	{ "format", K_RU | K_US, ROLLUP_P_FORMAT, 0 },
	{ "csv_raw", K_RU, ROLLUP_P_CSV_RAW, 0 },
	{ "limit", K_RO, ROLLUP_P_LIMIT, 0 },
	{ "next", K_RO, ROLLUP_P_NEXT, 0 },
	{ "project", K_RU | K_CO | K_RO | K_UN | K_US, ROLLUP_P_FILTER, ROLLUP_COL_PROJECT },
	{ "agent", K_RU | K_RO, ROLLUP_P_FILTER, ROLLUP_COL_AGENT },
	{ "tenant", K_RU | K_CO | K_RO | K_UN | K_US, ROLLUP_P_FILTER, ROLLUP_COL_TENANT },
	{ "modality", K_RU | K_RO | K_UN, ROLLUP_P_FILTER, ROLLUP_COL_MODALITY },
	{ "provider", K_RU | K_RO | K_UN, ROLLUP_P_FILTER, ROLLUP_COL_PROVIDER },
	{ "model", K_RU | K_RO, ROLLUP_P_FILTER, ROLLUP_COL_MODEL },
	{ "session_id", K_RO, ROLLUP_P_FILTER, ROLLUP_COL_SESSION },
};
#define ROLLUP_PARAMS_N (int)(sizeof(rollup_params_table) / sizeof(rollup_params_table[0]))
_Static_assert(ROLLUP_PARAMS_N == ROLLUP_PARAMS_NDEFS, "ROLLUP_PARAMS_NDEFS is the table's size");

/* Result names (the API's), indexed by enum rollup_col and rollup_granularity. */
static const char *const rollup_params_cols[ROLLUP_NCOLS] = {
	"project", "agent", "tenant", "modality", "provider", "model", "session_id",
};
static const char *const rollup_params_grans[ROLLUP_NGRANULARITIES] = { "hour", "day", "month",
									"total" };

int rollup_params_lookup(enum rollup_kind kind, const char *name)
{
	for (int t = 0; t < ROLLUP_PARAMS_N; t++)
		if (strcmp(rollup_params_table[t].name, name) == 0 &&
		    (rollup_params_table[t].kinds & (int)kind))
			return t;
	return -1;
}

const struct rollup_param_def *rollup_params_def(int i)
{
	return &rollup_params_table[i];
}

void rollup_params_list(enum rollup_kind kind, char *out, size_t outlen)
{
	size_t pos = 0;

	out[0] = '\0';
	for (int i = 0; i < ROLLUP_PARAMS_N && pos < outlen; i++)
		if (rollup_params_table[i].kinds & (int)kind)
			pos += (size_t)snprintf(out + pos, outlen - pos, "%s%s", pos ? ", " : "",
						rollup_params_table[i].name);
}

const char *rollup_params_path(enum rollup_kind k)
{
	return k == ROLLUP_KIND_ROLLUPS	   ? "/v1/rollups"
	       : k == ROLLUP_KIND_COSTS	   ? "/v1/costs"
	       : k == ROLLUP_KIND_UNPRICED ? "/v1/billing/unpriced"
	       : k == ROLLUP_KIND_USAGE	   ? "/v1/billing/usage"
					   : "/v1/rows";
}

const char *rollup_params_col_name(enum rollup_col c)
{
	return rollup_params_cols[c];
}

const char *rollup_params_granularity_name(enum rollup_granularity g)
{
	return rollup_params_grans[g];
}

int rollup_params_clip(const char *s, int max)
{
	int n = (int)strnlen(s, (size_t)max + 1);

	if (n <= max)
		return n;
	for (n = max; n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; n--)
		;
	return n;
}

int rollup_params_check_text(const char *what, const char *s, char *err, size_t errlen)
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
	return 200;
}

static int rollup_params_hex(char c)
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
static size_t rollup_params_url_decode(char *s)
{
	char *w = s;

	for (const char *r = s; *r; r++) {
		if (*r == '+') {
			*w++ = ' ';
		} else if (*r == '%' && rollup_params_hex(r[1]) >= 0 &&
			   rollup_params_hex(r[2]) >= 0) {
			*w++ = (char)(rollup_params_hex(r[1]) * 16 + rollup_params_hex(r[2]));
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* A name fit to echo in a message, or a stand-in. */
static const char *rollup_params_echo_name(const char *name)
{
	char scratch[8];

	if (strlen(name) > 64 ||
	    rollup_params_check_text("", name, scratch, sizeof(scratch)) != 200)
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
				bool nul = rollup_params_url_decode(p) != strlen(p);
				snprintf(err, errlen, "%s: expected name=value",
					 nul ? "a parameter" : rollup_params_echo_name(p));
				return 400;
			}
			*eq = '\0';
			if (rollup_params_url_decode(p) != strlen(p)) {
				snprintf(err, errlen, "a parameter name holds a NUL byte (%%00)");
				return 400;
			}
			if (rollup_params_url_decode(eq + 1) != strlen(eq + 1)) {
				snprintf(err, errlen, "%s: holds a NUL byte (%%00)",
					 rollup_params_echo_name(p));
				return 400;
			}
			params[*nparams].name = p;
			params[*nparams].value = eq + 1;
			(*nparams)++;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 200;
}
