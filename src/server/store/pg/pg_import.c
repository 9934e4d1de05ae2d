/* pg_import.c — the PostgreSQL primitives of the bulk import (JOB_IMPORT; its rules are
 * store/import.c's, for every backend), in the batch's transaction on the writer's
 * connection; import.h says what each does. The members' read and receipt positions and
 * the ext_ids flag are left to the end of the transaction (pg_import_finish). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "import.h"
#include "log.h"
#include "pg_int.h"
#include "timeutil.h"

/* a's parameters by types: 't' text (NULL: NULL), 'i' int64_t, 'n' int64_t with 0 as NULL */
static pgargs_t *args(pgargs_t *a, const char *types, ...) {
  va_list ap;
  va_start(ap, types);
  memset(a, 0, sizeof *a);
  for (int i = 0; types[i]; i++) {
    if (types[i] == 't') pga_txt(a, va_arg(ap, const char *));
    else if (types[i] == 'n') pga_i64_or_null(a, va_arg(ap, int64_t));
    else pga_i64(a, va_arg(ap, int64_t));
  }
  va_end(ap);
  return a;
}

/* Runs a command: 0 or TERN_ESTORE; *changes the rows it changed (may be NULL). */
static int cmd(void *p, int id, const pgargs_t *a, int64_t *changes) {
  PGresult *r;
  if (pgc_run(p, id, a, &r) < 0) return TERN_ESTORE;
  if (changes) *changes = pg_changes(r);
  PQclear(r);
  return 0;
}

/* Runs a read: 0 with *r (PQclear it), or TERN_ESTORE. */
static int q(void *p, int id, const pgargs_t *a, PGresult **r) { return pgc_run(p, id, a, r) < 0 ? TERN_ESTORE : 0; }

/* Column 0 (and 1 into out2) of every row. */
static int lists(void *p, int id, const pgargs_t *a, imp_list_t *out, imp_list_t *out2) {
  PGresult *r;
  if (q(p, id, a, &r)) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(r); i++) {
    imp_list_add(out, pg_str(r, i, 0));
    if (out2) imp_list_add(out2, pg_str(r, i, 1));
  }
  PQclear(r);
  return 0;
}

static int conv_get(void *p, const char *cid, imp_conv_t *c) {
  pgargs_t a;
  PGresult *r;
  if (q(p, PS_IMP_CONV_GET, args(&a, "t", cid), &r)) return TERN_ESTORE;
  if ((c->found = PQntuples(r) > 0)) {
    c->id = pg_i64(r, 0, 0);
    c->kind = (int)pg_i64(r, 0, 1);
    c->creator = pg_dup(r, 0, 2);
    c->unique_id = pg_dup(r, 0, 3);
    c->created_at = pg_i64(r, 0, 4);
    c->updated_at = pg_i64(r, 0, 5);
    c->lm = pg_i64(r, 0, 6);
    c->expire_at = pg_i64(r, 0, 7);
    c->doc = pg_dup(r, 0, 8);
  }
  PQclear(r);
  return 0;
}

static int unique_owner(void *p, const char *unique_id, char **cid) {
  pgargs_t a;
  PGresult *r;
  if (q(p, PS_IMP_UNIQUE_OWNER, args(&a, "t", unique_id), &r)) return TERN_ESTORE;
  if (PQntuples(r)) *cid = pg_dup(r, 0, 0);
  PQclear(r);
  return 0;
}

static int conv_insert(void *p, const conv_row_t *c, const char *unique_id, int64_t lm, int64_t member_count,
                       const char *doc, int64_t now, int64_t *id) {
  pgargs_t a;
  PGresult *r;
  if (q(p, PS_IMP_CONV_INS,
        args(&a, "tittiinniti", c->cid, (int64_t)c->kind, c->creator, unique_id, c->created_at, c->updated_at, lm,
             c->expire_at, member_count, doc, now),
        &r))
    return TERN_ESTORE;
  *id = pg_i64(r, 0, 0);
  PQclear(r);
  return 0;
}

static int conv_update(void *p, int64_t id, const conv_row_t *c, const char *unique_id, int64_t lm, const char *doc,
                       int64_t now) {
  pgargs_t a;
  return cmd(p, PS_IMP_CONV_UPD,
             args(&a, "ittiinnti", id, c->creator, unique_id, c->created_at, c->updated_at, lm, c->expire_at, doc, now),
             NULL);
}

