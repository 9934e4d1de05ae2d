/* push.c — offline push: payload resolution, provider dispatch, retries, dead letters
 * (see push.h).
 *
 * A message's push is resolved once (hook > pushData > template) and fanned out into
 * deliveries: per provider, one per device (APNs, FCM) or one per recipient (webhook).
 * Each delivery lives on the worker that made it until it is delivered or dead-lettered;
 * a retry waits on a uv timer of that worker, so nothing crosses threads except the
 * counters (atomics) and the dead-letter file (O_APPEND, one write per line through
 * libuv's thread pool, never on the loop). */
#include "push_internal.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "crypto.h"
#include "err.h"
#include "jsonlim.h"
#include "log.h"
#include "metrics.h"
#include "out.h"
#include "timeutil.h"

/* ---------------------------------------------------------------- the hub */

static const push_provider_t *const known[] = {&push_webhook_provider, &push_apns_provider, &push_fcm_provider};

int push_hub_new(const tern_config_t *cfg, push_hub_t **out) {
  *out = NULL;
  push_hub_t *hub = xcalloc(1, sizeof *hub);
  hub->cfg = cfg;
  hub->dead_fd = -1;
  char *list = xstrdup(cfg->push_provider ? cfg->push_provider : ""), *save = NULL;
  int rc = 0;
  for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    if (strcmp(tok, "none") == 0) continue;
    const push_provider_t *p = NULL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
      if (strcmp(known[i]->name, tok) == 0) p = known[i];
    if (!p) {
      log_at(LOG_ERROR, "push_provider: unknown provider \"%s\" (none, webhook, apns, fcm)", tok);
      rc = TERN_ECONFIG;
      break;
    }
    int dup = 0;
    for (int i = 0; i < hub->nproviders; i++) dup |= hub->providers[i] == p;
    if (!dup) hub->providers[hub->nproviders++] = p;
  }
  free(list);
  if (rc < 0) goto fail;
  if (hub->nproviders == 0) {
    free(hub);
    return 0;
  }
  if (cfg->push_template && *cfg->push_template) {
    json_error_t e;
    hub->tmpl = json_loads(cfg->push_template, 0, &e);
    if (!json_is_object(hub->tmpl)) {
      log_at(LOG_ERROR, "push_template must be a JSON object (%s)", hub->tmpl ? "not an object" : e.text);
      rc = TERN_ECONFIG;
      goto fail;
    }
  }
  for (int i = 0; i < hub->nproviders; i++) {
    if ((rc = hub->providers[i]->init(cfg, &hub->pstate[i])) < 0) goto fail;
  }
  buf_t path = BUF_INIT;
  push_dead_letter_path(cfg, &path);
  hub->dead_path = buf_cstr(&path);
  hub->dead_fd = open(hub->dead_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (hub->dead_fd < 0) {
    log_at(LOG_ERROR, "cannot open the push dead-letter log %s", hub->dead_path);
    rc = TERN_ECONFIG;
    goto fail;
  }
  for (int i = 0; i < hub->nproviders; i++) log_at(LOG_INFO, "offline push through %s", hub->providers[i]->name);
  *out = hub;
  return 0;
fail:
  push_hub_free(hub);
  return rc < 0 ? rc : TERN_ECONFIG;
}

static void delivery_free(push_delivery_t *d);

void push_hub_free(push_hub_t *hub) {
  if (!hub) return;
  for (int k = 0; k < MAX_WORKERS; k++) {
    push_worker_t *pw = hub->workers[k];
    if (!pw) continue;
    while (pw->all) delivery_free(pw->all); /* only if a worker never stopped */
    for (int i = 0; i < hub->nproviders; i++)
      if (pw->pstate[i] && hub->providers[i]->worker_free) hub->providers[i]->worker_free(pw->pstate[i]);
    free(pw);
  }
  for (int i = 0; i < hub->nproviders; i++)
    if (hub->pstate[i]) hub->providers[i]->free(hub->pstate[i]);
  json_decref(hub->tmpl);
  if (hub->dead_fd >= 0) close(hub->dead_fd);
  free(hub->dead_path);
  free(hub);
}

