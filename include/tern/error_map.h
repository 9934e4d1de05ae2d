/* tern/error_map.h — the table behind <tern/error.h>, alone, so that code which also sees
 * the project's internal table (src/sdk/error.c) can use it without the public enum. */
#ifndef TERN_ERROR_MAP_H
#define TERN_ERROR_MAP_H

/* X(name, value, description). The core rows are the whole project's: the server's
 * internal codes (src/common/err.h takes them from here), and what libtern returns for the
 * same conditions; the SDK rows add what only a client meets. */
#define TERN_CORE_ERRNO_MAP(X)                                                                                         \
  X(ENOMEM, -1, "out of memory")                                                                                       \
  X(EINVAL, -2, "invalid argument")                                                                                    \
  X(EPROTO, -3, "protocol error")                                                                                      \
  X(EIO, -4, "input/output error")                                                                                     \
  X(ENOENT, -5, "not found")                                                                                           \
  X(EEXIST, -6, "already exists")                                                                                      \
  X(E2BIG, -7, "too large")                                                                                            \
  X(EAGAIN, -8, "try again")                                                                                           \
  X(ECLOSED, -9, "closed")                                                                                             \
  X(ETIMEDOUT, -10, "timed out")                                                                                       \
  X(EPERM, -11, "not permitted")                                                                                       \
  X(ESTORE, -12, "storage failure")                                                                                    \
  X(ECONFIG, -13, "bad configuration")                                                                                 \
  X(ENOTSUP, -14, "not supported by this server's configuration")

#define TERN_SDK_ERRNO_MAP(X)                                                                                          \
  TERN_CORE_ERRNO_MAP(X)                                                                                               \
  X(ENOTOPEN, -30, "client is not open")                                                                               \
  X(ECONNECT, -31, "could not connect to the server")                                                                  \
  X(EHANDSHAKE, -32, "WebSocket handshake refused")                                                                    \
  X(ECANCELED, -33, "canceled")                                                                                        \
  X(ESIGNATURE, -34, "signature callback refused the operation")                                                       \
  X(ECACHEMISS, -35, "not in the local cache")                                                                         \
  X(EUPLOAD, -36, "file upload failed")                                                                                \
  X(EOFFLINE, -37, "client was taken offline by the server")                                                           \
  X(ETLS, -38, "TLS handshake failed (certificate not trusted or not for this host, or not a TLS server)")

#endif
