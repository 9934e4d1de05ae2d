/* pg_import.c — the bulk import (JOB_IMPORT) on the PostgreSQL writer: the same records,
 * the same comparisons and the same outcomes as store_sqlite_import.c (see there for the
 * why of each), in the batch's transaction on the writer's connection. Imported messages
 * keep their ids: each gets a row in msg_ext (conv, mid) → (ts, seq), and its conversation
 * the ext_ids flag. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "log.h"
#include "pg_int.h"
#include "timeutil.h"

typedef struct {
  pgc_t *p;
  job_import_t *j;
  size_t touched_cap;
  char *memo_cid; /* the last conversation looked up */
  int64_t memo_id;
  int memo_kind;
} ctx_t;

#define SQLFAIL TERN_ESTORE

static int q(ctx_t *x, int id, pgargs_t *a, PGresult **out) { return pgc_run(x->p, id, a, out) < 0 ? SQLFAIL : 0; }

static int cmd(ctx_t *x, int id, pgargs_t *a, int64_t *changes) {
  PGresult *r;
  if (pgc_run(x->p, id, a, &r) < 0) return SQLFAIL;
  if (changes) *changes = pg_changes(r);
  PQclear(r);
  return 0;
}

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

typedef struct {
  char **v;
  size_t n;
} list_t;

static void list_free(list_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* Column 0 of every row of statement id with a. */
static int list_read(ctx_t *x, int id, pgargs_t *a, list_t *out) {
  PGresult *r;
  if (q(x, id, a, &r)) return SQLFAIL;
  int n = PQntuples(r);
  out->v = xcalloc((size_t)n + 1, sizeof(char *));
  for (int i = 0; i < n; i++) {
    const char *t = pg_str(r, i, 0);
    out->v[out->n++] = xstrdup(t ? t : "");
  }
  PQclear(r);
  return 0;
}

static int in_sorted(char *const *v, size_t n, const char *s) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(v[mid], s);
    if (c == 0) return 1;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

static int lists_equal(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0) return 0;
  return 1;
}

static int conv_lookup(ctx_t *x, const char *cid, int64_t *id, int *kind) {
  if (x->memo_cid && strcmp(x->memo_cid, cid) == 0) {
    *id = x->memo_id;
    *kind = x->memo_kind;
    return 0;
  }
  pgargs_t a = {0};
  pga_txt(&a, cid);
  PGresult *r;
  if (q(x, PS_IMP_CONV_GET, &a, &r)) return SQLFAIL;
  *id = PQntuples(r) ? pg_i64(r, 0, 0) : 0;
  *kind = PQntuples(r) ? (int)pg_i64(r, 0, 1) : 0;
  PQclear(r);
  free(x->memo_cid);
  x->memo_cid = xstrdup(cid);
  x->memo_id = *id;
  x->memo_kind = *kind;
  return 0;
}

static void skip(import_op_t *op, const char *why) {
  op->outcome = IMP_SKIPPED;
  op->reason = why;
}

static int last_key(ctx_t *x, int64_t conv, int64_t *ts, int64_t *seq) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  PGresult *r;
  if (q(x, PS_IMP_LAST_KEY, &a, &r)) return SQLFAIL;
  *ts = PQntuples(r) ? pg_i64(r, 0, 0) : 0;
  *seq = PQntuples(r) ? pg_i64(r, 0, 1) : 0;
  PQclear(r);
  return 0;
}

static int member_ins(ctx_t *x, int64_t conv, const char *client, int64_t joined_at, int64_t ts, int64_t seq) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_txt(&a, client);
  pga_i64(&a, joined_at);
  pga_i64(&a, ts);
  pga_i64(&a, seq);
  return cmd(x, PS_INS_MEMBER, &a, NULL);
}