static int members(void *p, int64_t conv, imp_list_t *out) {
  pgargs_t a;
  return lists(p, PS_CONV_MEMBERS, args(&a, "i", conv), out, NULL);
}

static int member_add(void *p, int64_t conv, const char *client, int64_t joined_at, int64_t ts, int64_t seq) {
  pgargs_t a;
  return cmd(p, PS_INS_MEMBER, args(&a, "itiii", conv, client, joined_at, ts, seq), NULL);
}

static int member_del(void *p, int64_t conv, const char *client) {
  pgargs_t a;
  return cmd(p, PS_DEL_MEMBER, args(&a, "it", conv, client), NULL);
}

static int member_count(void *p, int64_t conv) {
  pgargs_t a;
  return cmd(p, PS_IMP_MEMBER_COUNT, args(&a, "i", conv), NULL);
}

static int last_key(void *p, int64_t conv, int64_t *ts, int64_t *seq) {
  pgargs_t a;
  PGresult *r;
  if (q(p, PS_IMP_LAST_KEY, args(&a, "i", conv), &r)) return TERN_ESTORE;
  *ts = PQntuples(r) ? pg_i64(r, 0, 0) : 0;
  *seq = PQntuples(r) ? pg_i64(r, 0, 1) : 0;
  PQclear(r);
  return 0;
}

static int roles(void *p, int64_t conv, imp_list_t *clients, imp_list_t *roles_out) {
  pgargs_t a;
  return lists(p, PS_IMP_ROLES, args(&a, "i", conv), clients, roles_out);
}

static int role_put(void *p, int64_t conv, const char *client, const char *role, const char *info_id, int64_t now) {
  pgargs_t a;
  return cmd(p, PS_IMP_ROLE_PUT, args(&a, "ittti", conv, client, role, info_id, now), NULL);
}

static int role_del(void *p, int64_t conv, const char *client) {
  pgargs_t a;
  return cmd(p, PS_DEL_ROLE, args(&a, "it", conv, client), NULL);
}

static int set_of(void *p, int64_t conv, int set, imp_list_t *out) {
  pgargs_t a;
  return lists(p, PS_IMP_SET_OF, args(&a, "ii", conv, (int64_t)set), out, NULL);
}

static int set_add(void *p, int64_t conv, int set, const char *client, int64_t now) {
  pgargs_t a;
  return cmd(p, PS_IMP_SET_INS, args(&a, "iiti", conv, (int64_t)set, client, now), NULL);
}

static int set_del(void *p, int64_t conv, int set, const char *client) {
  pgargs_t a;
  return cmd(p, PS_DEL_SET, args(&a, "iit", conv, (int64_t)set, client), NULL);
}

static int doc_get(void *p, int64_t conv, int *found, char **doc) {
  pgargs_t a;
  PGresult *r;
  if (q(p, PS_CONV_DOC, args(&a, "i", conv), &r)) return TERN_ESTORE;
  if ((*found = PQntuples(r) > 0)) *doc = pg_dup(r, 0, 0);
  PQclear(r);
  return 0;
}

static int doc_put(void *p, int64_t conv, const char *doc, int64_t now) {
  pgargs_t a;
  return cmd(p, PS_IMP_DOC_PUT, args(&a, "iti", conv, doc, now), NULL);
}

static int ext_get(void *p, int64_t conv, const char *mid, imp_ext_t *e) {
  pgargs_t a;
  PGresult *r;
  if (q(p, PS_IMP_EXT_GET, args(&a, "it", conv, mid), &r)) return TERN_ESTORE;
  if ((e->found = PQntuples(r) > 0)) {
    e->ts = pg_i64(r, 0, 0);
    e->seq = pg_i64(r, 0, 1);
    e->patch_ts = pg_i64(r, 0, 2);
    e->present = (int)pg_i64(r, 0, 3);
  }
  PQclear(r);
  return 0;
}

static int ext_add(void *p, int64_t conv, const char *mid, int64_t ts, int64_t seq) {
  pgargs_t a;
  return cmd(p, PS_IMP_EXT_INS, args(&a, "itii", conv, mid, ts, seq), NULL);
}

static int max_seq_at(void *p, int64_t conv, int64_t ts, int64_t *seq) {
  pgargs_t a;
  PGresult *r;
  if (q(p, PS_IMP_SEQ_AT, args(&a, "ii", conv, ts), &r)) return TERN_ESTORE;
  *seq = pg_i64(r, 0, 0);
  PQclear(r);
  return 0;
}

