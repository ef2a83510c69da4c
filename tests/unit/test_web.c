/* Unit tests for the dashboard's file server (collector/web.c): which
 * Accept-Encoding values get gzip, and that the embedded files are all there. */
#include <string.h>

#include "unit.h"
#include "web.h"

struct ae_case {
	const char *name;
	const char *value;
	bool gzip;
};

static const struct ae_case ae_cases[] = {
	{ "web_gzip_when_listed", "gzip", true },
	{ "web_gzip_among_others", "deflate, gzip, br", true },
	{ "web_gzip_any_case_and_spaces", "br ,  GZIP ;q=0.5", true },
	{ "web_gzip_for_star", "*", true },
	{ "web_no_gzip_without_header", NULL, false },
	{ "web_no_gzip_when_empty", "", false },
	{ "web_no_gzip_for_identity", "identity", false },
	{ "web_no_gzip_at_q_zero", "gzip;q=0", false },
	{ "web_no_gzip_at_q_zero_point_zero", "gzip; q=0.000", false },
	{ "web_gzip_at_q_point_one", "gzip;q=0.1", true },
	{ "web_no_gzip_for_lookalike", "x-gzip-not, gzipped", false },
};

UNIT_TEST(web_accepts_gzip_table)
{
	for (size_t i = 0; i < sizeof(ae_cases) / sizeof(ae_cases[0]); i++) {
		const struct ae_case *c = &ae_cases[i];
		CHECK_MSG(web_accepts_gzip(c->value) == c->gzip, "%s: \"%s\" gave %s", c->name,
			  c->value ? c->value : "(none)", c->gzip ? "no gzip" : "gzip");
	}
}

UNIT_TEST(web_embeds_the_page_its_assets_and_their_gzip)
{
	const char *need[] = { "index.html", "app.js", "style.css" };

	for (size_t n = 0; n < sizeof(need) / sizeof(need[0]); n++) {
		int found = 0;
		for (int i = 0; i < web_files_count; i++) {
			const struct web_file *f = &web_files[i];
			if (strcmp(f->name, need[n]) != 0)
				continue;
			found = 1;
			CHECK_MSG(f->len > 0 && f->gzlen > 0 && strlen(f->hash) == 16, "%s",
				  f->name);
			CHECK_MSG((unsigned char)f->gz[0] == 0x1f &&
					  (unsigned char)f->gz[1] == 0x8b,
				  "%s: not gzip", f->name);
		}
		CHECK_MSG(found, "%s is not embedded", need[n]);
	}
}