/* Adds and removes members so that conv's are exactly want (add_only: only adds). */
static int members_sync(ctx_t *x, int64_t conv, char *const *want, size_t n, int add_only, int64_t joined_at,
                        int *changed) {
  list_t have = {0};
  pgargs_t a = {0};
  pga_i64(&a, conv);
  int rc = list_read(x, PS_CONV_MEMBERS, &a, &have);
  int64_t ts = 0, seq = 0;
  int have_key = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    if (in_sorted(have.v, have.n, want[i])) continue;
    if (!have_key && (rc = last_key(x, conv, &ts, &seq))) break;
    have_key = 1;
    rc = member_ins(x, conv, want[i], joined_at, ts, seq);
    *changed = 1;
  }
  for (size_t i = 0; !rc && !add_only && i < have.n; i++) {
    if (in_sorted(want, n, have.v[i])) continue;
    static const int del[2] = {PS_DEL_ROLE, PS_DEL_MEMBER}; /* a member who leaves loses its role */
    for (int k = 0; k < 2 && !rc; k++) {
      pgargs_t d = {0};
      pga_i64(&d, conv);
      pga_txt(&d, have.v[i]);
      rc = cmd(x, del[k], &d, NULL);
    }
    *changed = 1;
  }
  list_free(&have);
  if (!rc && *changed) rc = cmd(x, PS_IMP_MEMBER_COUNT, &a, NULL);
  return rc;
}

/* The unique key the conversation may have: none when another conversation holds it. */
static int unique_key(ctx_t *x, const char *cid, const char *want, const char **out) {
  *out = want;
  if (!want) return 0;
  pgargs_t a = {0};
  pga_txt(&a, want);
  PGresult *r;
  if (q(x, PS_IMP_UNIQUE_OWNER, &a, &r)) return SQLFAIL;
  if (PQntuples(r) && strcmp(pg_str(r, 0, 0), cid) != 0) {
    log_at(LOG_WARN, "import: unique conversation %s has the members of %s, which keeps the unique lookup", cid,
           pg_str(r, 0, 0));
    *out = NULL;
  }
  PQclear(r);
  return 0;
}

static int docs_equal(const char *a, const char *b) {
  if (!a || !b) return a == b;
  if (strcmp(a, b) == 0) return 1;
  json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
  int eq = ja && jb && json_equal(ja, jb);
  json_decref(ja);
  json_decref(jb);
  return eq;
}

static int import_conv(ctx_t *x, import_op_t *op) {
  conv_row_t *r = op->conv;
  int members = r->kind == CONV_NORMAL || r->kind == CONV_TEMP;
  const char *ukey;
  int rc = unique_key(x, r->cid, r->unique_id, &ukey);
  if (rc) return rc;
  pgargs_t g = {0};
  pga_txt(&g, r->cid);
  PGresult *row;
  if (q(x, PS_IMP_CONV_GET, &g, &row)) return SQLFAIL;
  if (PQntuples(row) == 0) {
    PQclear(row);
    int64_t now = now_ms(); /* the record gave no times: the import's */
    if (!r->created_at) r->created_at = now;
    if (!r->updated_at) r->updated_at = now;
    pgargs_t a = {0};
    pga_txt(&a, r->cid);
    pga_i64(&a, r->kind);
    pga_txt(&a, r->creator);
    pga_txt(&a, ukey);
    pga_i64(&a, r->created_at);
    pga_i64(&a, r->updated_at);
    pga_i64_or_null(&a, op->lm);
    pga_i64_or_null(&a, r->expire_at);
    pga_i64(&a, members ? (int64_t)r->nmembers : 0);
    pga_txt(&a, op->doc);
    pga_i64(&a, now_ms());
    PGresult *ins;
    if (q(x, PS_IMP_CONV_INS, &a, &ins)) return SQLFAIL;
    int64_t id = pg_i64(ins, 0, 0);
    PQclear(ins);
    for (size_t i = 0; members && i < r->nmembers; i++)
      if ((rc = member_ins(x, id, r->members[i], r->created_at, 0, 0))) return rc;
    free(x->memo_cid);
    x->memo_cid = xstrdup(r->cid);
    x->memo_id = id;
    x->memo_kind = r->kind;
    op->outcome = IMP_APPLIED;
    return 0;
  }
  int64_t id = pg_i64(row, 0, 0);
  int kind = (int)pg_i64(row, 0, 1);
  if (!r->created_at) r->created_at = pg_i64(row, 0, 4); /* the record gave none: as stored */
  if (!r->updated_at) r->updated_at = pg_i64(row, 0, 5);
  int same = str_eq(pg_str(row, 0, 2), r->creator) && str_eq(pg_str(row, 0, 3), ukey) &&
             pg_i64(row, 0, 4) == r->created_at && pg_i64(row, 0, 5) == r->updated_at && op->lm <= pg_i64(row, 0, 6) &&
             pg_i64(row, 0, 7) == r->expire_at && docs_equal(pg_str(row, 0, 8), op->doc);
  PQclear(row);
  if (kind != r->kind) {
    skip(op, "the conversation exists as another kind (normal, chat room, service, temporary)");
    return 0;
  }
  int changed = !same;
  if (changed) {
    pgargs_t u = {0};
    pga_i64(&u, id);
    pga_txt(&u, r->creator);
    pga_txt(&u, ukey);
    pga_i64(&u, r->created_at);
    pga_i64(&u, r->updated_at);
    pga_i64_or_null(&u, op->lm);
    pga_i64_or_null(&u, r->expire_at);
    pga_txt(&u, op->doc);
    pga_i64(&u, now_ms());
    if ((rc = cmd(x, PS_IMP_CONV_UPD, &u, NULL))) return rc;
  }
  if (members && (rc = members_sync(x, id, r->members, r->nmembers, 0, now_ms(), &changed))) return rc;
  op->outcome = changed ? IMP_APPLIED : IMP_UNCHANGED;
  return 0;
}

