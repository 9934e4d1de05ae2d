/* store.c — what the store interface (store.h) gives every backend and every caller
 * alike: the calls, each through the backend's table, and the destructors of the rows it
 * hands out and of the jobs callers fill in. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"

/* A backend's struct store and struct store_reader begin with their ops pointer. */
#define OPS(h) (*(const store_ops_t *const *)(const void *)(h))

int store_open(const store_ops_t *ops, const store_options_t *opt, store_t **out) {
  int rc = ops->open(opt, out);
  if (rc == 0 && OPS(*out) != ops) abort(); /* a backend that does not set its table */
  return rc;
}

int store_conv_query(store_reader_t *r, const store_conv_q_t *q, conv_view_cb cb, void *arg) {
  return OPS(r)->conv_query_until(r, q, 0, cb, arg);
}

int store_conv_query_check(store_t *s, const store_conv_q_t *q, char *err, size_t errlen) {
  return OPS(s)->conv_query_check(s, q, err, errlen);
}

void store_close(store_t *s) {
  if (s) OPS(s)->close(s); /* NULL: nothing was opened (main.c's failure path) */
}
void store_submit(store_t *s, store_job_t *j) { OPS(s)->submit(s, j); }
void store_fail_writes(store_t *s, int on) { OPS(s)->fail_writes(s, on); }
int store_backup(store_t *s, const char *dest, int64_t *bytes) { return OPS(s)->backup(s, dest, bytes); }
void store_metrics(store_t *s, buf_t *out) { OPS(s)->metrics(s, out); }
int store_query_submit(store_t *s, store_query_t *q) { return OPS(s)->query_submit(s, q); }
int store_read_submit(store_t *s, store_reader_t *own, store_read_t *rd) {
  if (OPS(s)->read_submit) return OPS(s)->read_submit(s, rd);
  rd->result = own ? rd->fn(own, rd) : TERN_ESTORE;
  rd->task.fn(&rd->task);
  return 0;
}
int store_reads_off_loop(const store_t *s) { return OPS(s)->read_submit != NULL; }
store_reader_t *store_reader_new(store_t *s) { return OPS(s)->reader_new(s); }
void store_reader_free(store_reader_t *r) {
  if (r) OPS(r)->reader_free(r);
}
int store_conv_load(store_reader_t *r, const char *cid, conv_row_t *out) { return OPS(r)->conv_load(r, cid, out); }
int store_conv_doc(store_reader_t *r, int64_t conv, char **doc) { return OPS(r)->conv_doc(r, conv, doc); }
int store_conv_find_unique(store_reader_t *r, const char *unique_id, char **cid, int64_t *created_at) {
  return OPS(r)->conv_find_unique(r, unique_id, cid, created_at);
}
int store_conv_count(store_reader_t *r, const store_conv_q_t *q, int64_t *n) { return OPS(r)->conv_count(r, q, n); }
int store_conv_fetch(store_reader_t *r, const char *const *cids, size_t n, int flags, conv_view_cb cb, void *arg) {
  return OPS(r)->conv_fetch(r, cids, n, flags, cb, arg);
}
int store_logs(store_reader_t *r, const logs_req_t *q, msg_cb cb, void *arg) { return OPS(r)->logs(r, q, cb, arg); }
int store_msg_get(store_reader_t *r, int64_t conv, int64_t ts, int64_t seq, msg_cb cb, void *arg) {
  return OPS(r)->msg_get(r, conv, ts, seq, cb, arg);
}
int store_msg_receipts(store_reader_t *r, int64_t conv, const char *client, int64_t from_ts, int64_t from_seq,
                       int64_t to_ts, int64_t to_seq, msg_cb cb, void *arg) {
  return OPS(r)->msg_receipts(r, conv, client, from_ts, from_seq, to_ts, to_seq, cb, arg);
}
int store_unread(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg) {
  return OPS(r)->unread(r, client, since, max, cb, arg);
}
int store_offline(store_reader_t *r, const char *client, int max,
                  void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg) {
  return OPS(r)->offline(r, client, max, cb, arg);
}
int store_progress(store_reader_t *r, int64_t conv, progress_cb cb, void *arg) {
  return OPS(r)->progress(r, conv, cb, arg);
}
int store_notifications(store_reader_t *r, const char *client, int64_t after, int limit, int *has_more,
                        void (*cb)(void *arg, int64_t ts, const char *body), void *arg) {
  return OPS(r)->notifications(r, client, after, limit, has_more, cb, arg);
}
int store_expired(store_reader_t *r, int64_t now, int64_t idle_before, int max,
                  void (*cb)(void *arg, int64_t id, const char *cid, int kind), void *arg) {
  return OPS(r)->expired(r, now, idle_before, max, cb, arg);
}
int store_patches_since(store_reader_t *r, const char *client, int64_t since, int max,
                        void (*cb)(void *arg, const char *cid, const msg_view_t *m), void *arg) {
  return OPS(r)->patches_since(r, client, since, max, cb, arg);
}
int store_member_infos(store_reader_t *r, int64_t conv, void (*cb)(void *arg, const member_info_t *mi), void *arg) {
  return OPS(r)->member_infos(r, conv, cb, arg);
}
int store_members_page(store_reader_t *r, int64_t conv, const char *after, int limit,
                       void (*cb)(void *arg, const char *client, int64_t joined_at), void *arg) {
  return OPS(r)->members_page(r, conv, after, limit, cb, arg);
}
int store_client_convs(store_reader_t *r, const char *client, int kind, const char *after, int limit,
                       void (*cb)(void *arg, const char *cid, int64_t joined_at), void *arg) {
  return OPS(r)->client_convs(r, client, kind, after, limit, cb, arg);
}
int store_client_blocks(store_reader_t *r, const char *client, const char *after, int limit,
                        void (*cb)(void *arg, const char *cid), void *arg) {
  return OPS(r)->client_blocks(r, client, after, limit, cb, arg);
}
int store_client_blocked(store_reader_t *r, const char *client, const char *cid) {
  return OPS(r)->client_blocked(r, client, cid);
}
int store_conv_set_page(store_reader_t *r, int64_t conv, int set, int permanent_only, const char *after, int limit,
                        void (*cb)(void *arg, const char *client, int64_t at), void *arg) {
  return OPS(r)->conv_set_page(r, conv, set, permanent_only, after, limit, cb, arg);
}
int store_conv_set_expiry(store_reader_t *r, int64_t conv, int set, const char *client, int64_t *expire_at) {
  return OPS(r)->conv_set_expiry(r, conv, set, client, expire_at);
}
int store_shutups_expired(store_reader_t *r, int64_t now, int max,
                          void (*cb)(void *arg, int64_t conv, const char *cid, const char *client), void *arg) {
  return OPS(r)->shutups_expired(r, now, max, cb, arg);
}
int store_msg_ext_get(store_reader_t *r, int64_t conv, const char *mid, int64_t *ts, int64_t *seq) {
  return OPS(r)->msg_ext_get(r, conv, mid, ts, seq);
}
int store_msg_ext_find(store_reader_t *r, const char *mid, int64_t *ts, int64_t *seq) {
  return OPS(r)->msg_ext_find(r, mid, ts, seq);
}
int store_msg_by_dt(store_reader_t *r, int64_t conv, const char *sender, int64_t dt, int64_t since_ts, char **mid,
                    int64_t *ts, int64_t *newest_ts) {
  int64_t newest = 0;
  int rc = OPS(r)->msg_by_dt(r, conv, sender, dt, since_ts, mid, ts, &newest);
  if (newest_ts) *newest_ts = rc == TERN_ENOENT ? newest : 0;
  return rc;
}
int store_installation_count(store_reader_t *r, const store_class_q_t *q, int64_t *n) {
  return OPS(r)->installation_count(r, q, n);
}
int store_installation_query(store_reader_t *r, const store_class_q_t *q,
                             void (*cb)(void *arg, const installation_row_t *row), void *arg) {
  return OPS(r)->installation_query(r, q, cb, arg);
}
int store_app_logs(store_reader_t *r, const app_logs_req_t *q,
                   void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg) {
  return OPS(r)->app_logs(r, q, cb, arg);
}
int store_devices(store_reader_t *r, const char *client, int max, void (*cb)(void *arg, const device_view_t *d),
                  void *arg) {
  return OPS(r)->devices(r, client, max, cb, arg);
}
int store_installation_get(store_reader_t *r, const char *id, const char *device_type, const char *token,
                           installation_row_t *out) {
  return OPS(r)->installation_get(r, id, device_type, token, out);
}
int store_token_revoked(store_reader_t *r, const char *client, const uint8_t lineage[8], int64_t *before,
                        int *lineage_revoked) {
  return OPS(r)->token_revoked(r, client, lineage, before, lineage_revoked);
}

void conv_row_free(conv_row_t *r) {
  free(r->cid);
  free(r->creator);
  free(r->unique_id);
  for (size_t i = 0; i < r->nmembers; i++) free(r->members[i]);
  free(r->members);
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < r->nsets[k]; i++) free(r->sets[k][i]);
    free(r->sets[k]);
  }
  memset(r, 0, sizeof *r);
}

void installation_row_free(installation_row_t *r) {
  free(r->id);
  free(r->device_type);
  free(r->token);
  free(r->body);
  memset(r, 0, sizeof *r);
}

void doc_changes_free(doc_change_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < v[i].depth; k++) free(v[i].path[k]);
    free(v[i].path);
    free(v[i].value);
  }
  free(v);
}

void job_device_free(store_job_t *j) {
  job_device_t *d = (job_device_t *)j;
  free(d->client);
  free(d->token);
  free(d->type);
  free(d);
}

int store_mentions_contain(const char *mentions, const char *client) {
  if (!mentions) return 0;
  json_t *a = json_loads(mentions, 0, NULL);
  int hit = 0;
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) if (json_is_string(v) && strcmp(json_string_value(v), client) == 0) hit = 1;
  json_decref(a);
  return hit;
}
