/* Minimal unit-test harness: UNIT_TEST(name) registers a case at load time and
 * CHECK records a failure with file:line; main.c runs them all and prints the
 * plain closing line "N passed, N failed". */
#ifndef VG_UNIT_H
#define VG_UNIT_H

#include <stdio.h>

typedef void (*unit_fn)(int *failed);
void unit_register(const char *name, unit_fn fn);

#define UNIT_TEST(name)                                                                            \
	static void name(int *unit_failed_);                                                       \
	__attribute__((constructor)) static void name##_register(void)                             \
	{                                                                                          \
		unit_register(#name, name);                                                        \
	}                                                                                          \
	static void name(int *unit_failed_)

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			*unit_failed_ = 1;                                                         \
		}                                                                                  \
	} while (0)

#define CHECK_MSG(cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "    %s:%d: ", __FILE__, __LINE__);                        \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			*unit_failed_ = 1;                                                         \
		}                                                                                  \
	} while (0)

#endif
