/* Runs every registered unit test (optionally only names containing argv[1])
 * and prints the plain closing line "N passed, N failed". Exits 1 when one
 * failed, or when the filter matched no test. */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#define UNIT_MAX 1024

static struct {
	const char *name;
	unit_fn fn;
} unit_cases[UNIT_MAX];
static int unit_count;

void unit_register(const char *name, unit_fn fn)
{
	if (unit_count < UNIT_MAX) {
		unit_cases[unit_count].name = name;
		unit_cases[unit_count].fn = fn;
		unit_count++;
	}
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	for (int i = 0; i < unit_count; i++) {
		int f = 0;
		if (argc > 1 && !strstr(unit_cases[i].name, argv[1]))
			continue;
		unit_cases[i].fn(&f);
		printf("%s %s\n", f ? "FAIL" : "ok  ", unit_cases[i].name);
		if (f)
			failed++;
		else
			passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	if (passed + failed == 0) {
		/* A filter that matches nothing checked nothing: a typo, not a pass. */
		fprintf(stderr, "no unit test name contains \"%s\"\n", argc > 1 ? argv[1] : "");
		return 1;
	}
	return failed ? 1 : 0;
}
