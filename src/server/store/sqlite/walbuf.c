/* walbuf.c — an SQLite VFS that writes a commit's WAL frames with few system calls.
 *
 * SQLite appends each WAL frame as two pwrite()s (a 24-byte header, then the page), so a
 * commit of n pages is 2n system calls; under steady load most messages dirty a page of
 * their own conversation, and the writer spent more time entering the kernel than copying.
 * This shim, used by the writer's connection only, collects contiguous writes to the -wal
 * file in memory and hands them to the kernel in few pwrite()s when anything could look:
 *
 *   - a shared-memory barrier or lock (xShmBarrier, xShmLock): SQLite publishes new frames
 *     to readers through the wal-index only after a barrier, so buffered frames are in the
 *     file before any reader can know of them; and a commit's frames are in the page cache
 *     before COMMIT returns (and so before any ack), as durable against kill -9 as before;
 *   - any other operation on the file (read, sync, truncate, size, lock, close), and a
 *     write that does not extend the buffered run (SQLite rewrites a frame in place when a
 *     page changes twice in one transaction), which goes through after the flush.
 *
 * Everything else is the default VFS's. Errors from the deferred write surface at the
 * flush point, which SQLite treats as an I/O error on that call: the transaction fails. */
#include "walbuf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "timeutil.h"

#define WALBUF_MAX (4u << 20) /* flush early past 4 MiB: a batch of big messages */

typedef struct wb_file wb_file_t;
struct wb_file {
  sqlite3_file base;  /* methods = walbuf_io */
  sqlite3_file *real; /* the default VFS's file, allocated right after this struct */
  int is_wal;
  const char *name; /* main database files: the name SQLite opened them with */
  wb_file_t *wal;   /* main database files: their open -wal file, or NULL */
  wb_file_t *main;  /* -wal files: their database file */
  uint8_t *data;
  size_t len, cap;
  sqlite3_int64 start; /* file offset of data[0] */
  wb_file_t *next;     /* main database files: all open ones (mains, under mains_mu) */
};

static sqlite3_vfs walbuf_vfs;
static sqlite3_vfs *base_vfs;

/* The unix VFS writes at most 128 KiB − 1 per call (it masks the length to 17 bits and
 * reports a short write as SQLITE_FULL), so the run goes out in 64 KiB pieces: 16 frames
 * of 4 KiB pages per system call instead of 32. */
#define WRITE_MAX (64 * 1024)

static int flush(wb_file_t *f) {
  int rc = SQLITE_OK;
  for (size_t off = 0; off < f->len && rc == SQLITE_OK; off += WRITE_MAX) {
    size_t n = f->len - off < WRITE_MAX ? f->len - off : WRITE_MAX;
    rc = f->real->pMethods->xWrite(f->real, f->data + off, (int)n, f->start + (sqlite3_int64)off);
  }
  f->len = 0;
  return rc;
}

/* ---- methods: flush, then pass through */

static pthread_mutex_t mains_mu = PTHREAD_MUTEX_INITIALIZER;
static wb_file_t *mains; /* open main database files, to pair each -wal file with its own */

static int wb_close(sqlite3_file *p) {
  wb_file_t *f = (wb_file_t *)p;
  int rc = flush(f);
  pthread_mutex_lock(&mains_mu);
  if (f->main) f->main->wal = NULL;
  for (wb_file_t **pp = &mains; *pp; pp = &(*pp)->next)
    if (*pp == f) {
      *pp = f->next;
      break;
    }
  pthread_mutex_unlock(&mains_mu);
  int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
  free(f->data);
  return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *p, void *buf, int n, sqlite3_int64 off) {
  wb_file_t *f = (wb_file_t *)p;
  int rc = flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, buf, n, off);
}