/* The worker's part, made on first use; NULL once it stops (or without a hub or HTTP). */
static push_worker_t *worker_state(im_worker_t *w) {
  out_t *o = out_of(w->im);
  push_hub_t *hub = o ? o->push : NULL;
  if (!hub) return NULL;
  push_worker_t *pw = hub->workers[w->idx];
  if (!pw) {
    if (!out_http(w)) return NULL;
    pw = xcalloc(1, sizeof *pw);
    pw->hub = hub;
    pw->w = w;
    pw->loop = httpc_loop(out_http(w));
    hub->workers[w->idx] = pw;
  }
  return pw->stopping || !out_http(w) ? NULL : pw;
}

httpc_t *push_http(push_worker_t *pw) { return pw->stopping ? NULL : out_http(pw->w); }

long push_timeout_ms(push_worker_t *pw) { return pw->hub->cfg->push_timeout; }

void push_metrics(const push_hub_t *hub, buf_t *out) {
  if (!hub) return;
  static const struct {
    const char *name, *help;
    size_t off;
  } series[] = {
      {"tern_push_requests_total", "Requests made to push providers (first tries and retries).",
       offsetof(push_counters_t, requests)},
      {"tern_push_delivered_total", "Pushes a provider accepted.", offsetof(push_counters_t, delivered)},
      {"tern_push_retries_total", "Push attempts that failed and were scheduled again.",
       offsetof(push_counters_t, retries)},
      {"tern_push_dead_letters_total", "Pushes given up on and written to the dead-letter log.",
       offsetof(push_counters_t, dead)},
  };
  for (size_t s = 0; s < sizeof series / sizeof series[0]; s++) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", series[s].name, series[s].help, series[s].name);
    for (int i = 0; i < hub->nproviders; i++) {
      atomic_ulong *v = (atomic_ulong *)((char *)&((push_hub_t *)hub)->counters[i] + series[s].off);
      buf_printf(out, "%s{provider=\"%s\"} %lu\n", series[s].name, hub->providers[i]->name, atomic_load(v));
    }
  }
  buf_printf(out,
             "# HELP tern_push_muted_skipped_total Offline recipients not pushed to because they muted the "
             "conversation.\n# TYPE tern_push_muted_skipped_total counter\ntern_push_muted_skipped_total %lu\n",
             atomic_load(&((push_hub_t *)hub)->muted_skipped));
}

/* ---------------------------------------------------------------- dead letters */

void push_dead_letter_path(const tern_config_t *cfg, buf_t *out) {
  buf_printf(out, "%s/push-dead-letter.jsonl", cfg->data_dir);
}

typedef struct {
  uv_fs_t req;
  char *line;
} dead_write_t;

static void dead_written(uv_fs_t *req) {
  dead_write_t *x = req->data;
  if (req->result < 0) log_at(LOG_ERROR, "push dead-letter log: %s", uv_strerror((int)req->result));
  uv_fs_req_cleanup(req);
  free(x->line);
  free(x);
}

/* One JSON line: when, which provider, why, to whom, which message, the devices, how
 * many attempts and the last answer, and the payload — enough to send it again by hand. */
static void dead_letter(push_delivery_t *d, const char *why) {
  push_worker_t *pw = d->pw;
  push_hub_t *hub = pw->hub;
  char at[ISO_LEN + 1];
  iso_format(now_ms(), at);
  json_t *devs = json_array();
  for (size_t i = 0; i < d->ndevices; i++) {
    json_t *o = json_pack("{s:s, s:s}", "deviceType", d->devices[i].type, "deviceToken", d->devices[i].token);
    if (d->devices[i].installation_id)
      json_object_set_new(o, "installation", json_string(d->devices[i].installation_id));
    json_array_append_new(devs, o);
  }
  json_t *o =
      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:o, s:i, s:I, s:s?, s:O}", "at", at, "provider",
                hub->providers[d->pidx]->name, "reason", why, "clientId", d->client, "convId", d->cid, "fromClientId",
                d->from, "msgId", d->msg_id, "timestamp", (json_int_t)d->timestamp, "devices", devs, "attempts",
                d->attempts, "status", (json_int_t)d->last_status, "error", d->last_error, "data", d->data);
  if (!d->last_error) json_object_del(o, "error");
  char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  log_at(LOG_WARN, "push to %s via %s given up (%s, status %ld%s%s)", d->client, hub->providers[d->pidx]->name, why,
         d->last_status, d->last_error ? ": " : "", d->last_error ? d->last_error : "");
  if (!text) return;
  size_t n = strlen(text);
  dead_write_t *x = xmalloc(sizeof *x);
  x->line = xrealloc(text, n + 2);
  x->line[n] = '\n';
  x->line[n + 1] = 0;
  x->req.data = x;
  uv_buf_t b = uv_buf_init(x->line, (unsigned)(n + 1));
  int rc = uv_fs_write(pw->loop, &x->req, hub->dead_fd, &b, 1, -1, dead_written);
  if (rc < 0) {
    log_at(LOG_ERROR, "push dead-letter log: %s", uv_strerror(rc));
    free(x->line);
    free(x);
  }
}

