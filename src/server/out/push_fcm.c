/* push_fcm.c — the FCM provider: Firebase Cloud Messaging's HTTP v1 API.
 *
 * Sending takes an OAuth2 access token, which the service account buys at the token
 * endpoint with an RS256 JWT assertion (RFC 7523): {"iss": client_email, "scope":
 * firebase.messaging, "aud": <token URL>, "iat", "exp": iat + 1 h}. The token (valid about
 * an hour) is shared by every worker; a worker that finds none, or an expired one, fetches
 * its own and parks its deliveries on a wait list until it arrives. Then each device gets
 * POST <fcm_base_url>/v1/projects/<project>/messages:send with {"message": {"token",
 * "notification"?, "data", "android": {"ttl"}}}.
 *
 * fcm_token_url and fcm_base_url exist so that tests can point both at a local server. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "push_internal.h"
#include "timeutil.h"

#define SCOPE "https://www.googleapis.com/auth/firebase.messaging"

typedef struct {
  EVP_PKEY *key;
  char *email, *key_id, *token_url, *send_url;
  pthread_mutex_t mu;
  char *access; /* "Authorization: Bearer …" */
  int64_t access_until_ms;
} fcm_t;

/* Per worker: the deliveries waiting for an access token. */
typedef struct {
  push_worker_t *pw;
  fcm_t *f;
  int fetching;
  push_delivery_t *wait_head, *wait_tail;
} fcm_worker_t;

static const char *const types[] = {"android", NULL};

static void fcm_free(void *state) {
  fcm_t *f = state;
  if (!f) return;
  EVP_PKEY_free(f->key);
  free(f->email);
  free(f->key_id);
  free(f->token_url);
  free(f->send_url);
  free(f->access);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

static int fcm_init(const tern_config_t *cfg, void **state) {
  if (!*cfg->fcm_credentials_path) {
    log_at(LOG_ERROR, "push_provider fcm needs fcm_credentials_path (a service-account JSON key)");
    return TERN_ECONFIG;
  }
  json_error_t e;
  json_t *cred = json_load_file(cfg->fcm_credentials_path, 0, &e);
  const char *pem = json_string_value(json_object_get(cred, "private_key"));
  const char *email = json_string_value(json_object_get(cred, "client_email"));
  const char *project =
      *cfg->fcm_project_id ? cfg->fcm_project_id : json_string_value(json_object_get(cred, "project_id"));
  const char *token_url =
      *cfg->fcm_token_url ? cfg->fcm_token_url : json_string_value(json_object_get(cred, "token_uri"));
  const char *key_id = json_string_value(json_object_get(cred, "private_key_id"));
  if (!cred || !pem || !email || !project) {
    log_at(LOG_ERROR,
           "fcm_credentials_path: %s is not a service-account key with private_key, client_email and "
           "project_id (%s)",
           cfg->fcm_credentials_path, cred ? "field missing" : e.text);
    json_decref(cred);
    return TERN_ECONFIG;
  }
  EVP_PKEY *key = push_pem_key(pem, strlen(pem));
  if (!key || EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    log_at(LOG_ERROR, "fcm_credentials_path: private_key is not an RSA private key");
    EVP_PKEY_free(key);
    json_decref(cred);
    return TERN_ECONFIG;
  }
  fcm_t *f = xcalloc(1, sizeof *f);
  f->key = key;
  f->email = xstrdup(email);
  f->key_id = key_id ? xstrdup(key_id) : NULL;
  f->token_url = xstrdup(token_url ? token_url : "https://oauth2.googleapis.com/token");
  buf_t b = BUF_INIT;
  size_t n = strlen(cfg->fcm_base_url);
  while (n && cfg->fcm_base_url[n - 1] == '/') n--;
  buf_printf(&b, "%.*s/v1/projects/%s/messages:send", (int)n, cfg->fcm_base_url, project);
  f->send_url = buf_cstr(&b);
  pthread_mutex_init(&f->mu, NULL);
  json_decref(cred);
  *state = f;
  return 0;
}

static void fcm_worker_free(void *wstate) { free(wstate); }

/* Data values must be strings in FCM: other JSON goes as its text. */
static void put_data(json_t *data, const char *k, json_t *v) {
  if (json_is_string(v)) {
    json_object_set(data, k, v);
  } else {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) json_object_set_new(data, k, json_string(s));
    free(s);
  }
}

