/* error.c — tern_strerror / tern_err_name for libtern.
 *
 * Local codes come from TERN_SDK_ERRNO_MAP (include/tern/error_map.h, whose core rows are
 * also the server's TERN_E* codes); server codes are the negated protocol codes of
 * LC_ERROR_MAP (src/common/err.h). Only err.h's macros are used here, none of its functions. */
#include "err.h"
#include "tern/error_map.h"

enum {
#define X(name, val, desc) SDK_##name = (val),
  TERN_SDK_ERRNO_MAP(X)
#undef X
};

const char *tern_strerror(int err) {
  switch (err) {
  case 0: return "success";
#define X(name, val, desc)                                                                                             \
  case val: return desc;
    TERN_SDK_ERRNO_MAP(X)
#undef X
#define X(code, name, desc)                                                                                            \
  case -(code): return desc;
    LC_ERROR_MAP(X)
#undef X
  }
  return "unknown error";
}

const char *tern_err_name(int err) {
  switch (err) {
  case 0: return "OK";
#define X(name, val, desc)                                                                                             \
  case val: return "TERN_" #name;
    TERN_SDK_ERRNO_MAP(X)
#undef X
#define X(code, name, desc)                                                                                            \
  case -(code): return #name;
    LC_ERROR_MAP(X)
#undef X
  }
  return "TERN_EUNKNOWN";
}
