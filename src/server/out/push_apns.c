/* push_apns.c — the APNs provider: HTTP/2 to Apple with token-based authentication.
 *
 * Apple wants one POST /3/device/<token> per device over HTTP/2, authorised by a provider
 * token: an ES256 JWT {"alg":"ES256","kid":<key id>} . {"iss":<team id>,"iat":<s>} signed
 * with the team's .p8 key. Apple refuses tokens older than an hour and throttles ones made
 * more often than every 20 minutes, so one token is shared by all workers (under a mutex)
 * and made again after 50 minutes, or at once when Apple says ExpiredProviderToken.
 * libcurl multiplexes the requests of a worker over one connection per host.
 *
 * `_profile: "dev"` in the payload selects the sandbox host. Either host may be given as
 * http://host:port, which means cleartext HTTP/2 with prior knowledge (h2c) — for tests
 * against a local server only; Apple speaks TLS. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "push_internal.h"
#include "timeutil.h"

#define JWT_REFRESH_S (50 * 60)

typedef struct {
  EVP_PKEY *key;
  char *key_id, *team_id, *topic;
  char *base[2]; /* production, sandbox: "https://host[:port]" or "http://…" (h2c) */
  int h2c[2];
  pthread_mutex_t mu;
  char *jwt;
  int64_t jwt_iat; /* seconds */
} apns_t;

static const char *const types[] = {"ios", NULL};

static void set_base(apns_t *a, int i, const char *host) {
  size_t n = strlen(host);
  while (n && host[n - 1] == '/') n--;
  a->h2c[i] = strncmp(host, "http://", 7) == 0;
  if (a->h2c[i] || strncmp(host, "https://", 8) == 0) {
    a->base[i] = xstrndup(host, n);
  } else {
    buf_t b = BUF_INIT;
    buf_printf(&b, "https://%.*s", (int)n, host);
    a->base[i] = buf_cstr(&b);
  }
}

static void apns_free(void *state) {
  apns_t *a = state;
  if (!a) return;
  EVP_PKEY_free(a->key);
  free(a->key_id);
  free(a->team_id);
  free(a->topic);
  free(a->base[0]);
  free(a->base[1]);
  free(a->jwt);
  pthread_mutex_destroy(&a->mu);
  free(a);
}

static int apns_init(const tern_config_t *cfg, void **state) {
  const char *missing = !*cfg->apns_key_path  ? "apns_key_path"
                        : !*cfg->apns_key_id  ? "apns_key_id"
                        : !*cfg->apns_team_id ? "apns_team_id"
                        : !*cfg->apns_topic   ? "apns_topic"
                                              : NULL;
  if (missing) {
    log_at(LOG_ERROR, "push_provider apns needs %s", missing);
    return TERN_ECONFIG;
  }
  size_t len;
  char *pem = push_read_file(cfg->apns_key_path, &len);
  if (!pem) {
    log_at(LOG_ERROR, "apns_key_path: cannot read %s", cfg->apns_key_path);
    return TERN_ECONFIG;
  }
  EVP_PKEY *key = push_pem_key(pem, len);
  free(pem);
  if (!key || EVP_PKEY_base_id(key) != EVP_PKEY_EC || EVP_PKEY_bits(key) != 256) {
    log_at(LOG_ERROR, "apns_key_path: %s is not an EC P-256 private key (the .p8 file from Apple)", cfg->apns_key_path);
    EVP_PKEY_free(key);
    return TERN_ECONFIG;
  }
  apns_t *a = xcalloc(1, sizeof *a);
  a->key = key;
  a->key_id = xstrdup(cfg->apns_key_id);
  a->team_id = xstrdup(cfg->apns_team_id);
  a->topic = xstrdup(cfg->apns_topic);
  set_base(a, 0, cfg->apns_host);
  set_base(a, 1, cfg->apns_sandbox_host);
  pthread_mutex_init(&a->mu, NULL);
  *state = a;
  return 0;
}

/* The current provider token (a copy), made anew when older than 50 minutes. */
static char *provider_token(apns_t *a) {
  int64_t now = now_ms() / 1000;
  char *out = NULL;
  pthread_mutex_lock(&a->mu);
  if (!a->jwt || now - a->jwt_iat >= JWT_REFRESH_S || now < a->jwt_iat) {
    json_t *h = json_pack("{s:s, s:s}", "alg", "ES256", "kid", a->key_id);
    json_t *c = json_pack("{s:s, s:I}", "iss", a->team_id, "iat", (json_int_t)now);
    char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT);
    char *jwt = NULL;
    if (hs && cs && push_jwt_sign(a->key, "ES256", hs, cs, &jwt) == 0) {
      free(a->jwt);
      a->jwt = jwt;
      a->jwt_iat = now;
    } else {
      log_at(LOG_ERROR, "apns: cannot sign a provider token");
    }
    free(hs);
    free(cs);
    json_decref(h);
    json_decref(c);
  }
  if (a->jwt) out = xstrdup(a->jwt);
  pthread_mutex_unlock(&a->mu);
  return out;
}

static void expire_token(apns_t *a, const char *seen) {
  pthread_mutex_lock(&a->mu);
  if (a->jwt && seen && strcmp(a->jwt, seen) == 0) a->jwt_iat = 0; /* next request makes a new one */
  pthread_mutex_unlock(&a->mu);
}

