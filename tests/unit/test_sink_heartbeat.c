/* libvgsink's heartbeat config and vgsink_set_presence: what vgsink_open and
 * the presence call accept, and what they refuse naming the field. */
#include <string.h>

#include "unit.h"
#include "vgsink.h"

/* A sink whose collector never answers: nothing here needs one. */
static vgsink *heartbeat_open(const char *agent_id, int interval_ms, char *err, size_t errlen)
{
	vgsink_config cfg;

	vgsink_config_init(&cfg);
	cfg.url = "http://127.0.0.1:9";
	cfg.api_key = "vgk_test";
	cfg.agent_id = agent_id;
	cfg.heartbeat_interval_ms = interval_ms;
	return vgsink_open(&cfg, err, errlen);
}

UNIT_TEST(sink_heartbeat_config_defaults_to_15_s_and_no_agent)
{
	vgsink_config cfg;

	vgsink_config_init(&cfg);
	CHECK(cfg.heartbeat_interval_ms == 15000);
	CHECK(cfg.agent_id == NULL && cfg.host == NULL);
}

UNIT_TEST(sink_heartbeat_open_refuses_bad_identity_naming_the_field)
{
	char err[256] = "", id[200];

	CHECK(heartbeat_open("", 1000, err, sizeof(err)) == NULL);
	CHECK_MSG(strncmp(err, "agent_id:", 9) == 0, "%s", err);
	memset(id, 'a', 129);
	id[129] = '\0';
	CHECK(heartbeat_open(id, 1000, err, sizeof(err)) == NULL);
	CHECK_MSG(strncmp(err, "agent_id:", 9) == 0, "%s", err);
	CHECK(heartbeat_open("w-1", -1, err, sizeof(err)) == NULL);
	CHECK_MSG(strncmp(err, "heartbeat_interval_ms:", 22) == 0, "%s", err);
}

UNIT_TEST(sink_set_presence_takes_idle_busy_or_null_and_a_count)
{
	char err[256] = "";
	vgsink *s = heartbeat_open("w-1", 60000, err, sizeof(err));

	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	CHECK(vgsink_set_presence(s, "busy", 3) == 0);
	CHECK(vgsink_set_presence(s, "idle", 0) == 0);
	CHECK(vgsink_set_presence(s, NULL, 0) == 0);
	CHECK(vgsink_set_presence(s, "sleeping", 0) == -1);
	CHECK_MSG(strncmp(vgsink_errstr(s), "status \"sleeping\":", 18) == 0, "%s",
		  vgsink_errstr(s));
	CHECK(vgsink_set_presence(s, "offline", 0) == -1);
	CHECK(vgsink_set_presence(s, "busy", -1) == -1);
	CHECK_MSG(strncmp(vgsink_errstr(s), "active_sessions", 15) == 0, "%s", vgsink_errstr(s));
	CHECK(vgsink_close(s, 0) == 0);
}

UNIT_TEST(sink_set_presence_without_agent_id_is_accepted_and_unused)
{
	char err[256] = "";
	vgsink *s = heartbeat_open(NULL, 0, err, sizeof(err));

	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	CHECK(vgsink_set_presence(s, "busy", 1) == 0);
	CHECK(vgsink_close(s, 0) == 0);
}
