/* import.c — the bulk import's rules, for every backend (JOB_IMPORT; the backend's SQL is
 * behind import_backend_t, import.h).
 *
 * One job is one request body of POST /1.2/import/records (docs/migrate-api.md): up to
 * thousands of conversation, list, message and installation records, applied in order in
 * the writer's batch transaction — so 5,000 messages cost one commit, not 5,000. Every
 * record is compared with what is stored and written only when it differs, which makes a
 * replayed body report its lines unchanged.
 *
 * Imported messages keep the ids they had (LeanCloud's are 22 characters like tern's, but
 * do not encode a key), so each one also gets a row in msg_ext (conv, mid) → (ts, seq), and
 * its conversation the ext_ids flag that tells msg_key_resolve (msgid.c) to look there.
 * Members have read and received everything imported: LeanCloud's API cannot export read
 * positions, and a switch that made every old message unread would be worse. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "import.h"
#include "log.h"
#include "timeutil.h"

void imp_list_add(imp_list_t *l, const char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->v = xrealloc(l->v, l->cap * sizeof(char *));
  }
  l->v[l->n++] = xstrdup(s ? s : "");
}

void imp_list_free(imp_list_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

typedef struct {
  const import_backend_t *ops;
  void *b;
  job_import_t *j;
  size_t touched_cap;
  /* the last conversation looked up: a body's messages mostly come one conversation at a time */
  char *memo_cid;
  int64_t memo_id;
  int memo_kind;
} ctx_t;

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

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

static int docs_equal(const char *a, const char *b) {
  if (!a || !b) return a == b;
  if (strcmp(a, b) == 0) return 1;
  json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
  int eq = ja && jb && json_equal(ja, jb);
  json_decref(ja);
  json_decref(jb);
  return eq;
}

static void conv_free(imp_conv_t *c) {
  free(c->creator);
  free(c->unique_id);
  free(c->doc);
}

static void memo(ctx_t *x, const char *cid, int64_t id, int kind) {
  free(x->memo_cid);
  x->memo_cid = xstrdup(cid);
  x->memo_id = id;
  x->memo_kind = kind;
}

/* The conversation's row id and kind; *id 0 when there is none. */
static int conv_lookup(ctx_t *x, const char *cid, int64_t *id, int *kind) {
  if (x->memo_cid && strcmp(x->memo_cid, cid) == 0) {
    *id = x->memo_id;
    *kind = x->memo_kind;
    return 0;
  }
  imp_conv_t c = {0};
  int rc = x->ops->conv_get(x->b, cid, &c);
  *id = !rc && c.found ? c.id : 0;
  *kind = !rc && c.found ? c.kind : 0;
  conv_free(&c);
  if (!rc) memo(x, cid, *id, *kind);
  return rc;
}

static void skip(import_op_t *op, const char *why) {
  op->outcome = IMP_SKIPPED;
  op->reason = why;
}

/* Adds and removes members so that conv's are exactly want (add_only: only adds); members
 * that join start reading at the newest key. *changed is set when anything moved. */
static int members_sync(ctx_t *x, int64_t conv, char *const *want, size_t n, int add_only, int64_t joined_at,
                        int *changed) {
  imp_list_t have = {0};
  int rc = x->ops->members(x->b, conv, &have);
  int64_t ts = 0, seq = 0;
  int have_key = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    if (in_sorted(have.v, have.n, want[i])) continue;
    if (!have_key && (rc = x->ops->last_key(x->b, conv, &ts, &seq))) break;
    have_key = 1;
    rc = x->ops->member_add(x->b, conv, want[i], joined_at, ts, seq);
    *changed = 1;
  }
  for (size_t i = 0; !rc && !add_only && i < have.n; i++) {
    if (in_sorted(want, n, have.v[i])) continue;
    rc = x->ops->role_del(x->b, conv, have.v[i]); /* a member who leaves loses its role */
    if (!rc) rc = x->ops->member_del(x->b, conv, have.v[i]);
    *changed = 1;
  }
  imp_list_free(&have);
  if (!rc && *changed) rc = x->ops->member_count(x->b, conv);
  return rc;
}

/* The unique index key the conversation may have: none when another conversation holds it
 * (two imported unique conversations with the same members now: the first keeps it). */
static int unique_key(ctx_t *x, const char *cid, const char *want, const char **out) {
  *out = want;
  if (!want) return 0;
  char *owner = NULL;
  int rc = x->ops->unique_owner(x->b, want, &owner);
  if (!rc && owner && strcmp(owner, cid) != 0) {
    log_at(LOG_WARN, "import: unique conversation %s has the members of %s, which keeps the unique lookup", cid, owner);
    *out = NULL;
  }
  free(owner);
  return rc;
}

