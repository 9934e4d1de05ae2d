/* presence.h — who is online where: client id → the sessions holding it, on any worker.
 *
 * Sharded by client id hash with one mutex per shard, so logins on different workers and
 * fan-out lookups rarely meet. Lookups copy handles out instead of calling back under the
 * lock; the caller then delivers through the owning worker (handles carry the worker). */
#ifndef TERN_PRESENCE_H
#define TERN_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct presence presence_t;

typedef struct {
  uint64_t session; /* handle; handle_owner() is the worker */
  char *tag;        /* single-sign-on tag or NULL */
} presence_ref_t;

presence_t *presence_new(void);
void presence_free(presence_t *p);
void presence_add(presence_t *p, const char *client, uint64_t session, const char *tag);
void presence_del(presence_t *p, const char *client, uint64_t session);
/* Copies up to max session handles of client into out; returns how many there are. */
size_t presence_get(presence_t *p, const char *client, uint64_t *out, size_t max);
/* Every session handle of client, however many: into buf (room for max) when they fit, else
 * into a malloc'd array; returns where (buf, or an array the caller frees) and *n how many. */
uint64_t *presence_get_all(presence_t *p, const char *client, uint64_t *buf, size_t max, size_t *n);
/* Like presence_get, only the sessions whose tag equals `tag`. */
size_t presence_get_tagged(presence_t *p, const char *client, const char *tag, uint64_t *out, size_t max);
int presence_online(presence_t *p, const char *client);
/* Takes a token from the client's command bucket (max_client_rate), one bucket for all
 * its sessions: 0 when it is empty; 1 when taken or the client is not online. */
int presence_take(presence_t *p, const char *client, long rate, int64_t now);
size_t presence_count(presence_t *p); /* clients online */

#endif
