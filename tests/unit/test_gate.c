/* Unit tests for the front gate's head reader (collector/gate.c): where a head
 * ends, and which framing it refuses before evhttp sees the request. */
#include <event2/buffer.h>
#include <string.h>

#include "gate.h"
#include "unit.h"

struct head_case {
	const char *name;
	const char *head;
	bool ok;
	const char *expect; /* in err when !ok */
	unsigned long long length;
	bool chunked, may_have_body;
};

static const struct head_case head_cases[] = {
	{ "gate_accepts_plain_post", "POST /v1/ingest HTTP/1.1\r\nContent-Length: 12\r\n\r\n", true,
	  "", 12, false, true },
	{ "gate_accepts_identical_repeated_content_length",
	  "POST /v1/ingest HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", true, "", 5,
	  false, true },
	{ "gate_refuses_two_different_content_lengths",
	  "POST /v1/ingest HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", false,
	  "two different Content-Length headers (5 and 6)", 0, false, true },
	{ "gate_refuses_content_length_list", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
	  false, "Content-Length \"5, 5\" is not a number", 0, false, true },
	{ "gate_refuses_signed_content_length", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
	  false, "Content-Length", 0, false, true },
	{ "gate_accepts_chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", true, "",
	  0, true, true },
	{ "gate_refuses_other_transfer_encoding",
	  "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, "Transfer-Encoding",
	  0, false, true },
	{ "gate_refuses_length_and_chunked",
	  "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false,
	  "both Content-Length and Transfer-Encoding", 0, false, true },
	{ "gate_refuses_folded_header", "POST / HTTP/1.1\r\nContent-Length: 3\r\n 4\r\n\r\n", false,
	  "folding", 0, false, true },
	{ "gate_refuses_header_without_colon", "GET / HTTP/1.1\r\nnocolon\r\n\r\n", false,
	  "malformed header line", 0, false, false },
	{ "gate_refuses_malformed_request_line", "GET /\r\n\r\n", false, "malformed request line",
	  0, false, false },
	{ "gate_refuses_unknown_method", "BREW /pot HTTP/1.1\r\n\r\n", false,
	  "method BREW is not supported", 0, false, false },
	{ "gate_get_has_no_body", "GET /v1/rollups?x=1 HTTP/1.1\r\nContent-Length: 9\r\n\r\n", true,
	  "", 9, false, false },
	{ "gate_reads_lf_only_lines", "POST /v1/ingest HTTP/1.0\nContent-Length: 7\n\n", true, "",
	  7, false, true },
};

/* Feeds text to gate_head_end a byte at a time, as a trickling client would. */
static size_t head_end(const char *text, size_t n)
{
	struct evbuffer *b = evbuffer_new();
	size_t line = 0, scan = 0, end = 0;

	for (size_t i = 0; i < n && !end; i++) {
		evbuffer_add(b, text + i, 1);
		end = gate_head_end(b, &line, &scan);
	}
	evbuffer_free(b);
	return end;
}

UNIT_TEST(gate_parse_head_table)
{
	for (size_t i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
		const struct head_case *c = &head_cases[i];
		struct gate_head h;
		char err[256] = "";
		size_t len = head_end(c->head, strlen(c->head));
		bool ok;

		CHECK_MSG(len == strlen(c->head), "%s: head length %zu of %zu", c->name, len,
			  strlen(c->head));
		ok = gate_parse_head(c->head, len, &h, err, sizeof(err));
		CHECK_MSG(ok == c->ok, "%s: got %s (%s)", c->name, ok ? "ok" : "refused", err);
		if (!c->ok)
			CHECK_MSG(strstr(err, c->expect) != NULL, "%s: error \"%s\"", c->name, err);
		else {
			CHECK_MSG(h.length == c->length, "%s: length %llu", c->name, h.length);
			CHECK_MSG(h.chunked == c->chunked, "%s: chunked", c->name);
			CHECK_MSG(h.may_have_body == c->may_have_body, "%s: body", c->name);
		}
	}
}

UNIT_TEST(gate_head_end_waits_for_the_empty_line)
{
	const char *partial = "POST /v1/ingest HTTP/1.1\r\nContent-Length: 3\r\n";

	CHECK(head_end(partial, strlen(partial)) == 0);
	CHECK(head_end("GET / HTTP/1.1\r\n\r\nabc", 21) == 18);
	CHECK(head_end("GET / HTTP/1.1\n\nabc", 19) == 16);
}

UNIT_TEST(gate_takes_path_without_query_and_first_authorization)
{
	const char *head =
		"POST http://h:1/v1/ingest?a=b HTTP/1.1\r\nAuthorization:  Bearer k1 \r\n"
		"Authorization: Bearer k2\r\n\r\n";
	struct gate_head h;
	char err[128];

	CHECK(gate_parse_head(head, strlen(head), &h, err, sizeof(err)));
	CHECK(strcmp(h.path, "/v1/ingest") == 0);
	CHECK(strcmp(h.authorization, "Bearer k1") == 0);
}
