/* jsoncheck_object: what the sink accepts as row metadata without cJSON. */
#include <cJSON.h>
#include <string.h>

#include "jsoncheck.h"
#include "unit.h"

static const char *const valid[] = {
	"{}",
	" { } ",
	"{\"a\":1}",
	"{\"a\":-0.5e+3,\"b\":[1,2,{\"c\":null}],\"d\":true,\"e\":false}",
	"{\"s\":\"tab\\t quote\\\" \\u00e9 slash\\/\"}",
	"{\"nested\":{\"x\":{\"y\":[[],{}]}}}",
	"{\"utf8\":\"\xc3\xa9\"}",
	"{\"pair\":\"\\ud83d\\ude00\"}",
	"\n{\"a\" : [ 1 , 2 ] }\n",
};

static const char *const invalid[] = {
	"",
	"[]",
	"\"s\"",
	"1",
	"{",
	"}",
	"{\"a\"}",
	"{\"a\":}",
	"{a:1}",
	"{\"a\":1,}",
	"{\"a\":1}{}",
	"{\"a\":01}",
	"{\"a\":1.}",
	"{\"a\":.5}",
	"{\"a\":tru}",
	"{\"a\":\"x}",
	"{\"a\":\"\\x\"}",
	"{\"a\":\"\\u12g4\"}",
	"{\"a\":\"ctl\x01\"}",
	"{\"a\":[1,]}",
	"{\"a\":1 \"b\":2}",
	"{'a':1}",
	"{\"a\":-}",
	"{\"a\":1e}",
	"{\"a\":\"\\ud800\"}",
	"{\"a\":\"\\udc00\"}",
	"{\"a\":\"\\ud800\\u0041\"}",
};

UNIT_TEST(jsoncheck_accepts_json_objects)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		bool nul = true;

		CHECK_MSG(jsoncheck_object(valid[i], strlen(valid[i]), &nul) && !nul,
			  "rejected %s, or saw a NUL", valid[i]);
		/* cJSON agrees that these are objects. */
		cJSON *j = cJSON_Parse(valid[i]);
		CHECK_MSG(cJSON_IsObject(j), "cJSON disagrees on %s", valid[i]);
		cJSON_Delete(j);
	}
}

UNIT_TEST(jsoncheck_rejects_everything_else)
{
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		bool nul;

		CHECK_MSG(!jsoncheck_object(invalid[i], strlen(invalid[i]), &nul), "accepted %s",
			  invalid[i]);
	}
}

UNIT_TEST(jsoncheck_bounds_depth_and_length)
{
	char deep[400];
	size_t n = 0;

	deep[n++] = '{';
	deep[n++] = '"', deep[n++] = 'a', deep[n++] = '"', deep[n++] = ':';
	for (int i = 0; i < 100; i++)
		deep[n++] = '[';
	for (int i = 0; i < 100; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	bool nul;

	CHECK(!jsoncheck_object(deep, n, &nul));	  /* deeper than 64 */
	CHECK(!jsoncheck_object("{\"a\":1}", 6, &nul));	  /* cut short by len */
	CHECK(jsoncheck_object("{\"a\":1}xyz", 7, &nul)); /* len ends before the junk */
}

UNIT_TEST(jsoncheck_reports_nul_escapes_and_only_those)
{
	static const struct {
		const char *json;
		bool nul;
	} cases[] = {
		{ "{\"a\":\"\\u0000\"}", true },
		{ "{\"a\":[{\"b\":\"x\\u0000y\"}]}", true }, /* nested */
		{ "{\"\\u0000\":1}", true },		     /* in a key */
		{ "{\"a\":\"\\\\\\u0000\"}", true },	     /* a backslash, then a NUL */
		{ "{\"path\":\"C:\\\\u0000\"}", false },     /* the text C:\u0000 */
		{ "{\"a\":\"\\u0001\\u0100\"}", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool nul = !cases[i].nul;

		CHECK_MSG(jsoncheck_object(cases[i].json, strlen(cases[i].json), &nul) &&
				  nul == cases[i].nul,
			  "%s: nul %d", cases[i].json, nul);
	}
}

UNIT_TEST(jsoncheck_refuses_raw_control_characters_over_the_real_length)
{
	/* The collector answers 400 for these; the sink must refuse them too. */
	static const struct {
		const char *json;
		size_t len;
	} cases[] = {
		{ "{\"a\":\"x\0y\"}", 11 },   /* a raw NUL: cJSON would stop there */
		{ "{\"a\":\"x\ty\"}", 11 },   /* raw tab */
		{ "{\"a\":\"x\ny\"}", 11 },   /* raw newline */
		{ "{\"a\":\"x\x1fy\"}", 11 }, /* U+001F, the last control character */
		{ "{\"k\0\":1}", 9 },	      /* in a key */
		{ "{\"a\":1\0}", 8 },	      /* outside a string */
		{ "{\"a\":1}\0", 8 },	      /* after the object */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool nul;

		CHECK_MSG(!jsoncheck_object(cases[i].json, cases[i].len, &nul), "case %zu accepted",
			  i);
	}
}

UNIT_TEST(jsoncheck_accepts_duplicate_keys_as_the_collector_does_in_metadata)
{
	/* Metadata keeps jsonb's rule (the last wins) in both programs. */
	bool nul;

	CHECK(jsoncheck_object("{\"k\":1,\"k\":2}", 13, &nul) && !nul);
	CHECK(jsoncheck_object("{\"tenant\":\"a\",\"tenant\":\"b\"}", 27, &nul) && !nul);
}

UNIT_TEST(jsoncheck_info_names_the_member_that_holds_a_nul_escape)
{
	static const char text[] = "{\"period\":\"day\",\"project\":{\"x\":\"a\\u0000b\"},\"z\":1}";
	struct jsoncheck_info info;

	CHECK(jsoncheck_object_info(text, strlen(text), &info) && info.nul);
	CHECK(info.nul_key && info.nul_key_len == 7 && strncmp(info.nul_key, "project", 7) == 0);
	CHECK(info.values == 8); /* 4 keys and their 4 values */
}

UNIT_TEST(jsoncheck_info_names_where_and_in_which_member_the_text_failed)
{
	static const char raw_nul[] = "{\"period\":\"day\",\"project\":\"a\0b\"}";
	static const char trailing[] = "{\"a\":1} junk";
	struct jsoncheck_info info;

	CHECK(!jsoncheck_object_info(raw_nul, sizeof(raw_nul) - 1, &info));
	CHECK(info.key && info.key_len == 7 && strncmp(info.key, "project", 7) == 0);
	CHECK(info.at == 28 && !info.trailing); /* the raw NUL itself */
	CHECK(!jsoncheck_object_info(trailing, strlen(trailing), &info));
	CHECK(info.trailing && !info.key && info.at == 8);
}
