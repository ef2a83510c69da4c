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
		CHECK_MSG(jsoncheck_object(valid[i], strlen(valid[i])), "rejected %s", valid[i]);
		/* cJSON agrees that these are objects. */
		cJSON *j = cJSON_Parse(valid[i]);
		CHECK_MSG(cJSON_IsObject(j), "cJSON disagrees on %s", valid[i]);
		cJSON_Delete(j);
	}
}

UNIT_TEST(jsoncheck_rejects_everything_else)
{
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		CHECK_MSG(!jsoncheck_object(invalid[i], strlen(invalid[i])), "accepted %s",
			  invalid[i]);
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
	CHECK(!jsoncheck_object(deep, n));	    /* deeper than 64 */
	CHECK(!jsoncheck_object("{\"a\":1}", 6));   /* cut short by len */
	CHECK(jsoncheck_object("{\"a\":1}xyz", 7)); /* len ends before the junk */
}