static int wb_write(sqlite3_file *p, const void *buf, int n, sqlite3_int64 off) {
  wb_file_t *f = (wb_file_t *)p;
  if (!f->is_wal) return f->real->pMethods->xWrite(f->real, buf, n, off);
  if (f->len && off != f->start + (sqlite3_int64)f->len) { /* not an append to the run */
    int rc = flush(f);
    if (rc != SQLITE_OK) return rc;
  }
  if (f->len + (size_t)n > WALBUF_MAX) {
    int rc = flush(f);
    if (rc != SQLITE_OK) return rc;
    if ((size_t)n > WRITE_MAX) return f->real->pMethods->xWrite(f->real, buf, n, off);
  }
  if (!f->len) f->start = off;
  if (f->len + (size_t)n > f->cap) {
    size_t cap = f->cap ? f->cap : 64 * 1024;
    while (cap < f->len + (size_t)n) cap *= 2;
    f->data = xrealloc(f->data, cap);
    f->cap = cap;
  }
  memcpy(f->data + f->len, buf, (size_t)n);
  f->len += (size_t)n;
  return SQLITE_OK;
}

#define PASS(name, args, call)                                                                                         \
  static int wb_##name args {                                                                                          \
    wb_file_t *f = (wb_file_t *)p;                                                                                     \
    int rc = flush(f);                                                                                                 \
    return rc != SQLITE_OK ? rc : f->real->pMethods->call;                                                             \
  }

PASS(truncate, (sqlite3_file * p, sqlite3_int64 size), xTruncate(f->real, size))
static int wb_sync(sqlite3_file *p, int flags) { /* PASS, timed (tern_store_fsync_seconds) */
  wb_file_t *f = (wb_file_t *)p;
  int rc = flush(f);
  if (rc != SQLITE_OK) return rc;
  uint64_t t0 = mono_ns();
  rc = f->real->pMethods->xSync(f->real, flags);
  metric_observe_us(M_FSYNC, (mono_ns() - t0) / 1000);
  return rc;
}
PASS(size, (sqlite3_file * p, sqlite3_int64 *size), xFileSize(f->real, size))
PASS(lock, (sqlite3_file * p, int level), xLock(f->real, level))
PASS(unlock, (sqlite3_file * p, int level), xUnlock(f->real, level))
PASS(check_reserved, (sqlite3_file * p, int *out), xCheckReservedLock(f->real, out))
PASS(control, (sqlite3_file * p, int op, void *arg), xFileControl(f->real, op, arg))
PASS(shm_map, (sqlite3_file * p, int pg, int pgsz, int extend, void volatile **out),
     xShmMap(f->real, pg, pgsz, extend, out))
PASS(shm_lock, (sqlite3_file * p, int off, int n, int flags), xShmLock(f->real, off, n, flags))
PASS(shm_unmap, (sqlite3_file * p, int del), xShmUnmap(f->real, del))
PASS(fetch, (sqlite3_file * p, sqlite3_int64 off, int n, void **out), xFetch(f->real, off, n, out))
PASS(unfetch, (sqlite3_file * p, sqlite3_int64 off, void *page), xUnfetch(f->real, off, page))

