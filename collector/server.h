/* `vgcollector serve`: startup, the event loop, reload and graceful shutdown. */
#ifndef VGC_SERVER_H
#define VGC_SERVER_H

#include "config.h"

/* Runs the server until it is stopped. Takes ownership of cfg and of the flag
 * arrays (re-applied on every reload). Returns the process exit code. */
int server_run(struct config *cfg, char *config_path, char **flag_names, char **flag_values,
	       int nflags);

#endif
