/* Unit tests for db_classify's rule: which SQLSTATEs may pass on their own
 * (503), which mean the data cannot be stored, and which are our bugs. */
#include <string.h>

#include "db.h"
#include "unit.h"

struct classify_case {
	const char *state;
	enum db_fault want;
	const char *why;
};

static const struct classify_case classify_cases[] = {
	{ "25006", DB_FAULT_TRANSIENT, "read-only transaction" },
	{ "08006", DB_FAULT_TRANSIENT, "connection failure" },
	{ "08003", DB_FAULT_TRANSIENT, "connection does not exist" },
	{ "40001", DB_FAULT_TRANSIENT, "serialization failure" },
	{ "40P01", DB_FAULT_TRANSIENT, "deadlock detected" },
	{ "53100", DB_FAULT_TRANSIENT, "disk full" },
	{ "53300", DB_FAULT_TRANSIENT, "too many connections" },
	{ "55P03", DB_FAULT_TRANSIENT, "lock not available (lock_timeout)" },
	{ "57P01", DB_FAULT_TRANSIENT, "admin shutdown" },
	{ "57P03", DB_FAULT_TRANSIENT, "cannot connect now" },
	{ "57014", DB_FAULT_TRANSIENT, "statement timeout" },
	{ "58030", DB_FAULT_TRANSIENT, "I/O error" },
	{ NULL, DB_FAULT_TRANSIENT, "no SQLSTATE: the server did not answer" },
	{ "", DB_FAULT_TRANSIENT, "empty SQLSTATE" },
	{ "54000", DB_FAULT_DATA, "program limit exceeded (index row size)" },
	{ "23505", DB_FAULT_DATA, "unique violation" },
	{ "23514", DB_FAULT_DATA, "check violation" },
	{ "22003", DB_FAULT_DATA, "numeric value out of range" },
	{ "22008", DB_FAULT_DATA, "datetime field overflow" },
	{ "42P01", DB_FAULT_INTERNAL, "undefined table: the schema's fault" },
	{ "42703", DB_FAULT_INTERNAL, "undefined column" },
	{ "XX000", DB_FAULT_INTERNAL, "internal error" },
	{ "42501", DB_FAULT_INTERNAL, "insufficient privilege" },
};

UNIT_TEST(db_classify_sqlstates)
{
	for (size_t i = 0; i < sizeof(classify_cases) / sizeof(classify_cases[0]); i++) {
		const struct classify_case *c = &classify_cases[i];
		enum db_fault got = db_classify_sqlstate(c->state);

		CHECK_MSG(got == c->want, "%s (%s): got %d, want %d", c->state ? c->state : "NULL",
			  c->why, (int)got, (int)c->want);
	}
}

UNIT_TEST(db_classify_without_connection_is_transient)
{
	CHECK(db_classify(NULL, NULL) == DB_FAULT_TRANSIENT);
	CHECK(db_fault_status(DB_FAULT_TRANSIENT) == 503);
	CHECK(db_fault_status(DB_FAULT_DATA) == 500);
	CHECK(db_fault_status(DB_FAULT_INTERNAL) == 500);
}
