/* `vgcollector serve`: startup, the event loop, reload and graceful shutdown. */
#ifndef VGC_SERVER_H
#define VGC_SERVER_H

#include "config.h"

/* Config reload hooks (config.c rows) for what server.c starts: logging, the
 * pools' queue cap, the standby's lag bound, the key watcher's refresh, and
 * the periodic tasks' intervals. */
extern const struct config_hook server_logging_hook;
extern const struct config_hook server_queue_hook;
extern const struct config_hook server_read_lag_hook;
extern const struct config_hook server_key_refresh_hook;
extern const struct config_hook server_tasks_hook;

/* Runs the server until it is stopped. Takes ownership of cfg and of the flag
 * arrays (re-applied on every reload). Returns the process exit code. */
int server_run(struct config *cfg, char *config_path, char **flag_names, char **flag_values,
	       int nflags);

#endif