static int wb_sector_size(sqlite3_file *p) {
  wb_file_t *f = (wb_file_t *)p;
  return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_chars(sqlite3_file *p) {
  wb_file_t *f = (wb_file_t *)p;
  return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* The barrier SQLite places before publishing frames: the point the WAL must be written.
 * Shared memory belongs to the database file's handle; the frames wait in its -wal file's
 * buffer. Both are used by one connection, on one thread. */
static void wb_shm_barrier(sqlite3_file *p) {
  wb_file_t *f = (wb_file_t *)p;
  if (f->wal) flush(f->wal);
  f->real->pMethods->xShmBarrier(f->real);
}

static int wb_shm_lock_all(sqlite3_file *p, int off, int n, int flags) {
  wb_file_t *f = (wb_file_t *)p;
  if (f->wal) {
    int rc = flush(f->wal);
    if (rc != SQLITE_OK) return rc;
  }
  return wb_shm_lock(p, off, n, flags);
}

static const sqlite3_io_methods walbuf_io = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_chars,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock_all,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *p, int flags, int *out_flags) {
  wb_file_t *f = (wb_file_t *)p;
  memset(f, 0, sizeof *f);
  f->real = (sqlite3_file *)(f + 1);
  int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (f->real->pMethods) f->real->pMethods->xClose(f->real);
    return rc;
  }
  p->pMethods = &walbuf_io;
  pthread_mutex_lock(&mains_mu);
  if (flags & SQLITE_OPEN_MAIN_DB) {
    f->name = name;
    f->next = mains;
    mains = f;
  } else if (flags & SQLITE_OPEN_WAL) {
    const char *db = sqlite3_filename_database(name);
    for (wb_file_t *m = mains; m; m = m->next)
      if (!m->wal && strcmp(sqlite3_filename_database(m->name), db) == 0) {
        f->is_wal = 1; /* buffered only when its database file can flush it */
        f->main = m;
        m->wal = f;
        break;
      }
  }
  pthread_mutex_unlock(&mains_mu);
  return SQLITE_OK;
}

/* ---- the VFS: the default one's, but for xOpen and the file size */

static int wb_delete(sqlite3_vfs *v, const char *name, int sync) { return base_vfs->xDelete(base_vfs, name, sync); }
static int wb_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
  return base_vfs->xAccess(base_vfs, name, flags, out);
}
static int wb_full_path(sqlite3_vfs *v, const char *name, int n, char *out) {
  return base_vfs->xFullPathname(base_vfs, name, n, out);
}
static void *wb_dl_open(sqlite3_vfs *v, const char *name) { return base_vfs->xDlOpen(base_vfs, name); }
static void wb_dl_error(sqlite3_vfs *v, int n, char *msg) { base_vfs->xDlError(base_vfs, n, msg); }
static void (*wb_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void) { return base_vfs->xDlSym(base_vfs, h, sym); }
static void wb_dl_close(sqlite3_vfs *v, void *h) { base_vfs->xDlClose(base_vfs, h); }
static int wb_randomness(sqlite3_vfs *v, int n, char *out) { return base_vfs->xRandomness(base_vfs, n, out); }
static int wb_sleep(sqlite3_vfs *v, int us) { return base_vfs->xSleep(base_vfs, us); }
static int wb_current_time(sqlite3_vfs *v, double *out) { return base_vfs->xCurrentTime(base_vfs, out); }
static int wb_last_error(sqlite3_vfs *v, int n, char *out) { return base_vfs->xGetLastError(base_vfs, n, out); }
static int wb_current_time64(sqlite3_vfs *v, sqlite3_int64 *out) { return base_vfs->xCurrentTimeInt64(base_vfs, out); }

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered = SQLITE_ERROR;

static void do_register(void) {
  base_vfs = sqlite3_vfs_find(NULL);
  if (!base_vfs || base_vfs->iVersion < 2) return;
  walbuf_vfs = (sqlite3_vfs){
      .iVersion = 2,
      .szOsFile = (int)sizeof(wb_file_t) + base_vfs->szOsFile,
      .mxPathname = base_vfs->mxPathname,
      .zName = WALBUF_VFS,
      .xOpen = wb_open,
      .xDelete = wb_delete,
      .xAccess = wb_access,
      .xFullPathname = wb_full_path,
      .xDlOpen = wb_dl_open,
      .xDlError = wb_dl_error,
      .xDlSym = wb_dl_sym,
      .xDlClose = wb_dl_close,
      .xRandomness = wb_randomness,
      .xSleep = wb_sleep,
      .xCurrentTime = wb_current_time,
      .xGetLastError = wb_last_error,
      .xCurrentTimeInt64 = wb_current_time64,
  };
  registered = sqlite3_vfs_register(&walbuf_vfs, 0);
}

int walbuf_register(void) {
  pthread_once(&once, do_register);
  return registered == SQLITE_OK ? 0 : -1;
}
