/* Acquisition cost (recorded and book cost, margin) is operator information:
 * with hide_cost_from_tenants = on, a tenant-scoped key reads none of it. */
#include "billing_scope.h"

#include "http.h"
#include "vgcollector.h"

bool billing_scope_hides_cost(const struct http_req *hr)
{
	return hr->key && hr->key->tenant && hr->srv->cfg.hide_cost_from_tenants == CONFIG_ON;
}

bool billing_scope_refuse(struct http_req *hr, const char *what)
{
	if (!billing_scope_hides_cost(hr))
		return false;
	http_reply_error(hr, 403,
			 "key %s is scoped to tenant \"%s\" and %s is acquisition cost, which "
			 "hide_cost_from_tenants = on keeps from tenant keys",
			 hr->key->prefix, hr->key->tenant, what);
	return true;
}