/* A role per client (sorted by client): the member_info rows become exactly these. */
static int import_roles(ctx_t *x, import_op_t *op, int64_t conv) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  PGresult *have;
  if (q(x, PS_IMP_ROLES, &a, &have)) return SQLFAIL;
  int nh = PQntuples(have), rc = 0, changed = 0;
  int64_t now = now_ms();
  for (size_t i = 0; !rc && i < op->n; i++) {
    int k = 0;
    while (k < nh && strcmp(pg_str(have, k, 0), op->clients[i]) != 0) k++;
    if (k < nh && strcmp(pg_str(have, k, 1), op->roles[i]) == 0) continue;
    uint8_t rnd[12];
    char info_id[25];
    random_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, info_id);
    pgargs_t p = {0};
    pga_i64(&p, conv);
    pga_txt(&p, op->clients[i]);
    pga_txt(&p, op->roles[i]);
    pga_txt(&p, info_id);
    pga_i64(&p, now);
    rc = cmd(x, PS_IMP_ROLE_PUT, &p, NULL);
    changed = 1;
  }
  for (int k = 0; !rc && k < nh; k++) {
    if (in_sorted(op->clients, op->n, pg_str(have, k, 0))) continue;
    pgargs_t d = {0};
    pga_i64(&d, conv);
    pga_txt(&d, pg_str(have, k, 0));
    rc = cmd(x, PS_DEL_ROLE, &d, NULL);
    changed = 1;
  }
  PQclear(have);
  op->outcome = changed ? IMP_APPLIED : IMP_UNCHANGED;
  return rc;
}

