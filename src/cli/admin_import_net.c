/* admin_import_net.c — the importer's HTTP: libcurl's multi interface on one thread.
 *
 * Why libcurl and not admin_http.c: the importer keeps many requests in flight (several
 * conversations' histories at once, the target's batch posts beside them), reuses
 * connections, and speaks HTTPS to LeanCloud; admin_http.c is one blocking exchange per
 * call. ternd already links libcurl (httpc.c).
 *
 * Politeness and robustness live here so every caller gets them: source requests start
 * no faster than --rate per second; an answer of 429 or 5xx, or a transfer that failed
 * (refused, reset mid-answer, timed out, stalled, a JSON answer cut short), is retried
 * after the answer's Retry-After (in seconds or an HTTP date) or else an exponential
 * backoff with full jitter, both capped; after `retries` further attempts, or once
 * `retry_for_ms` has passed since the first, the callback gets the last failure.
 *
 * Nothing waits forever: each attempt has a connect limit, an overall limit (--timeout;
 * not for file bytes, which may legitimately take long) and a stall limit (libcurl's
 * low-speed limit: no byte moved for stall_ms), so a connection that goes quiet — a peer
 * gone without a FIN, a proxy holding an answer — is cut and retried like any failure.
 * Callbacks run from imp_net_step, after libcurl has returned, so they may queue new
 * requests. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin_import.h"
#include "crypto.h"
#include "timeutil.h"

typedef struct deferred {
  imp_req_cb cb;
  void *arg;
  struct deferred *next;
} deferred_t;

struct imp_net {
  imp_net_opts_t o;
  CURLM *multi;
  imp_req_t *waiting; /* not started yet: queued or waiting for a retry */
  imp_req_t *active;  /* in flight */
  int inflight;
  int npending;           /* waiting + in flight + deferred answers */
  int64_t next_source_ms; /* the rate's next free slot */
  deferred_t *dq, **dq_tail;
  long requests, retried;
};

imp_net_t *imp_net_new(const imp_net_opts_t *o) {
  static int inited;
  if (!inited) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    inited = 1;
  }
  imp_net_t *n = xcalloc(1, sizeof *n);
  n->o = *o;
  if (n->o.max_backoff_ms <= 0) n->o.max_backoff_ms = 30000;
  n->multi = curl_multi_init();
  curl_multi_setopt(n->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
  n->dq_tail = &n->dq;
  return n;
}

static void req_free(imp_req_t *r) {
  if (r->easy) curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->hdrs);
  buf_free(&r->body);
  buf_free(&r->req_body);
  free(r->content_type);
  json_decref(r->json);
  imp_items_free(r->items);
  free((char *)r->url);
  free(r->method);
  free(r);
}

void imp_net_free(imp_net_t *n) {
  if (!n) return;
  imp_req_t *r;
  while ((r = n->waiting)) {
    n->waiting = r->next;
    req_free(r);
  }
  /* an interrupted run leaves requests in flight: their answers are not wanted */
  while ((r = n->active)) {
    n->active = r->next;
    curl_multi_remove_handle(n->multi, r->easy);
    req_free(r);
  }
  curl_multi_cleanup(n->multi);
  deferred_t *d;
  while ((d = n->dq)) {
    n->dq = d->next;
    free(d);
  }
  free(n);
}

/* Runs the deferred callbacks queued so far (those they queue wait for the next call);
 * 1 if there were any. */
static int run_deferred(imp_net_t *n) {
  deferred_t *d = n->dq;
  n->dq = NULL;
  n->dq_tail = &n->dq;
  int ran = d != NULL;
  while (d) {
    deferred_t *nx = d->next;
    n->npending--;
    d->cb(NULL, d->arg);
    free(d);
    d = nx;
  }
  return ran;
}

