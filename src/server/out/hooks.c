/* hooks.c — calling the app's hook functions (see hooks.h). */
#include "hooks.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "out.h"

static const char *const names[HOOK_COUNT] = {
    "_messageReceived",     "_receiversOffline", "_messageSent",       "_messageUpdate",      "_conversationStart",
    "_conversationStarted", "_conversationAdd",  "_conversationAdded", "_conversationRemove", "_conversationRemoved",
    "_conversationUpdate",  "_clientOnline",     "_clientOffline",     "_rtmClientSign",
};

/* Latency buckets (ms) for the /metrics histogram. */
static const double bounds[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};
#define NBOUNDS (sizeof bounds / sizeof bounds[0])

typedef struct {
  atomic_ulong calls, failures, buckets[NBOUNDS + 1];
  atomic_ullong micros;
} hook_stats_t;

struct hooks {
  char *url, *hook_key;
  char *hdr_id, *hdr_key, *hdr_hook;
  long timeout_ms;
  int fail_closed;
  int enabled[HOOK_COUNT];
  hook_stats_t stats[HOOK_COUNT];
};

const char *hook_name(hook_t which) { return which < HOOK_COUNT ? names[which] : "?"; }

hooks_t *hooks_new(const char *url, const char *app_id, const char *app_key, const char *hook_key, const char *list,
                   long timeout_ms, int fail_closed) {
  if (!url || !*url || !list || !*list) return NULL;
  hooks_t *h = xcalloc(1, sizeof *h);
  size_t n = strlen(url);
  while (n && url[n - 1] == '/') n--;
  h->url = xstrndup(url, n);
  h->timeout_ms = timeout_ms;
  h->fail_closed = fail_closed;
  buf_t b = BUF_INIT;
  buf_printf(&b, "X-LC-Id: %s", app_id);
  h->hdr_id = buf_cstr(&b);
  b = (buf_t)BUF_INIT;
  buf_printf(&b, "X-LC-Key: %s", app_key);
  h->hdr_key = buf_cstr(&b);
  b = (buf_t)BUF_INIT;
  buf_printf(&b, "X-LC-Hook-Key: %s", hook_key ? hook_key : "");
  h->hdr_hook = buf_cstr(&b);
  char *copy = xstrdup(list), *save = NULL;
  for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    for (int i = 0; i < HOOK_COUNT; i++)
      if (strcmp(tok, "all") == 0 || strcmp(tok, names[i]) == 0) h->enabled[i] = 1;
  }
  free(copy);
  return h;
}

void hooks_free(hooks_t *h) {
  if (!h) return;
  free(h->url);
  free(h->hdr_id);
  free(h->hdr_key);
  free(h->hdr_hook);
  free(h);
}

int hook_enabled(const hooks_t *h, hook_t which) { return h && which < HOOK_COUNT && h->enabled[which]; }

typedef struct {
  im_worker_t *w;
  hook_t which;
  hook_cb cb;
  void *arg;
} call_t;

static void on_done(void *arg, const httpc_result_t *res) {
  call_t *c = arg;
  hooks_t *h = out_of(c->w->im)->hooks; /* a call was made: there is an out_t */
  hook_stats_t *st = &h->stats[c->which];
  double ms = res->seconds * 1000.0;
  size_t k = 0;
  while (k < NBOUNDS && ms > bounds[k]) k++;
  atomic_fetch_add(&st->buckets[k], 1);
  atomic_fetch_add(&st->micros, (unsigned long long)(res->seconds * 1e6));
  json_t *doc = NULL, *result = NULL;
  int ok = res->status == 200;
  if (ok) {
    doc = json_loadb(res->body, res->len, 0, NULL);
    if (!json_is_object(doc)) ok = 0;
    else result = json_object_get(doc, "result");
  }
  if (!ok) {
    atomic_fetch_add(&st->failures, 1);
    log_at(LOG_WARN, "hook %s failed: %s", names[c->which],
           res->status ? "bad answer" : (res->error ? res->error : "no answer"));
    if (res->status) log_at(LOG_DEBUG, "hook %s answered %ld: %.200s", names[c->which], res->status, res->body);
  }
  if (c->cb) c->cb(c->w, c->arg, ok ? result : NULL, !ok && h->fail_closed);
  json_decref(doc);
  free(c);
}

