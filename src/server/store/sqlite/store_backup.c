/* store_backup.c — online backups and the database's sizes for /metrics (store.h). */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "store_sqlite_int.h"
#include "timeutil.h"

int store_backup(store_t *s, const char *dest, int64_t *bytes) {
  struct stat st;
  if (stat(dest, &st) == 0) return TERN_EEXIST;
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.part", dest) >= (int)sizeof tmp) return TERN_ESTORE;
  unlink(tmp);
  sqlite3 *src = NULL, *dst = NULL;
  int rc = sqlite3_open_v2(store_db_path(s), &src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  const char *what = "open";
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(src, 5000);
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
      rc = sqlite3_errcode(dst);
      what = "backup_init";
    } else {
      /* -1: every page in one step, so in one read transaction of the source: with WAL
       * the writer goes on meanwhile and the copy is one commit's state (a step-by-step
       * copy would start over at each commit of another connection) */
      uint64_t t0 = mono_ns();
      for (int tries = 0; tries < 50; tries++) {
        rc = sqlite3_backup_step(b, -1);
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
        sqlite3_sleep(100);
      }
      what = "backup_step";
      int frc = sqlite3_backup_finish(b);
      if (rc == SQLITE_DONE) rc = frc;
      if (rc == SQLITE_OK) log_at(LOG_DEBUG, "backup of %s: %.1f ms", store_db_path(s), (double)(mono_ns() - t0) / 1e6);
    }
  }
  if (dst && sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK) rc = SQLITE_IOERR;
  if (src) sqlite3_close(src);
  if (rc != SQLITE_OK) {
    log_at(LOG_ERROR, "backup of %s to %s: %s failed: %s", store_db_path(s), dest, what, sqlite3_errstr(rc));
    unlink(tmp);
    return TERN_ESTORE;
  }
  /* the copy's pages are on disk (the destination commits with synchronous=FULL, its
   * default in rollback mode); the name it gets last */
  if (rename(tmp, dest) < 0) {
    log_at(LOG_ERROR, "backup: rename %s: %s", tmp, strerror(errno));
    unlink(tmp);
    return TERN_ESTORE;
  }
  if (bytes && stat(dest, &st) == 0) *bytes = (int64_t)st.st_size;
  return 0;
}

void store_metrics(store_t *s, buf_t *out) {
  if (!s) return;
  char wal[4200];
  snprintf(wal, sizeof wal, "%s-wal", store_db_path(s));
  struct stat st;
  long long db = stat(store_db_path(s), &st) == 0 ? (long long)st.st_size : 0;
  long long wl = stat(wal, &st) == 0 ? (long long)st.st_size : 0;
  buf_printf(out,
             "# HELP tern_store_db_bytes Size of the database file.\n# TYPE tern_store_db_bytes gauge\n"
             "tern_store_db_bytes %lld\n"
             "# HELP tern_store_wal_bytes Size of the database's write-ahead log (checkpoints copy it into the "
             "database; it restarts when no reader holds it).\n# TYPE tern_store_wal_bytes gauge\n"
             "tern_store_wal_bytes %lld\n",
             db, wl);
}
