/* sd_notify(3) by hand: one AF_UNIX datagram per state change to the socket
 * named in $NOTIFY_SOCKET ('@' means the abstract namespace). */
#include "notify.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

void notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t n;
	int fd;

	if (!path || !path[0])
		return;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path)) {
		log_warn("NOTIFY_SOCKET is too long; systemd will not hear %s", state);
		return;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		log_warn("cannot notify systemd (%s): %m", state);
	close(fd);
}

unsigned long long notify_watchdog_usec(void)
{
	const char *v = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");

	if (!v)
		return 0;
	if (pid && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	return strtoull(v, NULL, 10);
}
