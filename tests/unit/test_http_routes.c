/* The route table (collector/http.c): every route gets its own metrics
 * series however many there are, and a body cap must name a size key. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "metrics.h"
#include "unit.h"

#define ROUTES_MANY 40 /* past both old fixed caps: 24 series, 32 indexes */

static void routes_nop(struct http_req *hr)
{
	(void)hr;
}

UNIT_TEST(http_routes_past_the_old_caps_each_get_their_own_metrics_series)
{
	static char paths[ROUTES_MANY][24];
	static struct http_route routes[ROUTES_MANY + 1];
	int slots[ROUTES_MANY];
	char err[256] = "", want[1200];
	struct buf b;

	for (int i = 0; i < ROUTES_MANY; i++) {
		snprintf(paths[i], sizeof(paths[i]), "/many/%d", i);
		routes[i] =
			(struct http_route){ paths[i], HTTP_GET,	  HTTP_OPEN, HTTP_BODY_NONE,
					     NULL,     HTTP_POOL_PRIMARY, routes_nop };
	}
	CHECK_MSG(http_routes_set(routes, err, sizeof(err)), "%s", err);
	for (int i = 0; i < ROUTES_MANY; i++) {
		slots[i] = http_route_slot(paths[i]);
		for (int j = 0; j < i; j++)
			CHECK_MSG(slots[i] != slots[j], "%s and %s share series %d", paths[i],
				  paths[j], slots[i]);
		/* route i is asked i + 1 times */
		for (int k = 0; k <= i; k++)
			metrics_http_request(slots[i], 200);
	}
	CHECK(http_route_slot("/none") != slots[ROUTES_MANY - 1]);
	buf_init(&b, 0);
	metrics_render(&b, &(struct metrics_gauges){ 0 });
	for (int i = 0; i < ROUTES_MANY; i++) {
		snprintf(want, sizeof(want),
			 "vgcollector_http_requests_total{route=\"%s\",status=\"200\"} %d\n",
			 paths[i], i + 1);
		CHECK_MSG(b.data && strstr(b.data, want), "missing: %s", want);
	}
	buf_release(&b);
}

UNIT_TEST(http_routes_refuse_a_body_cap_that_is_not_a_size_key)
{
	static const struct http_route bad[] = {
		{ "/x", HTTP_POST, HTTP_OPEN, HTTP_BODY_CAPPED, "log_level", HTTP_POOL_PRIMARY,
		  routes_nop },
		{ NULL, 0, 0, HTTP_BODY_NONE, NULL, HTTP_POOL_PRIMARY, NULL },
	};
	char err[256] = "";

	CHECK(!http_routes_set(bad, err, sizeof(err)));
	CHECK_MSG(strstr(err, "route /x: body_cap \"log_level\" is not a size key"), "%s", err);
}