static const char *const aps_keys[] = {"alert",
                                       "sound",
                                       "category",
                                       "thread-id",
                                       "content-available",
                                       "mutable-content",
                                       "interruption-level",
                                       "relevance-score",
                                       "target-content-id",
                                       NULL};

char *push_apns_body(const json_t *data, int64_t increment_to) {
  json_t *out = json_object();
  json_t *aps =
      json_is_object(json_object_get(data, "aps")) ? json_deep_copy(json_object_get(data, "aps")) : json_object();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)data, k, v) {
    int is_aps = 0;
    for (int i = 0; aps_keys[i] && !is_aps; i++) is_aps = strcmp(k, aps_keys[i]) == 0;
    if (is_aps) {
      json_object_set(aps, k, v);
    } else if (strcmp(k, "badge") == 0) {
      if (json_is_string(v) && strcmp(json_string_value(v), "Increment") == 0)
        json_object_set_new(aps, "badge", json_integer(increment_to));
      else if (json_is_integer(v)) json_object_set(aps, "badge", v);
    } else if (strcmp(k, "aps") != 0 && strcmp(k, "_profile") != 0 && strcmp(k, "_apns_team_id") != 0 &&
               strcmp(k, "ios") != 0 && strcmp(k, "android") != 0 && strcmp(k, "wp") != 0) {
      json_object_set(out, k, v); /* custom keys sit beside aps */
    }
  }
  json_object_set_new(out, "aps", aps);
  char *s = json_dumps(out, JSON_COMPACT);
  json_decref(out);
  return s;
}

typedef struct {
  push_delivery_t *d;
  apns_t *a;
  char *jwt;
} call_t;

static void apns_done(void *arg, const httpc_result_t *res) {
  call_t *x = arg;
  long st = res->status;
  json_t *j = res->body && res->len ? json_loadb(res->body, res->len, 0, NULL) : NULL;
  const char *reason = json_string_value(json_object_get(j, "reason"));
  push_outcome_t o = push_outcome_of(st);
  if (st == 410 /* Unregistered: the app is gone from the device */ ||
      (st == 400 && reason && (!strcmp(reason, "BadDeviceToken") || !strcmp(reason, "DeviceTokenNotForTopic")))) {
    o = PUSH_GONE;
  } else if (st == 403 && reason && !strcmp(reason, "ExpiredProviderToken")) {
    expire_token(x->a, x->jwt);
    o = PUSH_RETRY;
  }
  push_attempt_done(x->d, o, st, reason ? reason : st ? NULL : res->error);
  json_decref(j);
  free(x->jwt);
  free(x);
}

static int token_ok(const char *t) {
  if (!*t || strlen(t) > 200) return 0;
  for (; *t; t++)
    if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z'))) return 0;
  return 1;
}

static void apns_attempt(push_worker_t *pw, void *state, push_delivery_t *d) {
  apns_t *a = state;
  const push_device_t *dev = &d->devices[0];
  httpc_t *http = push_http(pw);
  if (!http) {
    push_attempt_done(d, PUSH_RETRY, 0, "worker stopping");
    return;
  }
  if (!token_ok(dev->token)) {
    push_attempt_done(d, PUSH_GONE, 0, "not an APNs device token");
    return;
  }
  char *jwt = provider_token(a);
  if (!jwt) {
    push_attempt_done(d, PUSH_FAIL, 0, "cannot sign the provider token");
    return;
  }
  json_t *pd = push_platform_data(d->data, "ios");
  const char *profile = json_string_value(json_object_get(pd, "_profile"));
  int sandbox = profile && strcmp(profile, "dev") == 0;
  char *body = push_apns_body(pd, dev->badge);
  /* nothing the user sees: a background push, which Apple wants at priority 5 */
  int background = json_object_get(pd, "content-available") && !json_object_get(pd, "alert") &&
                   !json_object_get(pd, "badge") && !json_object_get(pd, "sound");
  json_decref(pd);
  buf_t url = BUF_INIT, auth = BUF_INIT, topic = BUF_INIT, exp = BUF_INIT;
  buf_printf(&url, "%s/3/device/%s", a->base[sandbox], dev->token);
  buf_printf(&auth, "authorization: bearer %s", jwt);
  buf_printf(&topic, "apns-topic: %s", a->topic);
  buf_printf(&exp, "apns-expiration: %lld", (long long)(now_ms() / 1000) + PUSH_EXPIRY_S);
  const char *headers[] = {buf_cstr(&auth),
                           buf_cstr(&topic),
                           background ? "apns-push-type: background" : "apns-push-type: alert",
                           buf_cstr(&exp),
                           background ? "apns-priority: 5" : "apns-priority: 10",
                           "content-type: application/json",
                           NULL};
  call_t *x = xcalloc(1, sizeof *x);
  x->d = d;
  x->a = a;
  x->jwt = jwt;
  int rc = httpc_request(http, "POST", buf_cstr(&url), headers, body, body ? strlen(body) : 0, push_timeout_ms(pw),
                         a->h2c[sandbox] ? HTTPC_H2C : HTTPC_HTTP2, apns_done, x);
  buf_free(&url);
  buf_free(&auth);
  buf_free(&topic);
  buf_free(&exp);
  free(body);
  if (rc < 0) {
    free(x->jwt);
    free(x);
    push_attempt_done(d, PUSH_RETRY, 0, tern_strerror(rc));
  }
}

const push_provider_t push_apns_provider = {
    .name = "apns",
    .types = types,
    .init = apns_init,
    .free = apns_free,
    .attempt = apns_attempt,
};
