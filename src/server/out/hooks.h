/* hooks.h — server-side hooks (protocol.md §8): the app's LeanEngine-style functions,
 * called over HTTP at fixed points of IM processing.
 *
 * A hook call never blocks: it goes out through the worker's httpc and the operation
 * continues in the callback, on the same worker. Only hooks named in the `hooks` option
 * are called (a hook the app does not implement would cost every message a round trip).
 * A failed call (timeout, non-200, bad JSON) lets the operation through unchanged unless
 * hook_fail_closed is set. The IM layer reaches these through im_out.h's table (out.c);
 * hook_t and hook_cb are defined there. */
#ifndef TERN_HOOKS_H
#define TERN_HOOKS_H

#include <jansson.h>

#include "buf.h"
#include "im_internal.h" /* hook_t, hook_cb: im_out.h */

typedef struct hooks hooks_t;

/* Parses the options; NULL when no hook is configured. */
hooks_t *hooks_new(const char *url, const char *app_id, const char *app_key, const char *hook_key, const char *names,
                   long timeout_ms, int fail_closed);
void hooks_free(hooks_t *h);
int hook_enabled(const hooks_t *h, hook_t which);
const char *hook_name(hook_t which);

/* Calls the hook with params (stolen), with the hooks of w's out_t (out.h). When it is not
 * enabled, or the worker has no HTTP client, cb runs at once with (NULL, 0). cb may be NULL
 * for hooks whose answer is ignored. */
void hook_call(im_worker_t *w, hook_t which, json_t *params, hook_cb cb, void *arg);

/* Prometheus text for /metrics: per hook calls, failures and latency. */
void hooks_metrics(const hooks_t *h, buf_t *out);
/* {url, timeout_ms, fail_closed, hooks: [{name, enabled, calls, failures, avg_ms}]} for
 * GET /1.2/tern/hooks; h may be NULL (no hook configured: url null, every hook off). */
json_t *hooks_status(const hooks_t *h);

#endif
