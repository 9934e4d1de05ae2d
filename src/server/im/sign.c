/* sign.c — signature strings, HMAC checks and the nonce replay cache (see sign.h). */
#include "sign.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "timeutil.h"

/* Nonces seen within the window: an open hash of (nonce, expiry), pruned as it grows. Only
 * nonces of valid signatures get in, and only the app's server can make those, so its size
 * follows legitimate traffic. */
typedef struct {
  char *nonce;
  int64_t until;
} seen_t;

struct signer {
  char *app_id, *master_key;
  int64_t window_ms;
  pthread_mutex_t mu;
  seen_t *seen;
  size_t cap, used;
};

signer_t *signer_new(const char *app_id, const char *master_key, int64_t window_s) {
  signer_t *sg = xcalloc(1, sizeof *sg);
  sg->app_id = xstrdup(app_id);
  sg->master_key = xstrdup(master_key);
  sg->window_ms = window_s * 1000;
  pthread_mutex_init(&sg->mu, NULL);
  sg->cap = 1024;
  sg->seen = xcalloc(sg->cap, sizeof *sg->seen);
  return sg;
}

void signer_free(signer_t *sg) {
  if (!sg) return;
  for (size_t i = 0; i < sg->cap; i++) free(sg->seen[i].nonce);
  free(sg->seen);
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

static uint32_t hash_str(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static void insert(seen_t *tab, size_t cap, char *nonce, int64_t until) {
  size_t i = hash_str(nonce) & (cap - 1);
  while (tab[i].nonce) i = (i + 1) & (cap - 1);
  tab[i].nonce = nonce;
  tab[i].until = until;
}

/* Keeps live entries only, and doubles when still more than half full. Call with mu held. */
static void rebuild(signer_t *sg, int64_t now) {
  size_t live = 0;
  for (size_t i = 0; i < sg->cap; i++)
    if (sg->seen[i].nonce && sg->seen[i].until > now) live++;
  size_t cap = sg->cap;
  while (live * 2 >= cap) cap *= 2;
  seen_t *tab = xcalloc(cap, sizeof *tab);
  for (size_t i = 0; i < sg->cap; i++) {
    if (!sg->seen[i].nonce) continue;
    if (sg->seen[i].until > now) insert(tab, cap, sg->seen[i].nonce, sg->seen[i].until);
    else free(sg->seen[i].nonce);
  }
  free(sg->seen);
  sg->seen = tab;
  sg->cap = cap;
  sg->used = live;
}

/* 1 if the nonce was already used within the window; otherwise remembers it. */
static int replayed(signer_t *sg, const char *nonce, int64_t now) {
  pthread_mutex_lock(&sg->mu);
  size_t i = hash_str(nonce) & (sg->cap - 1);
  int seen = 0;
  while (sg->seen[i].nonce) {
    if (strcmp(sg->seen[i].nonce, nonce) == 0 && sg->seen[i].until > now) {
      seen = 1;
      break;
    }
    i = (i + 1) & (sg->cap - 1);
  }
  if (!seen) {
    if ((sg->used + 1) * 2 > sg->cap) rebuild(sg, now);
    insert(sg->seen, sg->cap, xstrdup(nonce), now + 2 * sg->window_ms);
    sg->used++;
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
