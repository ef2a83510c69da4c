/* Which addresses webhook posts may connect to: the operator's webhook_allow
 * and webhook_deny lists (CIDRs and host patterns) over built-in denials of
 * loopback, link-local, private, unique-local and cloud metadata ranges.
 * Pure functions; no I/O. */
#ifndef VGC_WEBHOOK_POLICY_H
#define VGC_WEBHOOK_POLICY_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;
struct sockaddr_storage;
struct webhook_policy;

/* Compiles the two lists (entries separated by commas or spaces: an address,
 * a CIDR such as 10.1.0.0/16 or fd12::/64, a host name, or *.suffix for any
 * name under suffix). NULL with err naming the list and the entry when one
 * does not parse. Free with webhook_policy_free. */
struct webhook_policy *webhook_policy_new(const char *allow, const char *deny, char *err,
					  size_t errlen);
void webhook_policy_free(struct webhook_policy *p);

/* Checks both lists' syntax only (config validation). */
bool webhook_policy_lists_ok(const char *allow, const char *deny, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* True when host (a URL's host, without brackets) is a numeric address in any
 * form the C library would connect to: dotted quad, IPv6, or inet_aton's
 * decimal, octal, hex and short forms (2130706433, 0x7f.1, 127.1). The
 * address goes to out with port 0. */
bool webhook_policy_literal(const char *host, struct sockaddr_storage *out);

/* May a post to host connect to sa (one address host is or resolved to)?
 * The most specific matching entry of webhook_allow and webhook_deny decides
 * (a host pattern beats any CIDR, a longer prefix a shorter one, deny a tie);
 * when none matches, the built-in denials apply. False with why naming the
 * host, the address and the rule. */
bool webhook_policy_allows(const struct webhook_policy *p, const char *host,
			   const struct sockaddr *sa, char *why, size_t whylen);

#endif