/* ---------------------------------------------------------------- deliveries */

static void delivery_free(push_delivery_t *d) {
  push_worker_t *pw = d->pw;
  if (d->prev) d->prev->next = d->next;
  else pw->all = d->next;
  if (d->next) d->next->prev = d->prev;
  pw->pending--;
  for (size_t i = 0; i < d->ndevices; i++) {
    free(d->devices[i].token);
    free(d->devices[i].type);
    free(d->devices[i].installation_id);
  }
  free(d->devices);
  free(d->client);
  free(d->cid);
  free(d->from);
  free(d->msg_id);
  free(d->last_error);
  json_decref(d->data);
  free(d);
}

static void free_timer(uv_handle_t *h) { free(h); }

static void attempt(push_delivery_t *d) {
  push_hub_t *hub = d->pw->hub;
  d->attempts++;
  atomic_fetch_add(&hub->counters[d->pidx].requests, 1);
  d->t0_ns = mono_ns();
  hub->providers[d->pidx]->attempt(d->pw, hub->pstate[d->pidx], d);
}

static void on_retry(uv_timer_t *t) {
  push_delivery_t *d = t->data;
  d->timer = NULL;
  uv_close((uv_handle_t *)t, free_timer);
  attempt(d);
}

static void forget_devices(push_delivery_t *d) {
  for (size_t i = 0; i < d->ndevices; i++) {
    job_device_t *j = xcalloc(1, sizeof *j);
    j->job.type = JOB_DEVICE;
    j->job.worker = -1; /* fire and forget */
    j->job.free_fn = job_device_free;
    j->op = DEVICE_DROP;
    j->token = xstrdup(d->devices[i].token);
    store_submit(d->pw->w->im->store, &j->job);
  }
}

push_outcome_t push_outcome_of(long status) {
  if (status >= 200 && status < 300) return PUSH_OK;
  if (status == 0 || status == 408 || status == 429 || status >= 500) return PUSH_RETRY;
  return PUSH_FAIL;
}

uint64_t push_backoff_ms(long base_ms, int n, int jitter) {
  uint64_t ms = (uint64_t)(base_ms > 0 ? base_ms : 1);
  for (int i = 1; i < n && ms < 600000; i++) ms *= 2;
  if (ms > 600000) ms = 600000;
  if (jitter) {
    uint32_t r;
    random_bytes(&r, sizeof r);
    ms += (uint64_t)((double)ms * 0.25 * ((double)r / 4294967296.0));
  }
  return ms;
}

void push_attempt_done(push_delivery_t *d, push_outcome_t outcome, long status, const char *error) {
  push_worker_t *pw = d->pw;
  push_hub_t *hub = pw->hub;
  push_counters_t *c = &hub->counters[d->pidx];
  d->last_status = status;
  metric_observe_us(M_PUSH, (mono_ns() - d->t0_ns) / 1000);
  if (outcome != PUSH_OK) metric_inc(M_PUSH_ERRORS);
  free(d->last_error);
  d->last_error = error && *error ? xstrndup(error, strnlen(error, 300)) : NULL;
  const char *why = NULL;
  switch (outcome) {
  case PUSH_OK:
    atomic_fetch_add(&c->delivered, 1);
    log_at(LOG_DEBUG, "push to %s via %s delivered (attempt %d)", d->client, hub->providers[d->pidx]->name,
           d->attempts);
    delivery_free(d);
    return;
  case PUSH_RETRY:
    if (!pw->stopping && d->attempts <= hub->cfg->push_retries) {
      atomic_fetch_add(&c->retries, 1);
      d->timer = xmalloc(sizeof *d->timer);
      uv_timer_init(pw->loop, d->timer);
      d->timer->data = d;
      uv_timer_start(d->timer, on_retry, push_backoff_ms(hub->cfg->push_retry_delay, d->attempts, 1), 0);
      return;
    }
    why = pw->stopping ? "server stopping" : "retries exhausted";
    break;
  case PUSH_GONE: why = "device token rejected"; break;
  case PUSH_FAIL: why = "rejected by the provider"; break;
  }
  atomic_fetch_add(&c->dead, 1);
  dead_letter(d, why);
  if (outcome == PUSH_GONE) forget_devices(d);
  delivery_free(d);
}