/* The permanent shut-ups (set 1) or the blacklist (set 2) become exactly op->clients. */
static int import_set(ctx_t *x, import_op_t *op, int64_t conv, int set) {
  list_t have = {0};
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_i64(&a, set);
  int rc = list_read(x, PS_IMP_SET_OF, &a, &have);
  if (rc) return rc;
  if (lists_equal(have.v, have.n, op->clients, op->n)) {
    list_free(&have);
    op->outcome = IMP_UNCHANGED;
    return 0;
  }
  int64_t now = now_ms();
  for (size_t i = 0; !rc && i < op->n; i++) {
    if (in_sorted(have.v, have.n, op->clients[i])) continue;
    pgargs_t p = {0};
    pga_i64(&p, conv);
    pga_i64(&p, set);
    pga_txt(&p, op->clients[i]);
    pga_i64(&p, now);
    rc = cmd(x, PS_IMP_SET_INS, &p, NULL);
  }
  for (size_t k = 0; !rc && k < have.n; k++) {
    if (in_sorted(op->clients, op->n, have.v[k])) continue;
    pgargs_t d = {0};
    pga_i64(&d, conv);
    pga_i64(&d, set);
    pga_txt(&d, have.v[k]);
    rc = cmd(x, PS_DEL_SET, &d, NULL);
  }
  list_free(&have);
  op->outcome = IMP_APPLIED;
  return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The document's mu (who muted offline push) becomes op->clients (sorted). */
static int import_mutes(ctx_t *x, import_op_t *op, int64_t conv) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  PGresult *r;
  if (q(x, PS_CONV_DOC, &a, &r)) return SQLFAIL;
  if (!PQntuples(r)) {
    PQclear(r);
    return 0;
  }
  json_t *doc = json_loads(pg_str(r, 0, 0), 0, NULL);
  PQclear(r);
  if (!json_is_object(doc)) {
    json_decref(doc);
    doc = json_object();
  }
  list_t have = {0};
  json_t *mu = json_object_get(doc, "mu");
  have.v = xcalloc(json_array_size(mu) + 1, sizeof(char *));
  for (size_t i = 0; i < json_array_size(mu); i++)
    if (json_is_string(json_array_get(mu, i))) have.v[have.n++] = xstrdup(json_string_value(json_array_get(mu, i)));
  qsort(have.v, have.n, sizeof *have.v, cmp_str);
  int same = json_is_array(mu) && have.n == json_array_size(mu) && lists_equal(have.v, have.n, op->clients, op->n);
  list_free(&have);
  if (same) {
    json_decref(doc);
    op->outcome = IMP_UNCHANGED;
    return 0;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < op->n; i++) json_array_append_new(arr, json_string(op->clients[i]));
  json_object_set_new(doc, "mu", arr);
  char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(doc);
  pgargs_t p = {0};
  pga_i64(&p, conv);
  pga_txt(&p, text);
  pga_i64(&p, now_ms());
  int rc = cmd(x, PS_IMP_DOC_PUT, &p, NULL);
  free(text);
  if (!rc) op->outcome = IMP_APPLIED;
  return rc;
}

static import_conv_t *touched(ctx_t *x, int64_t conv, const char *cid) {
  job_import_t *j = x->j;
  for (size_t i = j->ntouched; i-- > 0;)
    if (j->touched[i].conv == conv) return &j->touched[i];
  if (j->ntouched == x->touched_cap) {
    x->touched_cap = x->touched_cap ? x->touched_cap * 2 : 8;
    j->touched = xrealloc(j->touched, x->touched_cap * sizeof *j->touched);
  }
  import_conv_t *t = &j->touched[j->ntouched++];
  memset(t, 0, sizeof *t);
  t->conv = conv;
  t->cid = xstrdup(cid);
  return t;
}

static int next_seq_at(ctx_t *x, int64_t conv, int64_t ts, int64_t *seq) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_i64(&a, ts);
  PGresult *r;
  if (q(x, PS_IMP_SEQ_AT, &a, &r)) return SQLFAIL;
  *seq = pg_i64(r, 0, 0) + 1;
  PQclear(r);
  return 0;
}

static void put_content(pgargs_t *a, const import_op_t *op) {
  pga_bin(a, op->data, op->len);
  pga_i64(a, op->flags);
  pga_txt(a, op->mentions);
  if (op->has_lctype) pga_i64(a, op->lctype);
  else pga_null(a);
}

