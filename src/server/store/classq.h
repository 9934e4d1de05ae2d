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

/* `_Installation`'s columns of the three sort keys (id, created_at, updated_at). */
extern const char *const INST_ORDER_COLS[3];

/* `_Installation`'s column of a queried field (objectId, createdAt, updatedAt,
 * deviceType); NULL: the field is a path into the stored object. */
const char *inst_column(const char *field);

/* " = ", " <> ", " < ", " <= ", " > ", " >= " for STORE_EQ … STORE_GTE. */
extern const char *const CLASS_CMP_SQL[STORE_GTE + 1];

#endif
