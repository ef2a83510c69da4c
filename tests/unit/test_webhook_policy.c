/* collector/webhook_policy.c: which receiver addresses a webhook may reach,
 * the decimal and other numeric host forms, and list syntax errors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "unit.h"
#include "webhook_policy.h"

struct policy_case {
	const char *name;
	const char *allow, *deny;
	const char *host; /* the URL's host */
	const char *addr; /* what it resolved to; NULL: host is a literal */
	const char *why;  /* NULL: allowed; else a part of the refusal */
};

static const struct policy_case policy_cases[] = {
	{ "policy_denies_loopback_by_default", "", "", "127.0.0.1", NULL,
	  "127.0.0.0/8 (loopback), denied by default" },
	{ "policy_denies_a_decimal_loopback_host", "", "", "2130706433", NULL,
	  "host 2130706433 is 127.0.0.1, in 127.0.0.0/8 (loopback)" },
	{ "policy_denies_a_hex_and_short_loopback_host", "", "", "0x7f.1", NULL,
	  "is 127.0.0.1, in 127.0.0.0/8" },
	{ "policy_denies_the_metadata_address", "", "", "169.254.169.254", NULL,
	  "169.254.169.254/32 (cloud metadata)" },
	{ "policy_denies_the_ipv6_metadata_address", "", "", "fd00:ec2::254", NULL,
	  "(cloud metadata)" },
	{ "policy_denies_ipv6_loopback", "", "", "::1", NULL, "::1/128 (loopback)" },
	{ "policy_denies_unique_local", "", "", "fd12:3456::1", NULL, "fc00::/7 (unique-local)" },
	{ "policy_denies_link_local_v6", "", "", "fe80::1", NULL, "fe80::/10 (link-local)" },
	{ "policy_denies_private_ranges", "", "", "172.20.1.1", NULL, "172.16.0.0/12 (private)" },
	{ "policy_denies_ipv4_mapped_loopback", "", "", "::ffff:127.0.0.1", NULL,
	  "(IPv4 127.0.0.1), in 127.0.0.0/8" },
	{ "policy_denies_nat64_private", "", "", "64:ff9b::a00:1", NULL, "10.0.0.0/8 (private)" },
	{ "policy_denies_this_network", "", "", "0.0.0.0", NULL, "0.0.0.0/8" },
	{ "policy_judges_a_name_by_its_address", "", "", "hooks.example", "10.1.2.3",
	  "host hooks.example is 10.1.2.3, in 10.0.0.0/8 (private)" },
	{ "policy_allows_a_public_address", "", "", "93.184.216.34", NULL, NULL },
	{ "policy_allows_a_public_name", "", "", "hooks.example", "93.184.216.34", NULL },
	{ "policy_allow_cidr_overrides_a_default", "127.0.0.1/32", "", "127.0.0.1", NULL, NULL },
	{ "policy_allow_covers_only_its_prefix", "127.0.0.1/32", "", "127.0.0.2", NULL,
	  "127.0.0.0/8 (loopback)" },
	{ "policy_allow_name_overrides_a_default", "hooks.internal", "", "Hooks.Internal.",
	  "10.9.9.9", NULL },
	{ "policy_allow_wildcard_matches_subdomains", "*.corp.example", "", "a.b.corp.example",
	  "10.9.9.9", NULL },
	{ "policy_allow_wildcard_skips_the_apex", "*.corp.example", "", "corp.example", "10.9.9.9",
	  "10.0.0.0/8" },
	{ "policy_name_rules_never_match_a_numeric_host", "127.0.0.1x", "", "2130706433", NULL,
	  "loopback" },
	{ "policy_longer_deny_prefix_beats_allow", "10.0.0.0/8", "10.9.9.9", "10.9.9.9", NULL,
	  "denied by webhook_deny entry 10.9.9.9" },
	{ "policy_deny_wins_a_tie", "10.0.0.0/8", "10.0.0.0/8", "10.1.1.1", NULL,
	  "webhook_deny entry 10.0.0.0/8" },
	{ "policy_deny_everything_but_a_name", "hooks.slack.example", "0.0.0.0/0,::/0",
	  "hooks.slack.example", "93.184.216.34", NULL },
	{ "policy_deny_everything_refuses_other_names", "hooks.slack.example", "0.0.0.0/0 ::/0",
	  "evil.example", "93.184.216.34", "webhook_deny entry 0.0.0.0/0" },
	{ "policy_deny_name_refuses_a_public_host", "", "*.evil.example", "x.evil.example",
	  "93.184.216.34", "webhook_deny entry *.evil.example" },
	{ "policy_allow_everything_turns_defaults_off", "0.0.0.0/0", "", "127.0.0.1", NULL, NULL },
};

