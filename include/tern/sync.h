/* tern/sync.h — a blocking layer over libtern, for scripts, tests and simple programs.
 *
 * tern_sync_new() makes a tern_t with its own private libuv loop. Each tern_sync_* call
 * sends its request and runs that loop until the reply (or the command timeout), so
 * delegate callbacks of any client of this tern_t may run inside it. Use tern_sync_wait()
 * to just process incoming events for a while. Free with tern_free() as usual (it also
 * drains and closes the private loop).
 *
 * Results: conversations are the client's (valid until tern_free); messages returned in
 * out-parameters are yours (tern_msg_free / tern_sync_msgs_free).
 * Thread-safety: one thread at a time per tern_t, like the rest of libtern. */
#ifndef TERN_SYNC_H
#define TERN_SYNC_H

#include "tern.h"

#ifdef __cplusplus
extern "C" {
#endif

tern_t *tern_sync_new(const tern_options_t *o);
/* Runs the private loop for up to timeout_ms (0 = once, without blocking). Returns 0, or
 * TERN_EINVAL if t was not made by tern_sync_new(). */
int tern_sync_wait(tern_t *t, int timeout_ms);
/* Runs the loop until *flag becomes non-zero or timeout_ms passes (TERN_ETIMEDOUT). */
int tern_sync_until(tern_t *t, const int *flag, int timeout_ms);

int tern_sync_open(tern_client_t *c, const tern_open_options_t *opt);
int tern_sync_close(tern_client_t *c);
int tern_sync_create_conv(tern_client_t *c, const char *name, const char *const *members, size_t n,
                          const char *attrs_json, unsigned options, tern_conv_t **out);
int tern_sync_get_conv(tern_client_t *c, const char *conv_id, tern_conv_t **out);
/* The conversations are copied into a malloc'd array (*out, free() it); they are the client's. */
int tern_sync_find(const tern_query_t *q, tern_conv_t ***out, size_t *n);
int tern_sync_send(tern_conv_t *conv, const tern_msg_t *msg, unsigned options, tern_msg_t **sent);
int tern_sync_join(tern_conv_t *conv);
int tern_sync_quit(tern_conv_t *conv);
int tern_sync_add_members(tern_conv_t *conv, const char *const *ids, size_t n);
int tern_sync_remove_members(tern_conv_t *conv, const char *const *ids, size_t n);
int tern_sync_count_members(tern_conv_t *conv, int *count);
int tern_sync_update(tern_conv_t *conv, const tern_update_t *u);
int tern_sync_mute(tern_conv_t *conv, int mute);
/* History: before_id NULL = the newest. Messages oldest first, yours. */
int tern_sync_history(tern_conv_t *conv, const char *before_id, int64_t before_ts, int limit, tern_msg_t ***msgs,
                      size_t *n, int *from_cache);
void tern_sync_msgs_free(tern_msg_t **msgs, size_t n);

#ifdef __cplusplus
}
#endif
#endif
