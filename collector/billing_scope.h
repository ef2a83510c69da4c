/* Who may see acquisition cost: operators always; a tenant-scoped key never
 * in billing, and nowhere when hide_cost_from_tenants = on. */
#ifndef VGC_BILLING_SCOPE_H
#define VGC_BILLING_SCOPE_H

#include <stdbool.h>

struct http_req;

/* True when hr's key is tenant-scoped and hide_cost_from_tenants is on. */
bool billing_scope_hides_cost(const struct http_req *hr);

/* For endpoints that are nothing but cost (what names it): answers 403 and
 * returns true when billing_scope_hides_cost; false to go on. */
bool billing_scope_refuse(struct http_req *hr, const char *what);

#endif
