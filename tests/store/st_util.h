/* st_util.h — small builders and collectors the conformance tests share (header-only:
 * each test program is one file plus the harness). */
#ifndef TERN_ST_UTIL_H
#define TERN_ST_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "st_harness.h"

/* xstrdup (buf.h, aborts when out of memory) that passes NULL through. */
static inline char *st_dup(const char *s) { return s ? xstrdup(s) : NULL; }

/* A NULL-terminated list of strings as an owned array; *n gets its length. */
static inline char **st_list(const char *const *v, size_t *n) {
  size_t k = 0;
  while (v[k]) k++;
  char **out = calloc(k ? k : 1, sizeof *out);
  if (!out) abort();
  for (size_t i = 0; i < k; i++) out[i] = st_dup(v[i]);
  *n = k;
  return out;
}

static inline void st_list_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* One document change (store.h doc_change_t): path "" replaces the whole document with
 * value; else its segments are separated by '|' (keys in the tests may hold dots) and value
 * NULL removes it. */
static inline doc_change_t st_change(const char *path, const char *value) {
  doc_change_t ch = {DOC_REPLACE, NULL, 0, st_dup(value)};
  if (!*path) return ch;
  ch.op = value ? DOC_SET : DOC_UNSET;
  for (const char *p = path;; p++) {
    size_t n = strcspn(p, "|");
    ch.path = realloc(ch.path, (ch.depth + 1) * sizeof *ch.path);
    if (!ch.path) abort();
    ch.path[ch.depth++] = xstrndup(p, n);
    p += n;
    if (!*p) break;
  }
  return ch;
}

/* Creates a conversation; returns its id (> 0), or the job's result (<= 0) when it failed
 * (TERN_EEXIST: *existing gets the twin's cid, owned). */
static inline int64_t st_conv_create(st_t *t, const char *cid, int kind, const char *const *members,
                                     const char *unique_id, const char *doc, int64_t at, char **existing) {
  job_conv_create_t j = {0};
  st_job_init(t, &j.job, JOB_CONV_CREATE, 0);
  j.row.cid = st_dup(cid);
  j.row.kind = kind;
  j.row.creator = st_dup(members && members[0] ? members[0] : "system");
  j.row.unique_id = st_dup(unique_id);
  j.row.created_at = j.row.updated_at = at;
  j.row.expire_at = kind == CONV_TEMP ? at + 1000 : 0;
  static const char *const none[] = {NULL};
  j.row.members = st_list(members ? members : none, &j.row.nmembers);
  j.doc = st_dup(doc ? doc : "{}");
  int rc = st_submit_wait(t, &j.job);
  int64_t id = rc == 0 ? j.row.id : rc;
  if (existing) *existing = j.existing_cid;
  else free(j.existing_cid);
  conv_row_free(&j.row);
  free(j.doc);
  return id;
}

static inline void st_msg_fill(st_t *t, job_msg_insert_t *m, int worker, int64_t conv, int64_t ts, int64_t seq,
                               const char *sender, const char *text, int flags) {
  memset(m, 0, sizeof *m);
  st_job_init(t, &m->job, JOB_MSG_INSERT, worker);
  m->conv = conv;
  m->ts = ts;
  m->seq = seq;
  char mid[64];
  snprintf(mid, sizeof mid, "m-%lld-%lld-%lld", (long long)conv, (long long)ts, (long long)seq);
  m->mid = st_dup(mid);
  m->sender = st_dup(sender);
  m->len = strlen(text);
  m->data = (uint8_t *)st_dup(text);
  m->flags = flags;
}

static inline void st_msg_free(job_msg_insert_t *m) {
  free(m->mid);
  free(m->sender);
  free(m->data);
  free(m->mentions);
  free(m->readers);
  free(m->dup_mid);
}

static inline int st_msg_insert(st_t *t, int64_t conv, int64_t ts, int64_t seq, const char *sender, const char *text,
                                int flags) {
  job_msg_insert_t m;
  st_msg_fill(t, &m, 0, conv, ts, seq, sender, text, flags);
  int rc = st_submit_wait(t, &m.job);
  st_msg_free(&m);
  return rc;
}

/* A JOB_MSG_PATCH (text: the new content, a recall's flags) or JOB_MSG_DELETE of message
 * (conv, ts, seq); its result. */
static inline int st_msg_patch(st_t *t, job_type_t type, int64_t conv, int64_t ts, int64_t seq, const char *text,
                               int64_t patch_ts) {
  job_msg_patch_t j = {0};
  st_job_init(t, &j.job, type, 0);
  j.conv = conv;
  j.ts = ts;
  j.seq = seq;
  j.patch_ts = patch_ts;
  if (text) {
    j.data = (uint8_t *)st_dup(text);
    j.len = strlen(text);
  }
  j.flags = MSG_F_RECALLED;
  int rc = st_submit_wait(t, &j.job);
  free(j.data);
  return rc;
}

/* Collects messages a read hands back: keys and texts. */
typedef struct {
  int n;
  int64_t ts[64], seq[64];
  char text[64][32];
  char sender[64][16];
  int flags[64];
  int64_t patch_ts[64];
} st_msgs_t;

static inline int st_msgs_cb(void *arg, const msg_view_t *m) {
  st_msgs_t *c = arg;
  if (c->n >= 64) return 1;
  c->ts[c->n] = m->ts;
  c->seq[c->n] = m->seq;
  size_t len = m->len < 31 ? m->len : 31;
  memcpy(c->text[c->n], m->data, len);
  c->text[c->n][len] = 0;
  snprintf(c->sender[c->n], sizeof c->sender[c->n], "%s", m->sender ? m->sender : "");
  c->flags[c->n] = m->flags;
  c->patch_ts[c->n] = m->patch_ts;
  c->n++;
  return 0;
}

/* Collects (string, number) pairs: members pages, set pages, client conversations. */
typedef struct {
  int n;
  char s[64][48];
  int64_t v[64];
} st_pairs_t;

static inline void st_pairs_cb(void *arg, const char *s, int64_t v) {
  st_pairs_t *c = arg;
  if (c->n >= 64) return;
  snprintf(c->s[c->n], sizeof c->s[c->n], "%s", s);
  c->v[c->n++] = v;
}

static inline void st_names_cb(void *arg, const char *s) { st_pairs_cb(arg, s, 0); }

#endif
