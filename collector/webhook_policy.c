/* Webhook address policy: parses webhook_allow / webhook_deny and decides, per
 * resolved address, whether a post may connect. The built-in table is the
 * default; an operator's entry that matches overrides it. */
#include "webhook_policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct webhook_rule {
	bool deny;
	int family; /* AF_INET or AF_INET6; 0 for a host pattern */
	unsigned char addr[16];
	int prefix;	   /* bits */
	bool wildcard;	   /* "*.suffix": name holds ".suffix" */
	char name[256];	   /* host pattern, lower case */
	const char *label; /* built-in rules: what the range is */
	char text[300];	   /* the entry as written, for messages */
};

struct webhook_policy {
	struct webhook_rule *rules; /* the operator's, allow and deny */
	int nrules;
};

/* Denied unless an operator's entry says otherwise. */
static const struct {
	const char *cidr, *label;
} webhook_policy_defaults[] = {
	{ "0.0.0.0/8", "this network" },
	{ "10.0.0.0/8", "private" },
	{ "100.64.0.0/10", "shared address space" },
	{ "100.100.100.200/32", "cloud metadata" },
	{ "127.0.0.0/8", "loopback" },
	{ "169.254.0.0/16", "link-local" },
	{ "169.254.169.254/32", "cloud metadata" },
	{ "172.16.0.0/12", "private" },
	{ "192.0.0.0/24", "IETF protocol assignments" },
	{ "192.168.0.0/16", "private" },
	{ "198.18.0.0/15", "benchmarking" },
	{ "224.0.0.0/4", "multicast" },
	{ "240.0.0.0/4", "reserved" },
	{ "::/128", "unspecified" },
	{ "::1/128", "loopback" },
	{ "::/96", "IPv4-compatible" },
	{ "2001::/32", "Teredo" },
	{ "2002::/16", "6to4" },
	{ "fc00::/7", "unique-local" },
	{ "fd00:ec2::254/128", "cloud metadata" },
	{ "fe80::/10", "link-local" },
	{ "ff00::/8", "multicast" },
};

#define WEBHOOK_POLICY_NDEFAULTS                                                                   \
	(sizeof(webhook_policy_defaults) / sizeof(webhook_policy_defaults[0]))

/* An address with an optional /prefix into r. */
static bool webhook_policy_parse_cidr(const char *text, struct webhook_rule *r, char *why,
				      size_t whylen)
{
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	int max;

	if (n >= sizeof(addr)) {
		snprintf(why, whylen, "not an address");
		return false;
	}
	memcpy(addr, text, n);
	addr[n] = '\0';
	memset(r->addr, 0, sizeof(r->addr));
	if (inet_pton(AF_INET, addr, r->addr) == 1) {
		r->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, r->addr) == 1) {
		r->family = AF_INET6;
		max = 128;
	} else {
		snprintf(why, whylen, "not an IPv4 or IPv6 address");
		return false;
	}
	r->prefix = max;
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);

		if (!isdigit((unsigned char)slash[1]) || *end || v < 0 || v > max) {
			snprintf(why, whylen, "prefix length must be 0..%d", max);
			return false;
		}
		r->prefix = (int)v;
	}
	return true;
}

/* A host name or *.suffix: letters, digits, '-', '_' and dots, with a letter. */
static bool webhook_policy_parse_name(const char *text, struct webhook_rule *r, char *why,
				      size_t whylen)
{
	const char *s = text;
	bool letter = false;
	size_t n = 0;

	if (strncmp(s, "*.", 2) == 0) {
		r->wildcard = true;
		s++; /* keep the dot: ".suffix" */
	}
	if (strlen(s) >= sizeof(r->name) || !*s || (r->wildcard && !s[1])) {
		snprintf(why, whylen, "not a host name");
		return false;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!isalnum(c) && c != '-' && c != '_' && c != '.') {
			snprintf(why, whylen, "'%c' cannot appear in a host name or CIDR",
				 isprint(c) ? c : '?');
			return false;
		}
		letter |= isalpha(c) != 0;
		r->name[n++] = (char)tolower(c);
	}
	r->name[n] = '\0';
	if (!letter) {
		snprintf(why, whylen, "not an IPv4 address, CIDR or host name");
		return false;
	}
	return true;
}