void push_worker_stop(im_worker_t *w) {
  /* made here if need be: a hook answer that httpc_close cancels must find it stopped */
  push_worker_t *pw = worker_state(w);
  if (!pw) return;
  push_hub_t *hub = pw->hub;
  pw->stopping = 1;
  for (push_delivery_t *d = pw->all, *next; d; d = next) {
    next = d->next;
    if (!d->timer) continue; /* in flight: httpc_close cancels it, and it comes back here */
    uv_timer_stop(d->timer);
    uv_close((uv_handle_t *)d->timer, free_timer);
    d->timer = NULL;
    atomic_fetch_add(&hub->counters[d->pidx].dead, 1);
    dead_letter(d, "server stopping");
    delivery_free(d);
  }
}

/* ---------------------------------------------------------------- fan-out */

/* A recipient's devices, as many as it has (PUSH_MAX_DEVICES at most): a push to a group
 * keeps one of these per offline member until its read is done, so none is sized ahead. */
typedef struct {
  push_device_t *v;
  size_t n;
} devices_t;

static void device_each(void *arg, const device_view_t *dv) {
  devices_t *ds = arg;
  if (ds->n >= PUSH_MAX_DEVICES || !dv->token || !dv->type) return;
  ds->v = xrealloc(ds->v, (ds->n + 1) * sizeof *ds->v);
  push_device_t *d = &ds->v[ds->n++];
  d->token = xstrdup(dv->token);
  d->type = xstrdup(dv->type);
  d->installation_id = dv->installation_id ? xstrdup(dv->installation_id) : NULL;
  d->badge = dv->badge;
}

static int type_in(const char *type, const char *const *types) {
  for (size_t i = 0; types[i]; i++)
    if (strcmp(types[i], type) == 0) return 1;
  return 0;
}

/* "Increment" is a per-device count (§10): the push carries the device's badge plus one,
 * and the registry remembers it (a PUT of the installation's badge sets it). */
static void badge_increment(push_worker_t *pw, const json_t *data, push_device_t *dev) {
  json_t *pd = push_platform_data(data, dev->type);
  const char *b = json_string_value(json_object_get(pd, "badge"));
  int inc = b && strcmp(b, "Increment") == 0;
  json_decref(pd);
  if (!inc) return;
  dev->badge++;
  job_device_t *j = xcalloc(1, sizeof *j);
  j->job.type = JOB_DEVICE;
  j->job.worker = -1;
  j->job.free_fn = job_device_free;
  j->op = DEVICE_BADGE;
  j->add = 1;
  j->badge = 1;
  j->token = xstrdup(dev->token);
  store_submit(pw->w->im->store, &j->job);
}

