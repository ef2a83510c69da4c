/* systemd readiness protocol without libsystemd: datagrams to $NOTIFY_SOCKET. */
#ifndef VGC_NOTIFY_H
#define VGC_NOTIFY_H

/* Sends one state string such as "READY=1"; a no-op without $NOTIFY_SOCKET. */
void notify_send(const char *state);
/* The watchdog interval in microseconds from $WATCHDOG_USEC (0: none). */
unsigned long long notify_watchdog_usec(void);

#endif
