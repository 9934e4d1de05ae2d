/* sign.c — signature strings, HMAC checks and the nonce replay cache (see sign.h). */
#include "sign.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "map.h"
#include "timeutil.h"

/* Nonces seen within the window: a map of nonce → expiry (map.h), pruned of expired ones
 * each time it doubles past what was live at the last prune. Only nonces of valid signatures
 * get in, and only the app's server can make those, so its size follows legitimate traffic. */
typedef struct {
  map_node_t node;
  int64_t until;
  char nonce[];
} seen_t;

struct signer {
  char *app_id, *master_key;
  int64_t window_ms;
  pthread_mutex_t mu;
  map_t seen;
  size_t prune_at; /* prune when the map holds this many */
};

signer_t *signer_new(const char *app_id, const char *master_key, int64_t window_s) {
  signer_t *sg = xcalloc(1, sizeof *sg);
  sg->app_id = xstrdup(app_id);
  sg->master_key = xstrdup(master_key);
  sg->window_ms = window_s * 1000;
  pthread_mutex_init(&sg->mu, NULL);
  map_init(&sg->seen);
  sg->prune_at = 1024;
  return sg;
}

void signer_free(signer_t *sg) {
  if (!sg) return;
  map_iter_t it;
  for (map_node_t *n = map_first(&sg->seen, &it); n; n = map_next(&sg->seen, &it)) {
    map_remove(&sg->seen, n);
    free(MAP_ENTRY(n, seen_t, node));
  }
  map_fini(&sg->seen);
  pthread_mutex_destroy(&sg->mu);
  free(sg->app_id);
  free(sg->master_key);
  free(sg);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void append_sorted(buf_t *b, char *const *ids, size_t n) {
  if (n == 0) return;
  char **v = xmalloc(n * sizeof(char *));
  memcpy(v, ids, n * sizeof(char *));
  qsort(v, n, sizeof(char *), cmp_str);
  for (size_t i = 0; i < n; i++) {
    if (i) buf_append(b, ":", 1);
    buf_append_str(b, v[i]);
  }
  free(v);
}

char *sign_join_sorted(char *const *ids, size_t n) {
  buf_t b = BUF_INIT;
  append_sorted(&b, ids, n);
  return buf_cstr(&b);
}

char *sign_string_login(const char *app_id, const char *client, int64_t t, const char *nonce) {
  buf_t b = BUF_INIT;
  buf_printf(&b, "%s:%s::%lld:%s", app_id, client, (long long)t, nonce ? nonce : "");
  return buf_cstr(&b);
}

char *sign_string_start(const char *app_id, const char *client, char *const *members, size_t n, int64_t t,
                        const char *nonce) {
  buf_t b = BUF_INIT;
  buf_printf(&b, "%s:%s:", app_id, client);
  append_sorted(&b, members, n);
  buf_printf(&b, ":%lld:%s", (long long)t, nonce ? nonce : "");
  return buf_cstr(&b);
}

char *sign_string_action(const char *app_id, const char *client, const char *cid, char *const *ids, size_t n, int64_t t,
                         const char *nonce, const char *action) {
  buf_t b = BUF_INIT;
  buf_printf(&b, "%s:%s:%s:", app_id, client, cid ? cid : "");
  append_sorted(&b, ids, n);
  buf_printf(&b, ":%lld:%s:%s", (long long)t, nonce ? nonce : "", action);
  return buf_cstr(&b);
}

void sign_make(const char *master_key, const char *text, char out[41]) {
  uint8_t mac[20];
  hmac_sha1(master_key, strlen(master_key), text, strlen(text), mac);
  hex_encode(mac, 20, out);
}

/* Drops the expired nonces; the next prune comes when the live ones have doubled (at least
 * 1024), so pruning costs O(1) a nonce over time. Call with mu held. */
static void prune(signer_t *sg, int64_t now) {
  map_iter_t it;
  for (map_node_t *n = map_first(&sg->seen, &it); n; n = map_next(&sg->seen, &it)) {
    seen_t *e = MAP_ENTRY(n, seen_t, node);
    if (e->until > now) continue;
    map_remove(&sg->seen, n);
    free(e);
  }
  size_t live = map_count(&sg->seen);
  sg->prune_at = live * 2 > 1024 ? live * 2 : 1024;
}

/* 1 if the nonce was already used within the window; otherwise remembers it. */
static int replayed(signer_t *sg, const char *nonce, int64_t now) {
  size_t len = strlen(nonce);
  uint64_t h = map_hash(nonce, len);
  pthread_mutex_lock(&sg->mu);
  map_node_t *n = map_find_h(&sg->seen, nonce, len, h);
  seen_t *e = n ? MAP_ENTRY(n, seen_t, node) : NULL;
  int seen = e && e->until > now;
  if (e && !seen) { /* expired, not yet pruned: used again, so remembered again */
    e->until = now + 2 * sg->window_ms;
  } else if (!e) {
    if (map_count(&sg->seen) + 1 > sg->prune_at) prune(sg, now);
    e = xmalloc(sizeof *e + len + 1);
    memcpy(e->nonce, nonce, len + 1);
    e->until = now + 2 * sg->window_ms;
    e->node.key = e->nonce;
    e->node.klen = (uint32_t)len;
    map_add_h(&sg->seen, &e->node, h);
  }
  pthread_mutex_unlock(&sg->mu);
  return seen;
}

int sign_verify(signer_t *sg, const char *text, int64_t t, const char *nonce, const char *s) {
  if (!s || !nonce || !*nonce || t <= 0) return TERN_EPERM;
  char want[41];
  sign_make(sg->master_key, text, want);
  char got[41];
  size_t n = strlen(s);
  if (n != 40) return TERN_EPERM;
  for (size_t i = 0; i < n; i++) got[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] + 32 : s[i]);
  if (!ct_equal(want, 40, got, 40)) return TERN_EPERM;
  int64_t ms = t < 100000000000LL ? t * 1000 : t; /* seconds or milliseconds */
  int64_t now = now_ms();
  if (ms < now - sg->window_ms || ms > now + sg->window_ms) return TERN_ETIMEDOUT;
  return 0;
}

int sign_nonce_fresh(signer_t *sg, const char *nonce) { return replayed(sg, nonce, now_ms()) ? TERN_EEXIST : 0; }

int64_t sign_nonce_ttl_ms(const signer_t *sg) { return 2 * sg->window_ms; }

int sign_check(signer_t *sg, const char *text, int64_t t, const char *nonce, const char *s) {
  int rc = sign_verify(sg, text, t, nonce, s);
  return rc < 0 ? rc : sign_nonce_fresh(sg, nonce);
}
