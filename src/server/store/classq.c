/* classq.c — the storage classes' sort keys, `_Installation`'s field map, and the
 * comparison operators, defined once for api and every backend (classq.h). */
#include <string.h>

#include "classq.h"

int class_order_sql(const char *order, const char *const cols[3], buf_t *out) {
  static const char *const keys[3] = {"objectId", "createdAt", "updatedAt"};
  const char *s = order && *order ? order : "createdAt";
  int rc = 0;
  while (*s) {
    size_t n = strcspn(s, ",");
    int desc = *s == '-';
    size_t k = 0;
    while (k < 3 && !(strlen(keys[k]) == n - (size_t)desc && strncmp(keys[k], s + desc, n - (size_t)desc) == 0)) k++;
    if (k < 3) buf_printf(out, "%s %s, ", cols[k], desc ? "DESC" : "ASC");
    else rc = -1;
    s += n + (s[n] == ',');
  }
  buf_printf(out, "%s ASC", cols[0]);
  return rc;
}

const char *inst_column(const char *f) {
  if (strcmp(f, "objectId") == 0) return "id";
  if (strcmp(f, "createdAt") == 0) return "created_at";
  if (strcmp(f, "updatedAt") == 0) return "updated_at";
  if (strcmp(f, "deviceType") == 0) return "device_type";
  return NULL;
}

void inst_select_sql(const store_class_q_t *q, const char *where, buf_t *sql) {
  buf_printf(sql, "SELECT id, device_type, token, body, created_at, updated_at FROM installation WHERE %s ORDER BY ",
             where);
  static const char *const cols[3] = {"id", "created_at", "updated_at"};
  class_order_sql(q->order, cols, sql);
  buf_printf(sql, " LIMIT %d OFFSET %d", q->limit, q->skip);
}

void inst_where_sql(const store_class_q_t *q, buf_t *sql, const char *const truth[2],
                    void (*column)(void *arg, const char *col, const store_cond_t *c),
                    void (*path)(void *arg, const store_cond_t *c), void *arg) {
  buf_append_str(sql, truth[1]);
  for (size_t i = 0; i < q->n; i++) {
    const store_cond_t *c = &q->conds[i];
    const char *col = inst_column(c->field);
    buf_append_str(sql, " AND ");
    if (col && c->op == STORE_EXISTS) buf_append_str(sql, truth[json_is_true(c->val)]);
    else if (col) column(arg, col, c);
    else path(arg, c);
  }
  buf_cstr(sql);
}

const char *const CLASS_CMP_SQL[STORE_GTE + 1] = {[STORE_EQ] = " = ",   [STORE_NE] = " <> ", [STORE_LT] = " < ",
                                                  [STORE_LTE] = " <= ", [STORE_GT] = " > ",  [STORE_GTE] = " >= "};