static bool webhook_policy_parse_entry(const char *text, struct webhook_rule *r, char *why,
				       size_t whylen)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->text, sizeof(r->text), "%s", text);
	if (strchr(text, '/') || strchr(text, ':'))
		return webhook_policy_parse_cidr(text, r, why, whylen);
	if (webhook_policy_parse_cidr(text, r, why, whylen))
		return true;
	return webhook_policy_parse_name(text, r, why, whylen);
}

/* Appends list's entries to p (p NULL: syntax check only). */
static bool webhook_policy_add(struct webhook_policy *p, const char *key, const char *list,
			       bool deny, char *err, size_t errlen)
{
	const char *s = list ? list : "";

	for (;;) {
		struct webhook_rule r;
		char entry[300], why[128];
		size_t n;

		while (*s == ',' || isspace((unsigned char)*s))
			s++;
		if (!*s)
			return true;
		n = strcspn(s, ", \t\r\n");
		if (n >= sizeof(entry)) {
			snprintf(err, errlen, "%s: entry \"%.40s...\" is too long", key, s);
			return false;
		}
		memcpy(entry, s, n);
		entry[n] = '\0';
		s += n;
		if (!webhook_policy_parse_entry(entry, &r, why, sizeof(why))) {
			snprintf(err, errlen, "%s: \"%s\": %s", key, entry, why);
			return false;
		}
		r.deny = deny;
		if (p) {
			struct webhook_rule *grown =
				realloc(p->rules, (size_t)(p->nrules + 1) * sizeof(*grown));

			if (!grown) {
				snprintf(err, errlen, "%s: out of memory", key);
				return false;
			}
			p->rules = grown;
			p->rules[p->nrules++] = r;
		}
	}
}

bool webhook_policy_lists_ok(const char *allow, const char *deny, char *err, size_t errlen)
{
	return webhook_policy_add(NULL, "webhook_allow", allow, false, err, errlen) &&
	       webhook_policy_add(NULL, "webhook_deny", deny, true, err, errlen);
}

struct webhook_policy *webhook_policy_new(const char *allow, const char *deny, char *err,
					  size_t errlen)
{
	struct webhook_policy *p = calloc(1, sizeof(*p));

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!webhook_policy_add(p, "webhook_allow", allow, false, err, errlen) ||
	    !webhook_policy_add(p, "webhook_deny", deny, true, err, errlen)) {
		webhook_policy_free(p);
		return NULL;
	}
	return p;
}

void webhook_policy_free(struct webhook_policy *p)
{
	if (!p)
		return;
	free(p->rules);
	free(p);
}

bool webhook_policy_literal(const char *host, struct sockaddr_storage *out)
{
	struct sockaddr_in *in = (struct sockaddr_in *)out;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		return true;
	}
	/* inet_aton takes every form getaddrinfo does for IPv4, and stops at a
	 * space; a URL's host has none. */
	if (!strchr(host, ' ') && inet_aton(host, &in->sin_addr)) {
		in->sin_family = AF_INET;
		return true;
	}
	memset(out, 0, sizeof(*out));
	return false;
}

/* The address to match rules against: IPv4 for IPv4-mapped (::ffff:a.b.c.d)
 * and NAT64 (64:ff9b::a.b.c.d) addresses, which reach an IPv4 host. */
static int webhook_policy_norm(const struct sockaddr *sa, unsigned char out[16])
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
	const unsigned char *a6;

	memset(out, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	a6 = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (memcmp(a6, mapped, 12) == 0 || memcmp(a6, nat64, 12) == 0) {
		memcpy(out, a6 + 12, 4);
		return AF_INET;
	}
	memcpy(out, a6, 16);
	return AF_INET6;
}

