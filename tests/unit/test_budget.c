/* collector/budget.c and webhook.c without a database: field checks, threshold
 * parsing, and the webhook signature over delivery id, timestamp and body. */
#include <string.h>

#include "budget.h"
#include "unit.h"
#include "webhook.h"

static bool budget_check(const char *limit, const char *period, const char *webhook,
			 const char *secret, char *err, size_t errlen)
{
	struct budget_spec s;

	memset(&s, 0, sizeof(s));
	s.name = "b";
	s.period = period;
	s.limit_usd = limit;
	s.webhook = webhook;
	s.webhook_secret = secret;
	return budget_spec_check(&s, err, errlen);
}

UNIT_TEST(budget_accepts_a_decimal_limit_and_a_calendar_period)
{
	char err[256];

	CHECK(budget_check("250.00", "month", NULL, NULL, err, sizeof(err)));
	CHECK(budget_check("0.000000000001", "week", NULL, NULL, err, sizeof(err)));
	CHECK(budget_check("3", "day", "https://h.example/x", "k", err, sizeof(err)));
}

UNIT_TEST(budget_refuses_bad_limits_naming_limit_usd)
{
	static const char *const bad[] = {
		"", "0", "0.00", "-1", "1e3", "1.", ".5", "1,5", "1.0000000000001", NULL
	};
	char err[256];

	for (const char *const *b = bad; *b; b++)
		CHECK_MSG(!budget_check(*b, "day", NULL, NULL, err, sizeof(err)) &&
				  strncmp(err, "limit_usd", 9) == 0,
			  "%s accepted or error \"%s\"", *b, err);
}

UNIT_TEST(budget_refuses_a_period_that_is_not_day_week_or_month)
{
	char err[256];

	CHECK(!budget_check("1", "year", NULL, NULL, err, sizeof(err)));
	CHECK(strncmp(err, "period", 6) == 0);
}

UNIT_TEST(budget_needs_a_secret_with_a_webhook_and_an_http_url)
{
	char err[256];

	CHECK(!budget_check("1", "day", "http://h/", NULL, err, sizeof(err)));
	CHECK(strncmp(err, "webhook_secret", 14) == 0);
	CHECK(!budget_check("1", "day", "ftp://h/", "k", err, sizeof(err)));
	CHECK(strncmp(err, "webhook", 7) == 0);
	CHECK(!budget_check("1", "day", NULL, "k", err, sizeof(err)));
}

UNIT_TEST(budget_thresholds_parse_commas_and_refuse_junk)
{
	struct budget_spec s;
	char err[256];

	memset(&s, 0, sizeof(s));
	CHECK(budget_thresholds_parse(&s, "50,80,100", err, sizeof(err)) && s.nthresholds == 3 &&
	      s.thresholds[0] == 50 && s.thresholds[2] == 100);
	CHECK(!budget_thresholds_parse(&s, "50,,80", err, sizeof(err)));
	CHECK(!budget_thresholds_parse(&s, "50,x", err, sizeof(err)));
	CHECK(!budget_thresholds_parse(&s, "", err, sizeof(err)));
	CHECK(!budget_thresholds_parse(&s, "-5", err, sizeof(err)));
}

UNIT_TEST(budget_names_are_short_and_plain)
{
	CHECK(budget_name_ok("team-a_1.x"));
	CHECK(!budget_name_ok(""));
	CHECK(!budget_name_ok("a b"));
	CHECK(!budget_name_ok("a/b"));
	CHECK(!budget_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

UNIT_TEST(webhook_sign_covers_delivery_timestamp_and_body)
{
	char a[65], b[65], c[65];
	const char *body = "{\"event\":\"budget.threshold\"}";

	CHECK(webhook_sign("k", "17", 1700000000, body, strlen(body), a));
	CHECK(webhook_sign("k", "18", 1700000000, body, strlen(body), b));
	CHECK(webhook_sign("k", "17", 1700000001, body, strlen(body), c));
	CHECK(strcmp(a, b) != 0 && strcmp(a, c) != 0);
	/* python3 -c 'import hmac, hashlib; print(hmac.new(b"k",
	 *   b"17.1700000000.{\"event\":\"budget.threshold\"}", hashlib.sha256).hexdigest())' */
	CHECK_MSG(strcmp(a, "ca7b548133648f67a1ac597bb1f6e20a6827e4b5c456a0e9ac7fdd31ad0aedf4") ==
			  0,
		  "got %s", a);
}