void imp_net_cancel(imp_net_t *n) {
  while (n->waiting || n->active || n->dq) {
    run_deferred(n);
    imp_req_t *r = n->waiting ? n->waiting : n->active;
    if (!r) continue;
    if (r == n->waiting) {
      n->waiting = r->next;
    } else {
      n->active = r->next;
      curl_multi_remove_handle(n->multi, r->easy);
      n->inflight--;
    }
    n->npending--;
    buf_free(&r->body);
    r->status = 0;
    snprintf(r->err, sizeof r->err, "cancelled");
    r->cb(r, r->arg);
    req_free(r);
  }
}

int imp_net_pending(const imp_net_t *n) { return n->npending; }

void imp_net_counts(const imp_net_t *n, long *requests, long *retries) {
  *requests = n->requests;
  *retries = n->retried;
}

void imp_net_defer(imp_net_t *n, imp_req_cb cb, void *arg) {
  deferred_t *d = xcalloc(1, sizeof *d);
  d->cb = cb;
  d->arg = arg;
  *n->dq_tail = d;
  n->dq_tail = &d->next;
  n->npending++; /* an answer not yet delivered, like a request in flight */
}

static size_t on_body(char *p, size_t sz, size_t nm, void *arg) {
  imp_req_t *r = arg;
  size_t n = sz * nm, cap = r->flags & IMP_FILE ? IMP_FILE_MAX : IMP_ANSWER_MAX;
  if (r->body.len + n > cap) {
    snprintf(r->oversize, sizeof r->oversize, "the answer is larger than %u MiB", (unsigned)(cap >> 20));
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  buf_append(&r->body, p, n);
  return n;
}

/* libcurl calls this at least once a second while a transfer is open: the stall limit. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal;
  (void)ultotal;
  imp_req_t *r = arg;
  int64_t now = now_ms();
  if ((int64_t)(dlnow + ulnow) != r->moved) {
    r->moved = (int64_t)(dlnow + ulnow);
    r->moved_ms = now;
    return 0;
  }
  if (now - r->moved_ms < r->stall_ms) return 0;
  snprintf(r->stalled, sizeof r->stalled, "stalled: no byte moved for %.0f s", (double)r->stall_ms / 1000.0);
  return 1; /* aborts the transfer: CURLE_ABORTED_BY_CALLBACK */
}

/* Retry-After: delta seconds or an HTTP date. */
static size_t on_header(char *p, size_t sz, size_t nm, void *arg) {
  imp_req_t *r = arg;
  size_t n = sz * nm;
  if (n > 18 && strncasecmp(p, "Transfer-Encoding:", 18) == 0) {
    char v[64];
    size_t k = n - 18 < sizeof v - 1 ? n - 18 : sizeof v - 1;
    memcpy(v, p + 18, k);
    v[k] = 0;
    if (strstr(v, "chunked") || strstr(v, "Chunked")) r->chunked = 1;
  }
  if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
    char v[128];
    size_t k = n - 12 < sizeof v - 1 ? n - 12 : sizeof v - 1;
    memcpy(v, p + 12, k);
    v[k] = 0;
    char *s = v + strspn(v, " \t");
    s[strcspn(s, "\r\n")] = 0;
    char *end;
    double secs = strtod(s, &end);
    if (end != s && *end == 0 && secs >= 0) {
      r->retry_after_ms = (int64_t)(secs * 1000);
    } else {
      time_t t = curl_getdate(s, NULL);
      if (t > 0) {
        int64_t d = (int64_t)t * 1000 - now_ms();
        r->retry_after_ms = d > 0 ? d : 0;
      }
    }
  }
  return n;
}

imp_req_t *imp_net_request(imp_net_t *n, const char *method, const char *url, const char *headers, const void *body,
                           size_t len, int flags, imp_req_cb cb, void *arg) {
  imp_req_t *r = xcalloc(1, sizeof *r);
  r->method = xstrdup(method);
  r->url = xstrdup(url);
  r->flags = flags;
  r->cb = cb;
  r->arg = arg;
  r->retry_after_ms = -1;
  if (body) buf_append(&r->req_body, body, len);
  for (const char *h = headers; h && *h;) {
    size_t k = strcspn(h, "\r\n");
    if (k) {
      char *line = xstrndup(h, k);
      r->hdrs = curl_slist_append(r->hdrs, line);
      free(line);
    }
    h += k;
    h += strspn(h, "\r\n");
  }
  r->hdrs = curl_slist_append(r->hdrs, "Expect:"); /* no 100-continue round trip for batch bodies */
  /* FIFO: append */
  imp_req_t **pp = &n->waiting;
  while (*pp) pp = &(*pp)->next;
  *pp = r;
  n->npending++;
  return r;
}