static int import_msg(ctx_t *x, import_op_t *op, int64_t conv) {
  pgargs_t g = {0};
  pga_i64(&g, conv);
  pga_txt(&g, op->mid);
  PGresult *r;
  if (q(x, PS_IMP_EXT_GET, &g, &r)) return SQLFAIL;
  if (PQntuples(r)) { /* known: only a newer edit or recall changes it */
    int64_t ts = pg_i64(r, 0, 0), seq = pg_i64(r, 0, 1), patch_ts = pg_i64(r, 0, 2);
    int present = (int)pg_i64(r, 0, 3);
    PQclear(r);
    if (!present || op->patch_ts <= patch_ts) {
      op->outcome = IMP_UNCHANGED;
      return 0;
    }
    pgargs_t u = {0};
    pga_i64(&u, conv);
    pga_i64(&u, ts);
    pga_i64(&u, seq);
    put_content(&u, op);
    pga_i64(&u, op->patch_ts);
    int rc = cmd(x, PS_IMP_MSG_UPD, &u, NULL);
    if (!rc) op->outcome = IMP_APPLIED;
    return rc;
  }
  PQclear(r);
  int64_t seq = op->seq;
  int rc;
  if (!seq && (rc = next_seq_at(x, conv, op->ts, &seq))) return rc;
  for (int attempt = 0;; attempt++) {
    pgargs_t a = {0};
    pga_i64(&a, conv);
    pga_i64(&a, op->ts);
    pga_i64(&a, seq);
    pga_txt(&a, op->mid);
    pga_txt(&a, op->sender);
    put_content(&a, op);
    pga_i64(&a, op->patch_ts);
    int64_t n = 0;
    if ((rc = cmd(x, PS_IMP_MSG_INS, &a, &n))) return rc;
    if (n == 1) break;
    /* the key the worker reserved is taken (store_sqlite_import.c): the next free seq at
     * that time is as good */
    if (attempt) {
      log_at(LOG_ERROR, "import: no free key for message %s", op->mid);
      return SQLFAIL;
    }
    if ((rc = next_seq_at(x, conv, op->ts, &seq))) return rc;
  }
  pgargs_t e = {0};
  pga_i64(&e, conv);
  pga_txt(&e, op->mid);
  pga_i64(&e, op->ts);
  pga_i64(&e, seq);
  if ((rc = cmd(x, PS_IMP_EXT_INS, &e, NULL))) return rc;
  import_conv_t *t = touched(x, conv, op->cid);
  if (op->ts > t->max_ts || (op->ts == t->max_ts && seq > t->max_ts_seq)) {
    t->max_ts = op->ts;
    t->max_ts_seq = seq;
  }
  if (seq > t->max_seq) t->max_seq = seq;
  op->outcome = IMP_APPLIED;
  return 0;
}

static int import_installation(ctx_t *x, import_op_t *op) {
  job_installation_t *in = op->inst;
  pgargs_t g = {0};
  pga_txt(&g, in->id);
  PGresult *r;
  if (q(x, PS_IMP_INST_GET, &g, &r)) return SQLFAIL;
  int found = PQntuples(r) == 1, same = 0, rc;
  int64_t now = now_ms(); /* times the record did not give: as stored, else the import's */
  if (!in->created_at) in->created_at = found ? pg_i64(r, 0, 3) : now;
  if (!in->updated_at) in->updated_at = found ? pg_i64(r, 0, 4) : now;
  if (found)
    same = str_eq(pg_str(r, 0, 0), in->device_type) && str_eq(pg_str(r, 0, 1), in->token) &&
           docs_equal(pg_str(r, 0, 2), in->body) && pg_i64(r, 0, 3) == in->created_at &&
           pg_i64(r, 0, 4) == in->updated_at;
  PQclear(r);
  if (same) {
    list_t have = {0};
    if ((rc = list_read(x, PS_IMP_INST_CLIENTS, &g, &have))) return rc;
    same = lists_equal(have.v, have.n, in->channels, in->n);
    list_free(&have);
    if (same) {
      op->outcome = IMP_UNCHANGED;
      return 0;
    }
  }
  if ((rc = cmd(x, PS_DEL_INST_DEVICES, &g, NULL))) return rc;
  pgargs_t e = {0};
  pga_txt(&e, in->device_type);
  pga_txt(&e, in->token);
  pga_txt(&e, in->id);
  if ((rc = cmd(x, PS_DEL_INST_TOKEN, &e, NULL))) return rc;
  pgargs_t p = {0};
  pga_txt(&p, in->id);
  pga_txt(&p, in->device_type);
  pga_txt(&p, in->token);
  pga_txt(&p, in->body ? in->body : "{}");
  pga_i64(&p, in->created_at);
  pga_i64(&p, in->updated_at);
  if ((rc = cmd(x, PS_PUT_INST, &p, NULL))) return rc;
  for (size_t i = 0; i < in->n; i++) {
    pgargs_t d = {0};
    pga_txt(&d, in->channels[i]);
    pga_txt(&d, in->token);
    pga_txt(&d, in->device_type);
    pga_txt(&d, in->id);
    pga_i64(&d, in->updated_at);
    if ((rc = cmd(x, PS_INS_INST_DEVICE, &d, NULL))) return rc;
  }
  if (in->has_badge) {
    pgargs_t b = {0};
    pga_txt(&b, in->token);
    pga_i64(&b, in->badge);
    if ((rc = cmd(x, PS_SET_BADGE, &b, NULL))) return rc;
  }
  op->outcome = IMP_APPLIED;
  return 0;
}