char *push_fcm_body(const json_t *d, const char *token) {
  json_t *msg = json_pack("{s:s}", "token", token);
  json_t *data = json_object();
  json_t *alert = json_object_get(d, "alert"), *title = json_object_get(d, "title");
  int silent = json_is_true(json_object_get(d, "silent"));
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)d, k, v) {
    if (!strcmp(k, "_profile") || !strcmp(k, "_apns_team_id") || !strcmp(k, "ios") || !strcmp(k, "android") ||
        !strcmp(k, "wp") || !strcmp(k, "badge") || !strcmp(k, "silent"))
      continue;
    if (!silent && (!strcmp(k, "alert") || !strcmp(k, "title"))) continue; /* they go to notification */
    put_data(data, k, v);
  }
  if (!silent && (alert || title)) {
    json_t *n = json_object();
    if (json_is_object(alert)) {
      json_t *t = json_object_get(alert, "title"), *b = json_object_get(alert, "body");
      if (json_is_string(t)) json_object_set(n, "title", t);
      if (json_is_string(b)) json_object_set(n, "body", b);
    } else if (json_is_string(alert)) {
      json_object_set(n, "body", alert);
    }
    if (json_is_string(title) && !json_object_get(n, "title")) json_object_set(n, "title", title);
    if (json_object_size(n)) json_object_set_new(msg, "notification", n);
    else json_decref(n);
  }
  json_object_set_new(msg, "data", data);
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%ds", PUSH_EXPIRY_S);
  json_t *android = json_pack("{s:s}", "ttl", ttl);
  const char *sound = json_string_value(json_object_get(d, "sound"));
  if (sound && !silent) json_object_set_new(android, "notification", json_pack("{s:s}", "sound", sound));
  json_object_set_new(msg, "android", android);
  json_t *out = json_pack("{s:o}", "message", msg);
  char *s = json_dumps(out, JSON_COMPACT);
  json_decref(out);
  return s;
}

/* The cached "Authorization: Bearer …" header (a copy), or NULL when there is none. */
static char *access_header(fcm_t *f) {
  char *out = NULL;
  pthread_mutex_lock(&f->mu);
  if (f->access && now_ms() < f->access_until_ms) out = xstrdup(f->access);
  pthread_mutex_unlock(&f->mu);
  return out;
}

typedef struct {
  push_delivery_t *d;
  fcm_t *f;
  char *auth;
} call_t;

static void send_done(void *arg, const httpc_result_t *res) {
  call_t *x = arg;
  long st = res->status;
  push_outcome_t o = push_outcome_of(st);
  json_t *j = res->body && res->len ? json_loadb(res->body, res->len, 0, NULL) : NULL;
  const char *status = json_string_value(json_object_get(json_object_get(j, "error"), "status"));
  if (st == 404 || (status && !strcmp(status, "UNREGISTERED"))) {
    o = PUSH_GONE;
  } else if (st == 401) { /* the token went stale early: drop it, the retry buys another */
    pthread_mutex_lock(&x->f->mu);
    if (x->f->access && !strcmp(x->f->access, x->auth)) x->f->access_until_ms = 0;
    pthread_mutex_unlock(&x->f->mu);
    o = PUSH_RETRY;
  }
  push_attempt_done(x->d, o, st, status ? status : st ? NULL : res->error);
  json_decref(j);
  free(x->auth);
  free(x);
}

static void send_one(push_worker_t *pw, fcm_t *f, push_delivery_t *d, char *auth) {
  httpc_t *http = push_http(pw);
  if (!http) {
    free(auth);
    push_attempt_done(d, PUSH_RETRY, 0, "worker stopping");
    return;
  }
  json_t *pd = push_platform_data(d->data, "android");
  char *body = push_fcm_body(pd, d->devices[0].token);
  json_decref(pd);
  const char *headers[] = {auth, "Content-Type: application/json; charset=utf-8", NULL};
  call_t *x = xcalloc(1, sizeof *x);
  x->d = d;
  x->f = f;
  x->auth = auth;
  int rc = httpc_request(http, "POST", f->send_url, headers, body, strlen(body), push_timeout_ms(pw), HTTPC_HTTP2,
                         send_done, x);
  free(body);
  if (rc < 0) {
    free(x->auth);
    free(x);
    push_attempt_done(d, PUSH_RETRY, 0, tern_strerror(rc));
  }
}

