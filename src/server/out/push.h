/* push.h — offline push (protocol.md §10): what a member who is not online gets on its
 * phone when a message arrives.
 *
 * Three parts. The device registry says where a client's pushes go: tokens the SDKs
 * report (`report upload`, a login's deviceToken) and `_Installation` objects registered
 * over REST, whose `channels` name the client ids the device receives for. The payload is
 * resolved once per message: the `_receiversOffline` hook's pushMessage, else the message's
 * pushData, else the configured template with ${convId}, ${timestamp} and ${fromClientId}
 * filled in — with none of them there is no push. Providers deliver it: a generic webhook,
 * APNs (HTTP/2, ES256 provider tokens) and FCM HTTP v1 (OAuth2 service account), each
 * behind one ops table (push_internal.h), several at once if configured.
 *
 * Everything runs on the worker that calls push_offline: device lookups through its store
 * reader, requests through its httpc (out.h), retries with exponential backoff on its uv
 * timers. A push that still fails after push_retries retries (or fails for good, e.g. a
 * rejected token) is appended as one JSON line to <data_dir>/push-dead-letter.jsonl.
 * Nothing here blocks the loop; nothing is retried across a restart.
 *
 * The IM layer reaches push_offline only through im_out.h's table (out.c). The registry
 * push reads is written below and beside it: by im (im_device.c, tokens reported on the IM
 * socket) and by the REST API (rest_installations.c, `_Installation` objects). */
#ifndef TERN_PUSH_H
#define TERN_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "im_internal.h" /* push_request_t: im_out.h */

typedef struct push_hub push_hub_t;

/* The process-wide part: providers with their keys loaded, the template, counters and the
 * dead-letter file. Reads cfg (push_* / apns_* / fcm_* options) and keeps a pointer to it.
 * Returns 0 with *out set — NULL when push_provider is "none" — or TERN_ECONFIG after
 * logging what is wrong (a missing key file, an unknown provider, a template that is not
 * JSON). Create it before the workers start; free it after they have stopped. */
int push_hub_new(const tern_config_t *cfg, push_hub_t **out);
void push_hub_free(push_hub_t *hub); /* NULL: no-op */

/* Resolves the payload (hook > pushData > template), looks up each recipient's devices and
 * sends through the configured providers, asynchronously on worker w's loop. Call on w's
 * thread. req is borrowed for the call. Without a hub (push_provider none), an HTTP client,
 * or a payload, or after push_worker_stop, it does nothing. */
void push_offline(im_worker_t *w, const push_request_t *req);

/* The worker is stopping: pushes waiting for a retry go to the dead-letter log now, later
 * calls do nothing. Call on w's thread before httpc_close (which then cancels the requests
 * in flight; those are dead-lettered as they come back). */
void push_worker_stop(im_worker_t *w);

/* Prometheus text for /metrics: per provider requests, deliveries, retries, dead letters.
 * hub may be NULL (prints nothing). */
void push_metrics(const push_hub_t *hub, buf_t *out);
/* Where the dead-letter log is: <data_dir>/push-dead-letter.jsonl (read back by
 * GET /1.2/tern/push/dead-letters, rest_admin.c). */
void push_dead_letter_path(const tern_config_t *cfg, buf_t *out);

#endif
