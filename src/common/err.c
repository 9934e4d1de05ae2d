/* err.c — names and descriptions for both error tables in err.h. */
#include "err.h"

const char *tern_strerror(int err) {
  switch (err) {
  case 0: return "success";
#define X(name, val, desc)                                                                                             \
  case TERN_##name: return desc;
    TERN_ERRNO_MAP(X)
#undef X
  }
  return "unknown error";
}

const char *tern_err_name(int err) {
  switch (err) {
  case 0: return "OK";
#define X(name, val, desc)                                                                                             \
  case TERN_##name: return "TERN_" #name;
    TERN_ERRNO_MAP(X)
#undef X
  }
  return "TERN_EUNKNOWN";
}

const char *lc_error_name(int code) {
  switch (code) {
#define X(c, name, desc)                                                                                               \
  case c: return #name;
    LC_ERROR_MAP(X)
#undef X
  }
  return "UNKNOWN_ERROR";
}

const char *lc_error_desc(int code) {
  switch (code) {
#define X(c, name, desc)                                                                                               \
  case c: return desc;
    LC_ERROR_MAP(X)
#undef X
  }
  return "unknown error";
}
