/* push_webhook.c — the generic provider: one JSON POST per offline recipient to an URL of
 * the app's own, which does the actual pushing (a vendor not built in, an SMS gateway…).
 *
 * Body: {"clientId", "convId", "fromClientId", "msgId", "timestamp", "devices":
 * [{"deviceType", "deviceToken", "installation"?: <_Installation objectId>}], "data": <the
 * resolved payload>}.
 * Headers: X-Tern-Attempt (1 on the first try), and with push_webhook_secret,
 * X-Tern-Signature: sha256=<hex HMAC-SHA256 of the body> so the receiver can tell the
 * request is ours. Any 2xx is a delivery; 408, 429, 5xx and transport failures are
 * retried; other statuses are final. */
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "push_internal.h"

typedef struct {
  char *url, *secret;
} webhook_t;

static int webhook_init(const tern_config_t *cfg, void **state) {
  if (!*cfg->push_webhook_url) {
    log_at(LOG_ERROR, "push_provider webhook needs push_webhook_url");
    return TERN_ECONFIG;
  }
  if (strncmp(cfg->push_webhook_url, "http://", 7) != 0 && strncmp(cfg->push_webhook_url, "https://", 8) != 0) {
    log_at(LOG_ERROR, "push_webhook_url must be an http:// or https:// URL");
    return TERN_ECONFIG;
  }
  webhook_t *h = xcalloc(1, sizeof *h);
  h->url = xstrdup(cfg->push_webhook_url);
  h->secret = *cfg->push_webhook_secret ? xstrdup(cfg->push_webhook_secret) : NULL;
  *state = h;
  return 0;
}

static void webhook_free(void *state) {
  webhook_t *h = state;
  if (!h) return;
  free(h->url);
  free(h->secret);
  free(h);
}

static void webhook_done(void *arg, const httpc_result_t *res) {
  push_delivery_t *d = arg;
  push_attempt_done(d, push_outcome_of(res->status), res->status, res->status ? NULL : res->error);
}

static void webhook_attempt(push_worker_t *pw, void *state, push_delivery_t *d) {
  webhook_t *h = state;
  httpc_t *http = push_http(pw);
  if (!http) {
    push_attempt_done(d, PUSH_RETRY, 0, "worker stopping");
    return;
  }
  json_t *devs = json_array();
  for (size_t i = 0; i < d->ndevices; i++) {
    json_t *o = json_pack("{s:s, s:s}", "deviceType", d->devices[i].type, "deviceToken", d->devices[i].token);
    if (d->devices[i].installation_id)
      json_object_set_new(o, "installation", json_string(d->devices[i].installation_id));
    json_array_append_new(devs, o);
  }
  json_t *body =
      json_pack("{s:s, s:s, s:s, s:s?, s:I, s:o, s:O}", "clientId", d->client, "convId", d->cid, "fromClientId",
                d->from, "msgId", d->msg_id, "timestamp", (json_int_t)d->timestamp, "devices", devs, "data", d->data);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  size_t len = strlen(text);
  char attempt_h[40], sig_h[90];
  snprintf(attempt_h, sizeof attempt_h, "X-Tern-Attempt: %d", d->attempts);
  const char *headers[4] = {"Content-Type: application/json", attempt_h, NULL, NULL};
  if (h->secret) {
    uint8_t mac[32];
    char hex[65];
    hmac_sha256(h->secret, strlen(h->secret), text, len, mac);
    hex_encode(mac, sizeof mac, hex);
    snprintf(sig_h, sizeof sig_h, "X-Tern-Signature: sha256=%s", hex);
    headers[2] = sig_h;
  }
  int rc = httpc_request(http, "POST", h->url, headers, text, len, push_timeout_ms(pw), 0, webhook_done, d);
  free(text);
  if (rc < 0) push_attempt_done(d, PUSH_RETRY, 0, tern_strerror(rc));
}

const push_provider_t push_webhook_provider = {
    .name = "webhook",
    .types = NULL, /* every device type, one request per recipient */
    .init = webhook_init,
    .free = webhook_free,
    .attempt = webhook_attempt,
};