static void start(push_worker_t *pw, int pidx, const char *client, const push_request_t *req, json_t *data,
                  const push_device_t *devs, size_t n) {
  push_delivery_t *d = xcalloc(1, sizeof *d);
  d->pw = pw;
  d->pidx = pidx;
  d->client = xstrdup(client);
  d->cid = xstrdup(req->cid ? req->cid : "");
  d->from = xstrdup(req->from ? req->from : "");
  d->msg_id = req->msg_id ? xstrdup(req->msg_id) : NULL;
  d->timestamp = req->timestamp;
  json_incref(data);
  d->data = data;
  d->devices = xcalloc(n, sizeof *d->devices);
  for (size_t i = 0; i < n; i++) {
    d->devices[i].token = xstrdup(devs[i].token);
    d->devices[i].type = xstrdup(devs[i].type);
    d->devices[i].installation_id = devs[i].installation_id ? xstrdup(devs[i].installation_id) : NULL;
    d->devices[i].badge = devs[i].badge;
  }
  d->ndevices = n;
  d->next = pw->all;
  if (pw->all) pw->all->prev = d;
  pw->all = d;
  pw->pending++;
  if (pw->pending > PUSH_MAX_PENDING) {
    atomic_fetch_add(&pw->hub->counters[pidx].dead, 1);
    dead_letter(d, "too many pushes pending");
    delivery_free(d);
    return;
  }
  attempt(d);
}

/* The recipients' devices are read off the loop (store_read_submit): a message to a group
 * with many offline members read one row set per member, each a round trip on PostgreSQL,
 * on the worker's loop — for any logged-in client's every send. The read threads read them
 * all, and the sends start on the worker once they are in. SQLite reads them at once on
 * the worker's reader, as before; past the read queue they are read on the loop too. */
typedef struct {
  store_read_t rd; /* first */
  im_t *im;
  char *cid, *from, *msg_id;
  int64_t timestamp;
  json_t *data;
  size_t n;
  char **to;     /* n recipients */
  devices_t *ds; /* their devices */
  int *failed;   /* their reads that failed */
} devices_read_t;

static int devices_read(store_reader_t *r, store_read_t *rd) {
  devices_read_t *x = (devices_read_t *)rd;
  for (size_t i = 0; i < x->n; i++)
    x->failed[i] = store_devices(r, x->to[i], PUSH_MAX_DEVICES, device_each, &x->ds[i]) < 0;
  return 0;
}

static void devices_read_free(devices_read_t *x) {
  for (size_t i = 0; i < x->n; i++) {
    for (size_t k = 0; k < x->ds[i].n; k++) {
      free(x->ds[i].v[k].token);
      free(x->ds[i].v[k].type);
      free(x->ds[i].v[k].installation_id);
    }
    free(x->ds[i].v);
    free(x->to[i]);
  }
  free(x->to);
  free(x->ds);
  free(x->failed);
  json_decref(x->data);
  free(x->cid);
  free(x->from);
  free(x->msg_id);
  free(x);
}

/* On the worker: the devices are read; the sends start. */
static void devices_done(task_t *t) {
  devices_read_t *x = (devices_read_t *)t;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? x->im->workers[idx] : NULL;
  push_worker_t *pw = w ? worker_state(w) : NULL;
  push_request_t req = {.from = x->from, .cid = x->cid, .timestamp = x->timestamp, .msg_id = x->msg_id};
  push_hub_t *hub = pw ? pw->hub : NULL;
  for (size_t i = 0; pw && i < x->n; i++) {
    devices_t *ds = &x->ds[i];
    if (x->failed[i] || x->rd.result < 0) log_at(LOG_WARN, "push: cannot read the devices of %s", x->to[i]);
    for (size_t k = 0; k < ds->n; k++) {
      int per_device = 0;
      for (int p = 0; p < hub->nproviders; p++)
        per_device |= hub->providers[p]->types && type_in(ds->v[k].type, hub->providers[p]->types);
      if (per_device) badge_increment(pw, x->data, &ds->v[k]);
    }
    for (int p = 0; p < hub->nproviders && ds->n; p++) {
      const push_provider_t *prov = hub->providers[p];
      if (!prov->types) {
        start(pw, p, x->to[i], &req, x->data, ds->v, ds->n);
        continue;
      }
      for (size_t k = 0; k < ds->n; k++)
        if (type_in(ds->v[k].type, prov->types)) start(pw, p, x->to[i], &req, x->data, &ds->v[k], 1);
    }
  }
  devices_read_free(x);
}