void hook_call(im_worker_t *w, hook_t which, json_t *params, hook_cb cb, void *arg) {
  out_t *o = out_of(w->im);
  hooks_t *h = o ? o->hooks : NULL;
  httpc_t *http = out_http(w);
  if (!hook_enabled(h, which) || !http) {
    json_decref(params);
    if (cb) cb(w, arg, NULL, 0);
    return;
  }
  char url[512];
  snprintf(url, sizeof url, "%s/1.1/functions/%s", h->url, names[which]);
  char *body = json_dumps(params, JSON_COMPACT);
  json_decref(params);
  const char *headers[] = {"Content-Type: application/json", h->hdr_id, h->hdr_key, h->hdr_hook, NULL};
  call_t *c = xmalloc(sizeof *c);
  *c = (call_t){w, which, cb, arg};
  atomic_fetch_add(&h->stats[which].calls, 1);
  if (httpc_request(http, "POST", url, headers, body, strlen(body), h->timeout_ms, 0, on_done, c) < 0) {
    httpc_result_t res = {.error = "request not started", .body = ""};
    on_done(c, &res);
  }
  free(body);
}

void hooks_metrics(const hooks_t *h, buf_t *out) {
  if (!h) return;
  buf_append_str(out, "# HELP tern_hook_calls_total Hook calls made.\n# TYPE tern_hook_calls_total counter\n");
  for (int i = 0; i < HOOK_COUNT; i++)
    if (h->enabled[i])
      buf_printf(out, "tern_hook_calls_total{hook=\"%s\"} %lu\n", names[i], atomic_load(&h->stats[i].calls));
  buf_append_str(out, "# HELP tern_hook_failures_total Hook calls that failed (timeout, error, bad answer).\n"
                      "# TYPE tern_hook_failures_total counter\n");
  for (int i = 0; i < HOOK_COUNT; i++)
    if (h->enabled[i])
      buf_printf(out, "tern_hook_failures_total{hook=\"%s\"} %lu\n", names[i], atomic_load(&h->stats[i].failures));
  buf_append_str(out,
                 "# HELP tern_hook_latency_seconds Hook call latency.\n# TYPE tern_hook_latency_seconds histogram\n");
  for (int i = 0; i < HOOK_COUNT; i++) {
    if (!h->enabled[i]) continue;
    unsigned long cum = 0;
    for (size_t k = 0; k <= NBOUNDS; k++) {
      cum += atomic_load(&h->stats[i].buckets[k]);
      if (k < NBOUNDS)
        buf_printf(out, "tern_hook_latency_seconds_bucket{hook=\"%s\",le=\"%g\"} %lu\n", names[i], bounds[k] / 1000,
                   cum);
      else buf_printf(out, "tern_hook_latency_seconds_bucket{hook=\"%s\",le=\"+Inf\"} %lu\n", names[i], cum);
    }
    buf_printf(out, "tern_hook_latency_seconds_sum{hook=\"%s\"} %.6f\n", names[i],
               atomic_load(&h->stats[i].micros) / 1e6);
    buf_printf(out, "tern_hook_latency_seconds_count{hook=\"%s\"} %lu\n", names[i], cum);
  }
}

json_t *hooks_status(const hooks_t *h) {
  json_t *list = json_array();
  for (int i = 0; i < HOOK_COUNT; i++) {
    const hook_stats_t *st = h ? &h->stats[i] : NULL;
    unsigned long calls = 0, done = 0;
    double ms = 0;
    if (st) {
      calls = atomic_load(&st->calls);
      for (size_t k = 0; k <= NBOUNDS; k++) done += atomic_load(&st->buckets[k]);
      ms = done ? (double)atomic_load(&st->micros) / 1000.0 / (double)done : 0;
    }
    json_array_append_new(list, json_pack("{s:s, s:b, s:I, s:I, s:f}", "name", names[i], "enabled", hook_enabled(h, i),
                                          "calls", (json_int_t)calls, "failures",
                                          (json_int_t)(st ? atomic_load(&st->failures) : 0), "avg_ms", ms));
  }
  json_t *o = json_pack("{s:o, s:I, s:b, s:o}", "url", h ? json_string(h->url) : json_null(), "timeout_ms",
                        (json_int_t)(h ? h->timeout_ms : 0), "fail_closed", h ? h->fail_closed : 0, "hooks", list);
  return o;
}
