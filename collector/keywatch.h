/* Keeps the key cache current on every replica: a thread LISTENs on vgc_keys
 * (the api_keys trigger NOTIFYs) and also reloads on a timer, then hands each
 * new cache to the loop. It also writes last_used_at in batches. */
#ifndef VGC_KEYWATCH_H
#define VGC_KEYWATCH_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct auth_cache;
struct keywatch;

/* Called on the loop thread with a new cache, which the callee then owns. */
typedef void (*keywatch_fn)(struct auth_cache *cache, void *arg);

struct keywatch *keywatch_new(struct event_base *base, const char *conninfo, int refresh_s,
			      keywatch_fn fn, void *arg, char *err, size_t errlen);
void keywatch_free(struct keywatch *kw);
void keywatch_set_refresh(struct keywatch *kw, int refresh_s);
/* Asks for a reload now (SIGHUP). */
void keywatch_poke(struct keywatch *kw);
/* Records that key_id authenticated a request (loop thread; cheap). */
void keywatch_note_used(struct keywatch *kw, long long key_id);
/* True once the watcher has loaded keys at least once and holds a connection. */
bool keywatch_connected(struct keywatch *kw);

#endif