static void start(imp_net_t *n, imp_req_t *r) {
  CURL *e = curl_easy_init();
  r->easy = e;
  if (r->attempts++ == 0) r->first_ms = now_ms();
  n->requests++;
  buf_free(&r->body);
  free(r->content_type);
  r->content_type = NULL;
  json_decref(r->json);
  r->json = NULL;
  imp_items_free(r->items);
  r->items = NULL;
  r->retry_after_ms = -1;
  r->status = 0;
  r->err[0] = 0;
  r->stalled[0] = 0;
  r->oversize[0] = 0;
  r->chunked = 0;
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  long timeout = n->o.timeout_ms > 0 ? n->o.timeout_ms : 60000;
  if (!(r->flags & IMP_FILE)) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout < 15000 ? timeout : 15000L);
  /* stalled: no byte moved either way for stall_ms (libcurl's own low-speed limit
   * averages over a window of seconds, so it would let a stall run on well past it) */
  r->stall_ms = n->o.stall_ms > 0 ? n->o.stall_ms : 30000;
  r->moved = -1;
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* gzip where the server offers it */
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (n->o.insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (n->o.cacert) curl_easy_setopt(e, CURLOPT_CAINFO, n->o.cacert);
  if (strcmp(r->method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->req_body.data ? (char *)r->req_body.data : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->req_body.len);
  }
  curl_multi_add_handle(n->multi, e);
  r->next = n->active;
  n->active = r;
  n->inflight++;
}

/* Full jitter: a random delay in [0, min(cap, base·2^attempt)], at least 100 ms. */
static int64_t backoff_ms(const imp_net_t *n, int attempts) {
  int64_t d = 500;
  for (int i = 1; i < attempts && d < n->o.max_backoff_ms; i++) d *= 2;
  if (d > n->o.max_backoff_ms) d = n->o.max_backoff_ms;
  uint32_t rnd;
  random_bytes(&rnd, sizeof rnd);
  int64_t j = (int64_t)(rnd % (uint32_t)(d + 1));
  return j < 100 ? 100 : j;
}

static int retryable(long status) { return status == 0 || status == 429 || (status >= 500 && status != 501); }

