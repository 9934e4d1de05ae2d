/* tern/error.h — error codes of libtern.
 *
 * Every libtern function that can fail returns 0 or a negative code, and every completion
 * callback gets one as `status`. There are two kinds, and both come from one table each:
 *
 *  - TERN_E* (-1 … -99): local errors. The first rows are the project-wide table that
 *    src/common/err.h also has, with the same values (libtern checks that at compile time);
 *    the rest are the SDK's own.
 *  - Server errors: the protocol's 4xxx code, negated (-4303 for CONVERSATION_NOT_FOUND,
 *    -4111 for SESSION_CONFLICT). TERN_ERR_IS_SERVER() tells them apart, TERN_ERR_CODE()
 *    gives the positive code the seed guide compares with ([error code] == 4111).
 *
 * tern_err_name() gives the symbol ("TERN_ETIMEDOUT", "CONVERSATION_NOT_FOUND") and
 * tern_strerror() a short description. Both return static strings; they are thread-safe. */
#ifndef TERN_ERROR_H
#define TERN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#include "error_map.h"

enum {
#define TERN_X_(name, val, desc) TERN_##name = (val),
  TERN_SDK_ERRNO_MAP(TERN_X_)
#undef TERN_X_
};

/* Server (protocol) errors are -code, code in 4000 … 4999. */
#define TERN_ERR_IS_SERVER(e) ((e) <= -4000 && (e) > -5000)
#define TERN_ERR_CODE(e) (-(e))

/* "success" for 0, a description for every TERN_E* and every known 4xxx, else "unknown error". */
const char *tern_strerror(int err);
/* "OK", "TERN_ENOMEM", …, "CONVERSATION_NOT_FOUND", …, else "TERN_EUNKNOWN". */
const char *tern_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
