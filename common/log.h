/* Process-wide logging for the collector: one line per event on stderr, logfmt
 * or JSON, with an optional request context. Thread-safe. libvgsink does not use
 * this (it logs only through its callback). */
#ifndef VG_LOG_H
#define VG_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_format { LOG_FMT_LOGFMT = 0, LOG_FMT_JSON };

/* Per-request fields carried on every line logged for that request. Any may be NULL. */
struct log_ctx {
	const char *request_id;
	const char *key_prefix;
	const char *project;
};

/* The level in force: written by log_configure (a reload, on the loop thread)
 * while any thread reads it, hence atomic; relaxed is enough for a level. */
extern _Atomic int log_level_current;

void log_configure(enum log_level level, enum log_format format);
bool log_level_parse(const char *s, enum log_level *out);
bool log_format_parse(const char *s, enum log_format *out);
const char *log_level_name(enum log_level level);

void log_emit(enum log_level level, const struct log_ctx *ctx, const char *file, int line,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The level is checked before the arguments are evaluated. */
#define log_at(lvl, ctx, ...)                                                                      \
	do {                                                                                       \
		if ((int)(lvl) <= atomic_load_explicit(&log_level_current, memory_order_relaxed))  \
			log_emit((lvl), (ctx), NULL, 0, __VA_ARGS__);                              \
	} while (0)
#define log_error(...) log_at(LOG_LVL_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, NULL, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, NULL, __VA_ARGS__)
#define log_req(lvl, ctx, ...) log_at((lvl), (ctx), __VA_ARGS__)

/* Only for startup and impossible states: adds file:line, then exits 1. */
#define log_fatal(...)                                                                             \
	do {                                                                                       \
		log_emit(LOG_LVL_ERROR, NULL, __FILE__, __LINE__, __VA_ARGS__);                    \
		log_exit_fatal();                                                                  \
	} while (0)
void log_exit_fatal(void) __attribute__((noreturn));

#endif