static bool webhook_policy_in(const unsigned char *addr, int family, const unsigned char *net,
			      int netfamily, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;

	if (family != netfamily)
		return false;
	if (memcmp(addr, net, (size_t)full) != 0)
		return false;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));

		if ((addr[full] & mask) != (net[full] & mask))
			return false;
	}
	return true;
}

/* How specifically r matches (host, addr): -1 for no match; a host pattern
 * scores above any prefix length, an exact name above a wildcard. */
static int webhook_policy_score(const struct webhook_rule *r, const char *lhost, bool is_name,
				const unsigned char *addr, int family)
{
	if (r->family)
		return webhook_policy_in(addr, family, r->addr, r->family, r->prefix) ? r->prefix
										      : -1;
	if (!is_name)
		return -1;
	if (!r->wildcard)
		return strcmp(lhost, r->name) == 0 ? 2000 + (int)strlen(r->name) : -1;
	{
		size_t hl = strlen(lhost), nl = strlen(r->name);

		if (hl > nl && strcmp(lhost + hl - nl, r->name) == 0)
			return 1000 + (int)nl;
	}
	return -1;
}

bool webhook_policy_allows(const struct webhook_policy *p, const char *host,
			   const struct sockaddr *sa, char *why, size_t whylen)
{
	struct sockaddr_storage lit;
	unsigned char addr[16];
	char lhost[256], shown[INET6_ADDRSTRLEN + 40], v4[INET_ADDRSTRLEN], what[400];
	int family = webhook_policy_norm(sa, addr), best = -1, bestdef = -1;
	const struct webhook_rule *rule = NULL;
	bool is_name = !webhook_policy_literal(host, &lit);
	size_t n = strlen(host);

	/* Names compare in lower case without the root's trailing dot. */
	snprintf(lhost, sizeof(lhost), "%.*s", (int)(n && host[n - 1] == '.' ? n - 1 : n), host);
	for (char *c = lhost; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	for (int i = 0; p && i < p->nrules; i++) {
		int s = webhook_policy_score(&p->rules[i], lhost, is_name, addr, family);

		if (s > best || (s == best && s >= 0 && p->rules[i].deny && !rule->deny)) {
			best = s;
			rule = &p->rules[i];
		}
	}
	if (!inet_ntop(sa->sa_family,
		       sa->sa_family == AF_INET
			       ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
			       : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr,
		       shown, INET6_ADDRSTRLEN))
		snprintf(shown, sizeof(shown), "(unknown address family)");
	if (sa->sa_family == AF_INET6 && family == AF_INET &&
	    inet_ntop(AF_INET, addr, v4, sizeof(v4)))
		snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown), " (IPv4 %s)", v4);
	if (strcmp(lhost, shown) == 0)
		snprintf(what, sizeof(what), "address %s", shown);
	else
		snprintf(what, sizeof(what), "host %s is %s", host, shown);
	if (rule && !rule->deny)
		return true;
	if (rule) {
		snprintf(why, whylen, "refused: %s, denied by webhook_deny entry %s", what,
			 rule->text);
		return false;
	}
	if (family == 0) {
		snprintf(why, whylen, "refused: %s, not an IP address", what);
		return false;
	}
	for (size_t i = 0; i < WEBHOOK_POLICY_NDEFAULTS; i++) {
		struct webhook_rule r;
		char unused[64];

		if (!webhook_policy_parse_cidr(webhook_policy_defaults[i].cidr, &r, unused,
					       sizeof(unused)))
			continue; /* the table is checked by the unit tests */
		if (r.prefix > bestdef &&
		    webhook_policy_in(addr, family, r.addr, r.family, r.prefix)) {
			bestdef = r.prefix;
			snprintf(why, whylen,
				 "refused: %s, in %s (%s), denied by default; list it in "
				 "webhook_allow to allow it",
				 what, webhook_policy_defaults[i].cidr,
				 webhook_policy_defaults[i].label);
		}
	}
	return bestdef < 0;
}