static void policy_addr(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &((struct sockaddr_in *)ss)->sin_addr) == 1)
		ss->ss_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1)
		ss->ss_family = AF_INET6;
}

UNIT_TEST(webhook_policy_decides_by_the_most_specific_rule)
{
	for (size_t i = 0; i < sizeof(policy_cases) / sizeof(policy_cases[0]); i++) {
		const struct policy_case *c = &policy_cases[i];
		char err[256], why[512] = "";
		struct webhook_policy *p = webhook_policy_new(c->allow, c->deny, err, sizeof(err));
		struct sockaddr_storage ss;
		bool ok;

		CHECK_MSG(p != NULL, "%s: %s", c->name, err);
		if (!p)
			continue;
		if (c->addr)
			policy_addr(c->addr, &ss);
		else
			CHECK_MSG(webhook_policy_literal(c->host, &ss), "%s: not a literal",
				  c->name);
		ok = webhook_policy_allows(p, c->host, (struct sockaddr *)&ss, why, sizeof(why));
		if (c->why)
			CHECK_MSG(!ok && strstr(why, c->why), "%s: allowed=%d why=\"%s\"", c->name,
				  ok, why);
		else
			CHECK_MSG(ok, "%s: refused: %s", c->name, why);
		webhook_policy_free(p);
	}
}

UNIT_TEST(webhook_policy_rejects_bad_entries_naming_them)
{
	static const struct {
		const char *allow, *deny, *want;
	} bad[] = {
		{ "10.0.0.0/33", "",
		  "webhook_allow: \"10.0.0.0/33\": prefix length must be 0..32" },
		{ "", "fd00::/129", "webhook_deny: \"fd00::/129\": prefix length must be 0..128" },
		{ "10.0.0", "",
		  "webhook_allow: \"10.0.0\": not an IPv4 address, CIDR or host name" },
		{ "a/b", "", "webhook_allow: \"a/b\": not an IPv4 or IPv6 address" },
		{ "", "hooks.example, http://x", "webhook_deny: \"http://x\"" },
		{ "*.", "", "webhook_allow: \"*.\": not a host name" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_MSG(!webhook_policy_lists_ok(bad[i].allow, bad[i].deny, err, sizeof(err)) &&
				  strstr(err, bad[i].want),
			  "want \"%s\", got \"%s\"", bad[i].want, err);
	}
	CHECK(webhook_policy_lists_ok(" 127.0.0.1/32 , ::1 *.corp.example,hooks.example ", "", err,
				      sizeof(err)));
}

UNIT_TEST(webhook_policy_reads_numeric_hosts_as_the_c_library_does)
{
	struct sockaddr_storage ss;
	char text[64];

	CHECK(webhook_policy_literal("2130706433", &ss) && ss.ss_family == AF_INET);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text));
	CHECK_MSG(strcmp(text, "127.0.0.1") == 0, "got %s", text);
	CHECK(webhook_policy_literal("017700000001", &ss));
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text));
	CHECK_MSG(strcmp(text, "127.0.0.1") == 0, "octal: got %s", text);
	CHECK(webhook_policy_literal("::1", &ss) && ss.ss_family == AF_INET6);
	CHECK(!webhook_policy_literal("hooks.example", &ss));
	CHECK(!webhook_policy_literal("1e100.net", &ss));
}