static int import_conv(ctx_t *x, import_op_t *op) {
  conv_row_t *r = op->conv;
  int members = r->kind == CONV_NORMAL || r->kind == CONV_TEMP;
  const char *ukey;
  int rc = unique_key(x, r->cid, r->unique_id, &ukey);
  if (rc) return rc;
  imp_conv_t c = {0};
  if ((rc = x->ops->conv_get(x->b, r->cid, &c))) return rc;
  if (!c.found) {
    int64_t now = now_ms(); /* the record gave no times: the import's */
    if (!r->created_at) r->created_at = now;
    if (!r->updated_at) r->updated_at = now;
    int64_t id = 0;
    rc = x->ops->conv_insert(x->b, r, ukey, op->lm, members ? (int64_t)r->nmembers : 0, op->doc, now_ms(), &id);
    for (size_t i = 0; !rc && members && i < r->nmembers; i++)
      rc = x->ops->member_add(x->b, id, r->members[i], r->created_at, 0, 0);
    if (rc) return rc;
    memo(x, r->cid, id, r->kind);
    op->outcome = IMP_APPLIED;
    return 0;
  }
  if (!r->created_at) r->created_at = c.created_at; /* the record gave none: as stored */
  if (!r->updated_at) r->updated_at = c.updated_at;
  int same = str_eq(c.creator, r->creator) && str_eq(c.unique_id, ukey) && c.created_at == r->created_at &&
             c.updated_at == r->updated_at && op->lm <= c.lm && c.expire_at == r->expire_at &&
             docs_equal(c.doc, op->doc);
  int64_t id = c.id;
  int kind = c.kind;
  conv_free(&c);
  if (kind != r->kind) {
    skip(op, "the conversation exists as another kind (normal, chat room, service, temporary)");
    return 0;
  }
  int changed = !same;
  if (changed && (rc = x->ops->conv_update(x->b, id, r, ukey, op->lm, op->doc, now_ms()))) return rc;
  if (members && (rc = members_sync(x, id, r->members, r->nmembers, 0, now_ms(), &changed))) return rc;
  op->outcome = changed ? IMP_APPLIED : IMP_UNCHANGED;
  return 0;
}

/* A role per client (sorted by client): the member_info rows become exactly these. */
static int import_roles(ctx_t *x, import_op_t *op, int64_t conv) {
  imp_list_t have = {0}, roles = {0};
  int rc = x->ops->roles(x->b, conv, &have, &roles), changed = 0;
  int64_t now = now_ms();
  for (size_t i = 0; !rc && i < op->n; i++) {
    size_t k = 0;
    while (k < have.n && strcmp(have.v[k], op->clients[i]) != 0) k++;
    if (k < have.n && strcmp(roles.v[k], op->roles[i]) == 0) continue;
    uint8_t rnd[12];
    char info_id[25];
    random_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, info_id);
    rc = x->ops->role_put(x->b, conv, op->clients[i], op->roles[i], info_id, now);
    changed = 1;
  }
  for (size_t k = 0; !rc && k < have.n; k++) {
    if (in_sorted(op->clients, op->n, have.v[k])) continue;
    rc = x->ops->role_del(x->b, conv, have.v[k]);
    changed = 1;
  }
  imp_list_free(&have);
  imp_list_free(&roles);
  op->outcome = changed ? IMP_APPLIED : IMP_UNCHANGED;
  return rc;
}

