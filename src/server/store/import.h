/* import.h — the bulk import's one driver (JOB_IMPORT, store.h): every rule of the import
 * lives in import.c; a backend gives only its SQL-level primitives, as it gives qpool.h its reader
 * for the query threads. For backends only.
 *
 * Every primitive runs on the backend's writer, inside the batch's transaction, and
 * returns 0 or the backend's error (nonzero; the driver stops and returns it). Strings a
 * primitive hands back are malloc'd and the driver's; lists come sorted by client. */
#ifndef TERN_IMPORT_H
#define TERN_IMPORT_H

#include "store.h"

typedef struct {
  char **v;
  size_t n, cap;
} imp_list_t;

void imp_list_add(imp_list_t *l, const char *s); /* NULL is taken as "" */
void imp_list_free(imp_list_t *l);

/* A conversation's stored columns (found 0: none with that cid). */
typedef struct {
  int found, kind;
  int64_t id, created_at, updated_at, lm, expire_at; /* lm, expire_at: 0 when NULL */
  char *creator, *unique_id, *doc;
} imp_conv_t;

/* An imported message id's key (found 0: not imported before); present 0 when the
 * message was deleted since (the mapping stays: a delete stands). */
typedef struct {
  int found, present;
  int64_t ts, seq, patch_ts;
} imp_ext_t;

/* An installation's stored columns (found 0: none with that id). */
typedef struct {
  int found;
  char *device_type, *token, *body;
  int64_t created_at, updated_at;
} imp_inst_t;

typedef struct {
  int (*conv_get)(void *b, const char *cid, imp_conv_t *out);
  int (*unique_owner)(void *b, const char *unique_id, char **cid); /* *cid NULL: nobody's */
  /* r's columns, with unique_id, lm and expire_at 0 as NULL; *id the new row's */
  int (*conv_insert)(void *b, const conv_row_t *r, const char *unique_id, int64_t lm, int64_t member_count,
                     const char *doc, int64_t now, int64_t *id);
  /* the same columns over row id, except that lm only grows (0: kept) */
  int (*conv_update)(void *b, int64_t id, const conv_row_t *r, const char *unique_id, int64_t lm, const char *doc,
                     int64_t now);
  int (*members)(void *b, int64_t conv, imp_list_t *out);
  /* a member row, read and received up to (ts, seq); nothing when it is there */
  int (*member_add)(void *b, int64_t conv, const char *client, int64_t joined_at, int64_t ts, int64_t seq);
  int (*member_del)(void *b, int64_t conv, const char *client);
  int (*member_count)(void *b, int64_t conv);                        /* the conversation's member_count recounted */
  int (*last_key)(void *b, int64_t conv, int64_t *ts, int64_t *seq); /* 0, 0: no message */
  int (*roles)(void *b, int64_t conv, imp_list_t *clients, imp_list_t *roles);
  int (*role_put)(void *b, int64_t conv, const char *client, const char *role, const char *info_id, int64_t now);
  int (*role_del)(void *b, int64_t conv, const char *client);
  /* set SET_SHUTUP (only the permanent ones) or SET_BLOCK; an add over a temporary
   * shut-up makes it permanent */
  int (*set_of)(void *b, int64_t conv, int set, imp_list_t *out);
  int (*set_add)(void *b, int64_t conv, int set, const char *client, int64_t now);
  int (*set_del)(void *b, int64_t conv, int set, const char *client);
  int (*doc_get)(void *b, int64_t conv, int *found, char **doc);
  int (*doc_put)(void *b, int64_t conv, const char *doc, int64_t now);
  int (*ext_get)(void *b, int64_t conv, const char *mid, imp_ext_t *out);
  int (*ext_add)(void *b, int64_t conv, const char *mid, int64_t ts, int64_t seq);
  int (*max_seq_at)(void *b, int64_t conv, int64_t ts, int64_t *seq); /* 0 when none */
  /* op's message at (ts, seq); *taken 1 (and nothing written) when the key is someone's */
  int (*msg_insert)(void *b, int64_t conv, int64_t ts, int64_t seq, const import_op_t *op, int *taken);
  int (*msg_update)(void *b, int64_t conv, int64_t ts, int64_t seq, const import_op_t *op); /* content, patch_ts */
  int (*inst_get)(void *b, const char *id, imp_inst_t *out);
  int (*inst_clients)(void *b, const char *id, imp_list_t *out);
  int (*inst_devices_del)(void *b, const char *id);
  /* the row in; an older installation of the same device type and token goes */
  int (*inst_put)(void *b, const job_installation_t *in);
  int (*inst_device_add)(void *b, const job_installation_t *in, const char *client);
  int (*badge)(void *b, const char *token, int64_t badge);
  /* Members read and received up to (ts, seq), the conversation flagged ext_ids and its lm
   * moved to ts: import_apply calls it for each touched conversation after the ops; NULL
   * when the backend does it itself later (PostgreSQL: once per transaction). */
  int (*finish)(void *b, int64_t conv, int64_t ts, int64_t seq);
} import_backend_t;

/* The table of a backend whose primitives are static functions named as the fields, with
 * finish given (NULL or a function): `static const import_backend_t T = IMPORT_BACKEND(f);` */
#define IMPORT_BACKEND(finish_fn)                                                                                      \
  {                                                                                                                    \
    .conv_get = conv_get, .unique_owner = unique_owner, .conv_insert = conv_insert, .conv_update = conv_update,        \
    .members = members, .member_add = member_add, .member_del = member_del, .member_count = member_count,              \
    .last_key = last_key, .roles = roles, .role_put = role_put, .role_del = role_del, .set_of = set_of,                \
    .set_add = set_add, .set_del = set_del, .doc_get = doc_get, .doc_put = doc_put, .ext_get = ext_get,                \
    .ext_add = ext_add, .max_seq_at = max_seq_at, .msg_insert = msg_insert, .msg_update = msg_update,                  \
    .inst_get = inst_get, .inst_clients = inst_clients, .inst_devices_del = inst_devices_del, .inst_put = inst_put,    \
    .inst_device_add = inst_device_add, .badge = badge, .finish = (finish_fn),                                         \
  }

/* Applies j's ops in order with backend ops on b: outcomes set, j->touched filled. 0, the
 * first primitive's error, or TERN_ESTORE when a message found no free key. */
int import_apply(const import_backend_t *ops, void *b, job_import_t *j);

#endif