void push_offline(im_worker_t *w, const push_request_t *req) {
  push_worker_t *pw = worker_state(w);
  if (!pw || !req->nto) return;
  push_hub_t *hub = pw->hub;
  const char **to = xcalloc(req->nto, sizeof *to);
  size_t muted = 0, n = push_recipients(req, to, &muted);
  if (muted) atomic_fetch_add(&hub->muted_skipped, muted);
  json_t *data = n ? push_resolve(hub->tmpl, req, now_ms() / 1000) : NULL;
  if (!data) {
    free(to);
    return;
  }
  devices_read_t *x = xcalloc(1, sizeof *x);
  x->im = w->im;
  x->cid = xstrdup(req->cid ? req->cid : "");
  x->from = xstrdup(req->from ? req->from : "");
  x->msg_id = req->msg_id ? xstrdup(req->msg_id) : NULL;
  x->timestamp = req->timestamp;
  x->data = data;
  x->n = n;
  x->to = xcalloc(n, sizeof *x->to);
  for (size_t i = 0; i < n; i++) x->to[i] = xstrdup(to[i]);
  free(to);
  x->ds = xcalloc(n, sizeof *x->ds);
  x->failed = xcalloc(n, sizeof *x->failed);
  x->rd.task.fn = devices_done;
  x->rd.worker = w->idx;
  x->rd.fn = devices_read;
  if (store_read_submit(w->im->store, w->reader, &x->rd) < 0) { /* the read queue is full: here, as before */
    x->rd.result = devices_read(w->reader, &x->rd);
    devices_done(&x->rd.task);
  }
}

/* ---------------------------------------------------------------- payloads */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

size_t push_recipients(const push_request_t *req, const char **out, size_t *muted_skipped) {
  size_t n = 0, skipped = 0;
  /* a sorted copy: bsearch stays right whatever order the caller's list is in */
  char **mu = NULL;
  if (req->nmuted && !req->force) {
    mu = xmalloc(req->nmuted * sizeof *mu);
    memcpy(mu, req->muted, req->nmuted * sizeof *mu);
    qsort(mu, req->nmuted, sizeof *mu, cmp_str);
  }
  for (size_t i = 0; i < req->nto; i++) {
    const char *c = req->to[i];
    if (!c || !*c || (req->from && strcmp(c, req->from) == 0)) continue;
    if (mu && bsearch(&c, mu, req->nmuted, sizeof *mu, cmp_str)) {
      skipped++;
      continue;
    }
    int dup = 0;
    for (size_t k = 0; k < n && !dup; k++) dup = strcmp(out[k], c) == 0;
    if (!dup) out[n++] = c;
  }
  free(mu);
  if (muted_skipped) *muted_skipped = skipped;
  return n;
}

/* One source of a payload as an object, or NULL when it gives none: an object is the
 * payload (empty: none); a string holding a JSON object is that object; any other
 * non-empty string is the alert. Steals v. */
static json_t *as_payload(json_t *v) {
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    json_t *inner = json_loads_capped(s, 0, NULL);
    if (json_is_object(inner)) {
      json_decref(v);
      v = inner;
    } else {
      json_decref(inner);
      if (!*s) {
        json_decref(v);
        return NULL;
      }
      return json_pack("{s:o}", "alert", v);
    }
  }
  if (json_is_object(v) && json_object_size(v) > 0) return v;
  json_decref(v);
  return NULL;
}

/* JSON text from the hook or the message; text that is not JSON is taken as the alert. */
static json_t *payload_from_text(const char *text) {
  if (!text || !*text) return NULL;
  json_t *v = json_loads_capped(text, JSON_DECODE_ANY, NULL);
  if (!v) v = json_string(text);
  return v ? as_payload(v) : NULL;
}

static char *fill(const char *s, const char *cid, const char *from, int64_t now_s) {
  if (!strstr(s, "${")) return NULL;
  char ts[24];
  snprintf(ts, sizeof ts, "%lld", (long long)now_s);
  const struct {
    const char *name, *value;
  } vars[] = {{"${convId}", cid}, {"${timestamp}", ts}, {"${fromClientId}", from}};
  buf_t b = BUF_INIT;
  while (*s) {
    int hit = 0;
    for (size_t i = 0; i < 3 && !hit; i++) {
      size_t n = strlen(vars[i].name);
      if (strncmp(s, vars[i].name, n) == 0) {
        buf_append_str(&b, vars[i].value ? vars[i].value : "");
        s += n;
        hit = 1;
      }
    }
    if (!hit) buf_append(&b, s++, 1);
  }
  return buf_cstr(&b);
}

