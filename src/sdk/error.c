/* error.c — tern_strerror / tern_err_name for libtern.
 *
 * Local codes come from TERN_SDK_ERRNO_MAP (include/tern/error_map.h); server codes are the
 * negated protocol codes of LC_ERROR_MAP (src/common/err.h). Only err.h's macros are used
 * here — none of its functions — and the rows the two tables share are checked to agree at
 * compile time, so they cannot drift apart. */
#include "err.h"
#include "tern/error_map.h"

enum {
#define X(name, val, desc) SDK_##name = (val),
  TERN_SDK_ERRNO_MAP(X)
#undef X
};

/* every row of the project table is in the public one with the same value */
#define X(name, val, desc) _Static_assert((int)SDK_##name == (int)TERN_##name, "error tables disagree on " #name);
TERN_ERRNO_MAP(X)
#undef X

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