/* After the messages: members have read and received up to the newest imported key, and
 * the conversation knows it has ids of its own. The writer runs it once per conversation
 * per transaction, not once per job (pg_writer.c: fwd_flush): PostgreSQL writes a new
 * version of every member row at each update, and imports that follow each other in one
 * batch made each update walk all the versions before it. */
int pg_import_finish(pgc_t *p, int64_t conv, int64_t ts, int64_t seq) {
  ctx_t x = {.p = p};
  static const int fwd[2] = {PS_IMP_READ_FWD, PS_IMP_ACK_FWD};
  for (int k = 0; k < 2; k++) {
    pgargs_t a = {0};
    pga_i64(&a, conv);
    pga_i64(&a, ts);
    pga_i64(&a, seq);
    if (cmd(&x, fwd[k], &a, NULL)) return SQLFAIL;
  }
  pgargs_t e = {0};
  pga_i64(&e, conv);
  pga_i64(&e, ts);
  pga_i64(&e, now_ms());
  return cmd(&x, PS_IMP_CONV_EXT, &e, NULL);
}

int pg_import_run(pgc_t *p, job_import_t *j) {
  ctx_t x = {.p = p, .j = j};
  int rc = 0;
  for (size_t i = 0; i < j->n && !rc; i++) {
    import_op_t *op = &j->ops[i];
    if (op->outcome == IMP_SKIPPED) continue;
    if (op->type == IMP_CONV) {
      rc = import_conv(&x, op);
      continue;
    }
    if (op->type == IMP_INSTALLATION) {
      rc = import_installation(&x, op);
      continue;
    }
    int64_t conv;
    int kind;
    if ((rc = conv_lookup(&x, op->cid, &conv, &kind))) break;
    if (!conv) {
      skip(op, "unknown conversation");
      continue;
    }
    switch (op->type) {
    case IMP_MSG: rc = import_msg(&x, op, conv); break;
    case IMP_ROLES: rc = import_roles(&x, op, conv); break;
    case IMP_SHUTUP: rc = import_set(&x, op, conv, SET_SHUTUP); break;
    case IMP_BLOCK: rc = import_set(&x, op, conv, SET_BLOCK); break;
    case IMP_MUTES: rc = import_mutes(&x, op, conv); break;
    case IMP_SUBSCRIBERS: {
      if (kind != CONV_SYSTEM) {
        skip(op, "subscribers are for service conversations");
        break;
      }
      int changed = 0;
      rc = members_sync(&x, conv, op->clients, op->n, !op->replace, now_ms(), &changed);
      op->outcome = changed ? IMP_APPLIED : IMP_UNCHANGED;
      break;
    }
    default: skip(op, "unknown record type");
    }
  }
  free(x.memo_cid);
  return rc;
}
