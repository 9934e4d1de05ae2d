/* hooks.h — server-side hooks (protocol.md §8): the app's LeanEngine-style functions,
 * called over HTTP at fixed points of IM processing.
 *
 * A hook call never blocks: it goes out through the worker's httpc and the operation
 * continues in the callback, on the same worker. Only hooks named in the `hooks` option
 * are called (a hook the app does not implement would cost every message a round trip).
 * A failed call (timeout, non-200, bad JSON) lets the operation through unchanged unless
 * hook_fail_closed is set. */
#ifndef TERN_HOOKS_H
#define TERN_HOOKS_H

#include <jansson.h>

#include "buf.h"
#include "im.h"

typedef enum {
  HOOK_MESSAGE_RECEIVED,
  HOOK_RECEIVERS_OFFLINE,
  HOOK_MESSAGE_SENT,
  HOOK_MESSAGE_UPDATE,
  HOOK_CONVERSATION_START,
  HOOK_CONVERSATION_STARTED,
  HOOK_CONVERSATION_ADD,
  HOOK_CONVERSATION_ADDED,
  HOOK_CONVERSATION_REMOVE,
  HOOK_CONVERSATION_REMOVED,
  HOOK_CONVERSATION_UPDATE,
  HOOK_CLIENT_ONLINE,
  HOOK_CLIENT_OFFLINE,
  HOOK_RTM_CLIENT_SIGN,
  HOOK_COUNT
} hook_t;

typedef struct hooks hooks_t;

/* Parses the options; NULL when no hook is configured. */
hooks_t *hooks_new(const char *url, const char *app_id, const char *app_key, const char *hook_key, const char *names,
                   long timeout_ms, int fail_closed);
void hooks_free(hooks_t *h);
int hook_enabled(const hooks_t *h, hook_t which);
const char *hook_name(hook_t which);

/* The outcome: result is the value under "result" in the hook's answer — an object for
 * most hooks, true/false for _rtmClientSign (borrowed for the callback; NULL when there is
 * none, the call failed or the hook is off: "carry on as usual"); failed is set when the
 * call did not succeed and hook_fail_closed asks that to reject the operation. */
typedef void (*hook_cb)(im_worker_t *w, void *arg, json_t *result, int failed);

/* Calls the hook with params (stolen). When it is not enabled, or the worker has no HTTP
 * client, cb runs at once with (NULL, 0). cb may be NULL for hooks whose answer is ignored. */
void hook_call(im_worker_t *w, hook_t which, json_t *params, hook_cb cb, void *arg);

/* Prometheus text for /metrics: per hook calls, failures and latency. */
void hooks_metrics(const hooks_t *h, buf_t *out);
/* {url, timeout_ms, fail_closed, hooks: [{name, enabled, calls, failures, avg_ms}]} for
 * GET /1.2/tern/hooks; h may be NULL (no hook configured: url null, every hook off). */
json_t *hooks_status(const hooks_t *h);

#endif