/* The permanent shut-ups (SET_SHUTUP) or the blacklist (SET_BLOCK) become exactly op->clients. */
static int import_set(ctx_t *x, import_op_t *op, int64_t conv, int set) {
  imp_list_t have = {0};
  int rc = x->ops->set_of(x->b, conv, set, &have);
  if (!rc && lists_equal(have.v, have.n, op->clients, op->n)) {
    imp_list_free(&have);
    op->outcome = IMP_UNCHANGED;
    return 0;
  }
  int64_t now = now_ms();
  for (size_t i = 0; !rc && i < op->n; i++)
    if (!in_sorted(have.v, have.n, op->clients[i])) rc = x->ops->set_add(x->b, conv, set, op->clients[i], now);
  for (size_t k = 0; !rc && k < have.n; k++)
    if (!in_sorted(op->clients, op->n, have.v[k])) rc = x->ops->set_del(x->b, conv, set, have.v[k]);
  imp_list_free(&have);
  if (!rc) op->outcome = IMP_APPLIED;
  return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The document's mu (who muted offline push) becomes op->clients (sorted). */
static int import_mutes(ctx_t *x, import_op_t *op, int64_t conv) {
  int found = 0;
  char *text = NULL;
  int rc = x->ops->doc_get(x->b, conv, &found, &text);
  json_t *doc = !rc && found && text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  if (rc || !found) return rc;
  if (!json_is_object(doc)) {
    json_decref(doc);
    doc = json_object();
  }
  imp_list_t have = {0};
  json_t *mu = json_object_get(doc, "mu");
  for (size_t i = 0; i < json_array_size(mu); i++)
    if (json_is_string(json_array_get(mu, i))) imp_list_add(&have, json_string_value(json_array_get(mu, i)));
  if (have.n) qsort(have.v, have.n, sizeof *have.v, cmp_str); /* to compare with the record's */
  int same = json_is_array(mu) && have.n == json_array_size(mu) && lists_equal(have.v, have.n, op->clients, op->n);
  imp_list_free(&have);
  if (same) {
    json_decref(doc);
    op->outcome = IMP_UNCHANGED;
    return 0;
  }
  json_t *a = json_array();
  for (size_t i = 0; i < op->n; i++) json_array_append_new(a, json_string(op->clients[i]));
  json_object_set_new(doc, "mu", a);
  text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(doc);
  rc = x->ops->doc_put(x->b, conv, text, now_ms());
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
  int rc = x->ops->max_seq_at(x->b, conv, ts, seq);
  if (!rc) ++*seq;
  return rc;
}

static int import_msg(ctx_t *x, import_op_t *op, int64_t conv) {
  imp_ext_t e = {0};
  int rc = x->ops->ext_get(x->b, conv, op->mid, &e);
  if (rc) return rc;
  if (e.found) { /* known: only a newer edit or recall changes it */
    if (!e.present || op->patch_ts <= e.patch_ts) {
      op->outcome = IMP_UNCHANGED;
      return 0;
    }
    rc = x->ops->msg_update(x->b, conv, e.ts, e.seq, op);
    if (!rc) op->outcome = IMP_APPLIED;
    return rc;
  }
  int64_t seq = op->seq;
  if (!seq && (rc = next_seq_at(x, conv, op->ts, &seq))) return rc;
  for (int attempt = 0;; attempt++) {
    int taken = 0;
    if ((rc = x->ops->msg_insert(x->b, conv, op->ts, seq, op, &taken))) return rc;
    if (!taken) break;
    /* The key the worker reserved can be taken after a restart (the cache starts from the
     * newest message, and an earlier delta may have put an older one above it): the next
     * free seq at that time is as good, and no live send uses a time that old. */
    if (attempt) {
      log_at(LOG_ERROR, "import: no free key for message %s", op->mid);
      return TERN_ESTORE;
    }
    if ((rc = next_seq_at(x, conv, op->ts, &seq))) return rc;
  }
  if ((rc = x->ops->ext_add(x->b, conv, op->mid, op->ts, seq))) return rc;
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
  imp_inst_t s = {0};
  int rc = x->ops->inst_get(x->b, in->id, &s), same = 0;
  int64_t now = now_ms(); /* times the record did not give: as stored, else the import's */
  if (!rc) {
    if (!in->created_at) in->created_at = s.found ? s.created_at : now;
    if (!in->updated_at) in->updated_at = s.found ? s.updated_at : now;
    same = s.found && str_eq(s.device_type, in->device_type) && str_eq(s.token, in->token) &&
           docs_equal(s.body, in->body) && s.created_at == in->created_at && s.updated_at == in->updated_at;
  }
  free(s.device_type);
  free(s.token);
  free(s.body);
  if (rc) return rc;
  if (same) {
    imp_list_t have = {0};
    if ((rc = x->ops->inst_clients(x->b, in->id, &have))) return rc;
    same = lists_equal(have.v, have.n, in->channels, in->n);
    imp_list_free(&have);
    if (same) {
      op->outcome = IMP_UNCHANGED;
      return 0;
    }
  }
  if ((rc = x->ops->inst_devices_del(x->b, in->id)) || (rc = x->ops->inst_put(x->b, in))) return rc;
  for (size_t i = 0; i < in->n; i++)
    if ((rc = x->ops->inst_device_add(x->b, in, in->channels[i]))) return rc;
  if (in->has_badge && (rc = x->ops->badge(x->b, in->token, in->badge))) return rc;
  op->outcome = IMP_APPLIED;
  return 0;
}

int import_apply(const import_backend_t *ops, void *b, job_import_t *j) {
  ctx_t x = {.ops = ops, .b = b, .j = j};
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
  /* after the messages: members have read and received up to the newest imported key */
  for (size_t i = 0; !rc && ops->finish && i < j->ntouched; i++)
    rc = ops->finish(b, j->touched[i].conv, j->touched[i].max_ts, j->touched[i].max_ts_seq);
  free(x.memo_cid);
  return rc;
}
