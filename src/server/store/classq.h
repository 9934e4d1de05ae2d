/* classq.h — what every reader of LeanCloud's storage classes shares (api's class reads,
 * each backend's `_Installation` queries, store.h: store_class_q_t): the sort keys and
 * their ORDER BY, `_Installation`'s columns, and the SQL of the comparisons. */
#ifndef TERN_CLASSQ_H
#define TERN_CLASSQ_H

#include "buf.h"
#include "store.h"

/* Appends the ORDER BY list of order — objectId, createdAt, updatedAt, comma-separated,
 * '-' for descending; NULL or "": createdAt — then cols[0] ascending; cols names the
 * class's columns of the three keys in that order. An unknown key is left out and makes
 * it return -1 (else 0). */
int class_order_sql(const char *order, const char *const cols[3], buf_t *out);

/* `_Installation`'s column of a queried field (objectId, createdAt, updatedAt,
 * deviceType); NULL: the field is a path into the stored object. */
const char *inst_column(const char *field);

/* The page of q with the where the backend compiled: "SELECT id, device_type, token, body,
 * created_at, updated_at FROM installation WHERE … ORDER BY … LIMIT … OFFSET …" into sql
 * (the caller checked the sort keys). */
void inst_select_sql(const store_class_q_t *q, const char *where, buf_t *sql);

/* Writes q's conditions into sql, each after " AND " (none: truth[1]): a column's (see
 * inst_column) by column(arg, col, c), but $exists, which is truth[0] or truth[1] (columns
 * always exist); a path's into the stored object by path(arg, c). */
void inst_where_sql(const store_class_q_t *q, buf_t *sql, const char *const truth[2],
                    void (*column)(void *arg, const char *col, const store_cond_t *c),
                    void (*path)(void *arg, const store_cond_t *c), void *arg);

/* " = ", " <> ", " < ", " <= ", " > ", " >= " for STORE_EQ … STORE_GTE. */
extern const char *const CLASS_CMP_SQL[STORE_GTE + 1];

#endif
