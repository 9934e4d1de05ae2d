/* push_internal.h — what push.c shares with its providers (push_webhook.c, push_apns.c,
 * push_fcm.c) and with the unit tests. Nothing outside src/server/out/push*.c and
 * tests/unit/test_push.c includes it.
 *
 * A delivery is one request's worth of work for one provider: one device for APNs and FCM,
 * one recipient with all its devices for the webhook. push.c owns its life: it starts an
 * attempt through the provider's ops, and the provider reports how it went with
 * push_attempt_done — exactly once per attempt, on the delivery's worker. */
#ifndef TERN_PUSH_INTERNAL_H
#define TERN_PUSH_INTERNAL_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <uv.h>

#include "httpc.h"
#include "push.h"

#define PUSH_MAX_PROVIDERS 4
#define PUSH_MAX_DEVICES 32       /* devices looked up per recipient, the newest first */
#define PUSH_MAX_PENDING 20000    /* deliveries per worker in flight or waiting; beyond: dead letter */
#define PUSH_EXPIRY_S (7 * 86400) /* §10: pushes expire after 7 days */

typedef struct push_worker push_worker_t;
typedef struct push_delivery push_delivery_t;

typedef enum {
  PUSH_OK,    /* delivered (2xx) */
  PUSH_RETRY, /* worth another try: network failure, timeout, 429, 5xx */
  PUSH_FAIL,  /* the provider refused it for good: no retry */
  PUSH_GONE,  /* the token is dead (APNs 410, FCM UNREGISTERED): no retry, forget the device */
} push_outcome_t;

typedef struct {
  char *token, *type, *installation_id;
  int64_t badge; /* the badge this push sets when the payload says "Increment" */
} push_device_t;

typedef struct {
  const char *name;
  /* Device types it delivers to (NULL: every type, one request per recipient). */
  const char *const *types;
  /* Reads its options, loads keys; *state is the provider's. 0 or TERN_ECONFIG (logged). */
  int (*init)(const tern_config_t *cfg, void **state);
  void (*free)(void *state);
  /* Starts one attempt of d on pw's loop; ends, now or later, in push_attempt_done(d, …). */
  void (*attempt)(push_worker_t *pw, void *state, push_delivery_t *d);
  /* Frees what the provider keeps per worker (its slot in pw->pstate); may be NULL. */
  void (*worker_free)(void *wstate);
} push_provider_t;

extern const push_provider_t push_webhook_provider, push_apns_provider, push_fcm_provider;

typedef struct {
  atomic_ulong requests, delivered, retries, dead;
} push_counters_t;

struct push_hub {
  const tern_config_t *cfg;
  int nproviders;
  const push_provider_t *providers[PUSH_MAX_PROVIDERS];
  void *pstate[PUSH_MAX_PROVIDERS];
  push_counters_t counters[PUSH_MAX_PROVIDERS];
  json_t *tmpl; /* parsed push_template, NULL when empty */
  int dead_fd;  /* push-dead-letter.jsonl, O_APPEND */
  char *dead_path;
  atomic_ulong muted_skipped, no_payload;
  push_worker_t *workers[MAX_WORKERS]; /* each made and touched by its own worker */
};

struct push_worker {
  push_hub_t *hub;
  im_worker_t *w;
  uv_loop_t *loop;
  int stopping;
  size_t pending;
  push_delivery_t *all;             /* every live delivery, for stop */
  void *pstate[PUSH_MAX_PROVIDERS]; /* per-worker provider state (FCM: token fetch) */
};

struct push_delivery {
  push_delivery_t *prev, *next; /* in pw->all */
  push_worker_t *pw;
  int pidx;       /* provider index in the hub */
  uint64_t t0_ns; /* the attempt under way began (tern_push_seconds) */
  char *client, *cid, *from, *msg_id;
  int64_t timestamp;
  json_t *data; /* the resolved payload (shared reference) */
  push_device_t *devices;
  size_t ndevices;
  int attempts;
  long last_status;
  char *last_error;
  uv_timer_t *timer;          /* waiting for a retry */
  push_delivery_t *wait_next; /* a provider's own wait list (FCM: for a token) */
};

/* How an attempt ended. status: the HTTP status (0 for none); error: why (copied). */
void push_attempt_done(push_delivery_t *d, push_outcome_t outcome, long status, const char *error);
/* The generic mapping of an HTTP result: 2xx OK; 408, 429, 5xx and transport failures
 * RETRY; other statuses FAIL. */
push_outcome_t push_outcome_of(long status);
/* The worker's HTTP client (NULL once the worker is stopping). */
httpc_t *push_http(push_worker_t *pw);
long push_timeout_ms(push_worker_t *pw);

/* ---- pure pieces, unit-tested ---- */

/* The payload object for req: hook pushMessage > pushData > template (deep copy with the
 * variables filled in; now_s is ${timestamp}); NULL for no push. A JSON string is parsed
 * again when it holds a JSON object (the LeanCloud samples send JSON.stringify(obj)), and
 * otherwise becomes {"alert": <string>}. */
json_t *push_resolve(const json_t *tmpl, const push_request_t *req, int64_t now_s);
/* Replaces ${convId}, ${timestamp}, ${fromClientId} in every string of v (in place). */
void push_fill_template(json_t *v, const char *cid, const char *from, int64_t now_s);
/* Recipients that get a push: `to` minus the sender and (unless force) the muted members.
 * Writes pointers into req->to to out (room for nto); returns how many; *muted_skipped
 * gets how many were left out for being muted. */
size_t push_recipients(const push_request_t *req, const char **out, size_t *muted_skipped);
/* The payload as one platform sees it: data's own "ios"/"android" object when present
 * (with the internal top-level keys _profile/_apns_team_id kept), else data minus those
 * per-platform objects. New reference. */
json_t *push_platform_data(const json_t *data, const char *platform);
/* APNs JSON body (malloc'd): aps {alert, badge, sound, category, thread-id,
 * content-available, mutable-content} and the custom keys; internal keys dropped. badge
 * "Increment" becomes `increment_to`. */
char *push_apns_body(const json_t *data, int64_t increment_to);
/* FCM v1 body (malloc'd): {"message": {"token", "notification"?: {title, body},
 * "data": {string values}, "android": {"ttl"}}}. */
char *push_fcm_body(const json_t *data, const char *token);
/* Backoff before retry n (1-based): base * 2^(n-1), at most 10 minutes, plus up to 25%
 * jitter when jitter is set. */
uint64_t push_backoff_ms(long base_ms, int n, int jitter);

/* A compact JWT: base64url(header).base64url(claims).base64url(signature), signed with
 * key: "ES256" (raw r||s, 64 bytes) or "RS256" (PKCS#1 v1.5). *out is malloc'd.
 * Returns 0, or TERN_EINVAL when the key does not fit the algorithm or signing fails. */
int push_jwt_sign(EVP_PKEY *key, const char *alg, const char *header_json, const char *claims_json, char **out);
/* A PEM private key from memory (PKCS#8 or traditional); NULL if it does not parse. */
EVP_PKEY *push_pem_key(const char *pem, size_t len);
/* The contents of a file (NUL-terminated, malloc'd) or NULL; reads once at start-up. */
char *push_read_file(const char *path, size_t *len);

#endif