void push_fill_template(json_t *v, const char *cid, const char *from, int64_t now_s) {
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      if (json_is_string(x)) {
        char *s = fill(json_string_value(x), cid, from, now_s);
        if (s) json_object_set_new(v, k, json_string(s));
        free(s);
      } else {
        push_fill_template(x, cid, from, now_s);
      }
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *x = json_array_get(v, i);
      if (json_is_string(x)) {
        char *s = fill(json_string_value(x), cid, from, now_s);
        if (s) json_array_set_new(v, i, json_string(s));
        free(s);
      } else {
        push_fill_template(x, cid, from, now_s);
      }
    }
  }
}

json_t *push_resolve(const json_t *tmpl, const push_request_t *req, int64_t now_s) {
  json_t *d = payload_from_text(req->hook_payload);
  if (!d) d = payload_from_text(req->push_data);
  if (!d && tmpl) {
    d = json_deep_copy(tmpl);
    push_fill_template(d, req->cid, req->from, now_s);
  }
  return d;
}

json_t *push_platform_data(const json_t *data, const char *platform) {
  static const char *const platforms[] = {"ios", "android", "wp", NULL};
  json_t *own = json_object_get(data, platform);
  if (json_is_object(own)) {
    json_t *out = json_deep_copy(own);
    static const char *const internal[] = {"_profile", "_apns_team_id"};
    for (int i = 0; i < 2; i++) {
      json_t *v = json_object_get(data, internal[i]);
      if (v && !json_object_get(out, internal[i])) json_object_set(out, internal[i], v);
    }
    return out;
  }
  json_t *out = json_deep_copy(data);
  for (int i = 0; platforms[i]; i++) json_object_del(out, platforms[i]);
  return out;
}

/* ---------------------------------------------------------------- keys and JWTs */

char *push_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  buf_t b = BUF_INIT;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (1u << 20)) buf_append(&b, chunk, n);
  fclose(f);
  if (len) *len = b.len;
  return buf_cstr(&b);
}

EVP_PKEY *push_pem_key(const char *pem, size_t len) {
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (!bio) return NULL;
  EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
  BIO_free(bio);
  return k;
}

static void append_b64url(buf_t *b, const void *p, size_t n) {
  buf_reserve(b, n * 4 / 3 + 4);
  b->len += base64url_encode(p, n, (char *)b->data + b->len);
}

int push_jwt_sign(EVP_PKEY *key, const char *alg, const char *header_json, const char *claims_json, char **out) {
  int es = strcmp(alg, "ES256") == 0;
  if (!key || (!es && strcmp(alg, "RS256") != 0)) return TERN_EINVAL;
  int base = EVP_PKEY_base_id(key);
  if (es ? (base != EVP_PKEY_EC || EVP_PKEY_bits(key) != 256) : base != EVP_PKEY_RSA) return TERN_EINVAL;
  buf_t b = BUF_INIT;
  append_b64url(&b, header_json, strlen(header_json));
  buf_append(&b, ".", 1);
  append_b64url(&b, claims_json, strlen(claims_json));
  int rc = TERN_EINVAL;
  uint8_t *sig = NULL;
  size_t siglen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
      EVP_DigestSign(ctx, NULL, &siglen, b.data, b.len) != 1)
    goto done;
  sig = xmalloc(siglen);
  if (EVP_DigestSign(ctx, sig, &siglen, b.data, b.len) != 1) goto done;
  buf_append(&b, ".", 1);
  if (es) {
    /* JWS wants the raw r||s pair, 32 bytes each (RFC 7518 §3.4); OpenSSL gives DER */
    const uint8_t *p = sig;
    ECDSA_SIG *es_sig = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
    if (!es_sig) goto done;
    uint8_t raw[64];
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es_sig, &r, &s);
    int ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
    ECDSA_SIG_free(es_sig);
    if (!ok) goto done;
    append_b64url(&b, raw, sizeof raw);
  } else {
    append_b64url(&b, sig, siglen);
  }
  *out = buf_cstr(&b);
  b = (buf_t)BUF_INIT;
  rc = 0;
done:
  EVP_MD_CTX_free(ctx);
  free(sig);
  buf_free(&b);
  return rc;
}