static void finish(imp_net_t *n, imp_req_t *r, CURLcode rc) {
  curl_multi_remove_handle(n->multi, r->easy);
  n->inflight--;
  for (imp_req_t **pp = &n->active; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      r->next = NULL;
      break;
    }
  int cut = 0; /* a 2xx JSON answer that does not parse: cut short, as retryable as a reset */
  if (rc == CURLE_OK) {
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) r->content_type = xstrdup(ct);
    if ((r->flags & (IMP_JSON | IMP_HIST)) && r->status >= 200 && r->status <= 299) {
      /* NUL in a string is allowed: one message holding U+0000 is then the target's to
       * refuse (a skip with its reason), not the whole page's */
      json_error_t je = {.text = ""};
      int not_array = 1;
      if (r->flags & IMP_HIST) {
        r->items = imp_items_scan((char *)r->body.data, r->body.len, &not_array, je.text, sizeof je.text);
        if (r->items) r->body = (buf_t)BUF_INIT; /* the page holds the bytes now */
      }
      if (!r->items && not_array) r->json = json_loadb((const char *)r->body.data, r->body.len, JSON_ALLOW_NUL, &je);
      if (!r->items && !r->json) {
        /* libcurl checked a Content-Length or the chunks; without either the connection's
         * close ended the answer, and only the JSON can tell it was cut */
        curl_off_t len = -1;
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
        cut = len < 0 && !r->chunked;
        snprintf(r->err, sizeof r->err, "HTTP %ld with an answer %s (%zu bytes): %.100s", r->status,
                 cut ? "cut short" : "that is not JSON", r->body.len, je.text);
      }
    }
  } else {
    r->status = 0;
    if (r->stalled[0]) snprintf(r->err, sizeof r->err, "%s", r->stalled);
    else if (r->oversize[0]) snprintf(r->err, sizeof r->err, "%s", r->oversize);
    else if (!r->err[0]) snprintf(r->err, sizeof r->err, "%s", curl_easy_strerror(rc));
  }
  curl_easy_cleanup(r->easy);
  r->easy = NULL;
  if (r->status && (r->status < 200 || r->status > 299) && !r->err[0]) {
    /* LeanCloud's {"code","error"} when there is one */
    json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    const char *e = json_string_value(json_object_get(j, "error"));
    snprintf(r->err, sizeof r->err, "HTTP %ld%s%.200s", r->status, e ? ": " : "", e ? e : "");
    json_decref(j);
  }
  if ((retryable(r->status) && !r->oversize[0]) || cut) { /* the same answer would come again */
    int64_t now = now_ms();
    int64_t d = r->retry_after_ms >= 0 ? r->retry_after_ms : backoff_ms(n, r->attempts);
    if (d > n->o.max_backoff_ms) d = n->o.max_backoff_ms;
    int in_budget = n->o.retry_for_ms <= 0 || now + d - r->first_ms <= n->o.retry_for_ms;
    if (r->attempts <= n->o.retries && in_budget) {
      r->not_before_ms = now + d;
      n->retried++;
      r->next = n->waiting; /* retried first: it holds up a chain of pages */
      n->waiting = r;
      return;
    }
    if (cut) r->status = 0; /* what came is not the answer */
    if (r->attempts > 1) {
      char last[sizeof r->err];
      memcpy(last, r->err, sizeof last);
      snprintf(r->err, sizeof r->err, "gave up after %d attempts in %.0f s: %.190s", r->attempts,
               (double)(now - r->first_ms) / 1000.0, last);
    }
  }
  n->npending--;
  r->cb(r, r->arg);
  req_free(r);
}

/* Starts what may start now; returns ms until the next waiting request may (or -1). */
static int64_t start_ready(imp_net_t *n) {
  int64_t now = now_ms(), next = -1;
  imp_req_t **pp = &n->waiting;
  while (*pp) {
    imp_req_t *r = *pp;
    if (n->inflight >= 64) break;
    int64_t at = r->not_before_ms;
    if ((r->flags & IMP_SOURCE) && n->o.rate > 0 && n->next_source_ms > at) at = n->next_source_ms;
    if (at > now) {
      if (next < 0 || at - now < next) next = at - now;
      pp = &r->next;
      continue;
    }
    *pp = r->next;
    r->next = NULL;
    if ((r->flags & IMP_SOURCE) && n->o.rate > 0) {
      int64_t gap = (int64_t)(1000.0 / n->o.rate);
      n->next_source_ms = (n->next_source_ms > now ? n->next_source_ms : now) + (gap > 0 ? gap : 0);
    }
    start(n, r);
  }
  return next;
}

/* Lets curl move its transfers on and finishes those that completed; 1 if any did. */
static int perform(imp_net_t *n) {
  int running = 0, left, done = 0;
  curl_multi_perform(n->multi, &running);
  CURLMsg *m;
  while ((m = curl_multi_info_read(n->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    imp_req_t *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    finish(n, r, m->data.result);
    done = 1;
  }
  return done;
}

int imp_net_step(imp_net_t *n, int wait_ms) {
  /* deferred callbacks first: they are answers already there */
  int ran = run_deferred(n);
  int64_t next = start_ready(n);
  ran |= perform(n);
  if (ran || n->dq) return n->npending; /* let the caller act on what came */
  int w = wait_ms;
  if (next >= 0 && next < w) w = (int)next;
  if (n->inflight) {
    curl_multi_poll(n->multi, NULL, 0, w, NULL);
  } else if (w > 0 && n->npending) {
    struct timespec ts = {w / 1000, (long)(w % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  perform(n);
  return n->npending;
}