/* data, flags, mentions and lctype of op */
static void put_content(pgargs_t *a, const import_op_t *op) {
  pga_bin(a, op->data, op->len);
  pga_i64(a, op->flags);
  pga_txt(a, op->mentions);
  if (op->has_lctype) pga_i64(a, op->lctype);
  else pga_null(a);
}

static int msg_insert(void *p, int64_t conv, int64_t ts, int64_t seq, const import_op_t *op, int *taken) {
  pgargs_t a;
  args(&a, "iiitt", conv, ts, seq, op->mid, op->sender);
  put_content(&a, op);
  pga_i64(&a, op->patch_ts);
  int64_t n = 0;
  int rc = cmd(p, PS_IMP_MSG_INS, &a, &n); /* ON CONFLICT DO NOTHING: a taken key changes no row */
  *taken = !rc && n != 1;
  return rc;
}

static int msg_update(void *p, int64_t conv, int64_t ts, int64_t seq, const import_op_t *op) {
  pgargs_t a;
  args(&a, "iii", conv, ts, seq);
  put_content(&a, op);
  pga_i64(&a, op->patch_ts);
  return cmd(p, PS_IMP_MSG_UPD, &a, NULL);
}

static int inst_get(void *p, const char *id, imp_inst_t *in) {
  pgargs_t a;
  PGresult *r;
  if (q(p, PS_IMP_INST_GET, args(&a, "t", id), &r)) return TERN_ESTORE;
  if ((in->found = PQntuples(r) == 1)) {
    in->device_type = pg_dup(r, 0, 0);
    in->token = pg_dup(r, 0, 1);
    in->body = pg_dup(r, 0, 2);
    in->created_at = pg_i64(r, 0, 3);
    in->updated_at = pg_i64(r, 0, 4);
  }
  PQclear(r);
  return 0;
}

static int inst_clients(void *p, const char *id, imp_list_t *out) {
  pgargs_t a;
  return lists(p, PS_IMP_INST_CLIENTS, args(&a, "t", id), out, NULL);
}

static int inst_devices_del(void *p, const char *id) {
  pgargs_t a;
  return cmd(p, PS_DEL_INST_DEVICES, args(&a, "t", id), NULL);
}

static int inst_put(void *p, const job_installation_t *in) {
  pgargs_t a;
  int rc = cmd(p, PS_DEL_INST_TOKEN, args(&a, "ttt", in->device_type, in->token, in->id), NULL);
  if (!rc)
    rc = cmd(p, PS_PUT_INST,
             args(&a, "ttttii", in->id, in->device_type, in->token, in->body ? in->body : "{}", in->created_at,
                  in->updated_at),
             NULL);
  return rc;
}

static int inst_device_add(void *p, const job_installation_t *in, const char *client) {
  pgargs_t a;
  return cmd(p, PS_INS_INST_DEVICE, args(&a, "tttti", client, in->token, in->device_type, in->id, in->updated_at),
             NULL);
}

static int badge(void *p, const char *token, int64_t n) {
  pgargs_t a;
  return cmd(p, PS_SET_BADGE, args(&a, "ti", token, n), NULL);
}

/* After the messages: members have read and received up to the newest imported key, and
 * the conversation knows it has ids of its own. The writer runs it once per conversation
 * per transaction, not once per job (pg_writer.c: fwd_flush): PostgreSQL writes a new
 * version of every member row at each update, and imports that follow each other in one
 * batch made each update walk all the versions before it. */
int pg_import_finish(pgc_t *p, int64_t conv, int64_t ts, int64_t seq) {
  pgargs_t a;
  if (cmd(p, PS_IMP_READ_FWD, args(&a, "iii", conv, ts, seq), NULL) ||
      cmd(p, PS_IMP_ACK_FWD, args(&a, "iii", conv, ts, seq), NULL))
    return TERN_ESTORE;
  return cmd(p, PS_IMP_CONV_EXT, args(&a, "iii", conv, ts, now_ms()), NULL);
}

/* finish: pg_import_finish, once per conversation at the end of the transaction */
static const import_backend_t PG_IMPORT = IMPORT_BACKEND(NULL);

int pg_import_run(pgc_t *p, job_import_t *j) { return import_apply(&PG_IMPORT, p, j); }