static void token_done(void *arg, const httpc_result_t *res) {
  fcm_worker_t *fw = arg;
  fcm_t *f = fw->f;
  fw->fetching = 0;
  json_t *j = res->status == 200 ? json_loadb(res->body, res->len, 0, NULL) : NULL;
  const char *tok = json_string_value(json_object_get(j, "access_token"));
  json_t *ttl = json_object_get(j, "expires_in");
  char *auth = NULL;
  if (tok) {
    buf_t b = BUF_INIT;
    buf_printf(&b, "Authorization: Bearer %s", tok);
    auth = buf_cstr(&b);
    int64_t secs = json_is_integer(ttl) ? json_integer_value(ttl) : 3600;
    pthread_mutex_lock(&f->mu);
    free(f->access);
    f->access = xstrdup(auth);
    f->access_until_ms = now_ms() + (secs > 120 ? secs - 60 : secs) * 1000; /* a minute early */
    pthread_mutex_unlock(&f->mu);
  } else {
    log_at(LOG_WARN, "fcm: the token endpoint answered %ld%s%s", res->status, res->status ? "" : ": ",
           res->status ? "" : res->error);
  }
  push_delivery_t *d = fw->wait_head;
  fw->wait_head = fw->wait_tail = NULL;
  while (d) {
    push_delivery_t *next = d->wait_next;
    d->wait_next = NULL;
    if (auth) send_one(fw->pw, f, d, xstrdup(auth));
    else
      push_attempt_done(d, push_outcome_of(res->status) == PUSH_OK ? PUSH_RETRY : push_outcome_of(res->status),
                        res->status, "no OAuth2 access token");
    d = next;
  }
  free(auth);
  json_decref(j);
}

static void fetch_token(fcm_worker_t *fw) {
  fcm_t *f = fw->f;
  httpc_t *http = push_http(fw->pw);
  int64_t now = now_ms() / 1000;
  json_t *h = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
  if (f->key_id) json_object_set_new(h, "kid", json_string(f->key_id));
  json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", f->email, "scope", SCOPE, "aud", f->token_url, "iat",
                        (json_int_t)now, "exp", (json_int_t)now + 3600);
  char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT), *jwt = NULL;
  json_decref(h);
  json_decref(c);
  pthread_mutex_lock(&f->mu); /* one key, several workers: sign one at a time */
  int rc = push_jwt_sign(f->key, "RS256", hs, cs, &jwt);
  pthread_mutex_unlock(&f->mu);
  free(hs);
  free(cs);
  if (rc == 0 && http) {
    buf_t body = BUF_INIT;
    buf_printf(&body, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&assertion=%s", jwt);
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    fw->fetching = 1;
    rc = httpc_request(http, "POST", f->token_url, headers, body.data, body.len, push_timeout_ms(fw->pw), 0, token_done,
                       fw);
    buf_free(&body);
    if (rc < 0) fw->fetching = 0;
  }
  free(jwt);
  if (!fw->fetching) {
    httpc_result_t none = {.status = 0, .body = "", .error = http ? "cannot request an access token" : "stopping"};
    token_done(fw, &none);
  }
}

static void fcm_attempt(push_worker_t *pw, void *state, push_delivery_t *d) {
  fcm_t *f = state;
  char *auth = access_header(f);
  if (auth) {
    send_one(pw, f, d, auth);
    return;
  }
  int pidx = d->pidx;
  fcm_worker_t *fw = pw->pstate[pidx];
  if (!fw) {
    fw = pw->pstate[pidx] = xcalloc(1, sizeof *fw);
    fw->pw = pw;
    fw->f = f;
  }
  d->wait_next = NULL;
  if (fw->wait_tail) fw->wait_tail->wait_next = d;
  else fw->wait_head = d;
  fw->wait_tail = d;
  if (!fw->fetching) fetch_token(fw);
}

const push_provider_t push_fcm_provider = {
    .name = "fcm",
    .types = types,
    .init = fcm_init,
    .free = fcm_free,
    .attempt = fcm_attempt,
    .worker_free = fcm_worker_free,
};
