/* admin_import_run.h — the state of one import or export run, shared by admin_import.c
 * (phases, jobs, batches, progress) and admin_import_pages.c (history pages, rehosted
 * files, export files). Not a public interface: both files are one subsystem split for
 * size. */
#ifndef TERN_CLI_ADMIN_IMPORT_RUN_H
#define TERN_CLI_ADMIN_IMPORT_RUN_H

#include <stdio.h>

#include "admin.h"
#include "admin_import.h"

enum { MODE_IMPORT, MODE_DRY, MODE_EXPORT };
#define MAX_QUEUED 4 /* sealed bodies (in flight or waiting) before the jobs wait */
#define MAX_POSTS 2  /* bodies in flight at once */
#define HIST_LIMIT 1000
#define MARGIN_MS (10 * 60 * 1000)

typedef struct job job_t;
typedef struct imp imp_t;

/* What a body holds of one conversation. */
typedef struct {
  char *cid;
  int conv;         /* conversation-level records (the conversation, roles, sets) */
  int64_t min, max; /* its messages' timestamps (none: min > max) */
} touch_t;

typedef struct batch {
  imp_t *im;
  buf_t body;
  int lines;
  json_t *commit; /* state changes it stands for */
  touch_t *touch; /* the conversations its records touch */
  size_t ntouch, cap, last;
  json_t *cids; /* cid → index in touch */
  int inflight, done, ok;
  int64_t opened_ms;
  struct batch *next;
} batch_t;

enum { IMP_MSG, IMP_CONV }; /* the two bodies that fill at once (admin_import.c) */

struct imp {
  admin_t *ad;
  int mode;
  imp_net_t *net;
  imp_src_t *src;
  imp_state_t *st;
  /* options */
  int concurrency, rehost, full, recheck_days;
  size_t batch_bytes;
  int batch_lines;
  char *target_base, *target_headers;
  /* batches */
  batch_t *open[2], *head, *tail; /* head…tail: sealed, in order; the first ones in flight or answered */
  int queued, posting;
  int uncommitted; /* a body failed: later ones are not committed */
  job_t *stalled;
  int active_jobs;
  /* counters */
  long convs, convs_total, msgs, inst, inst_total, files, files_total, applied, unchanged, batches;
  json_t *skips;
  int stop;
  char fatal[600];
  int64_t started_ms, prev_started_ms;
  json_t *walked; /* cids walked per conversation this run */
  /* export */
  char *out_dir;
  FILE *f_conv, *f_extras, *f_inst, *f_file;
  /* progress */
  json_t *fetched; /* export: files already saved */
  int tty;
  int64_t last_progress_ms;
  int drawn;
};

struct job {
  job_t *next_stalled; /* while waiting for the target (imp_t.stalled) */
  imp_t *im;
  json_t *conv;
  char *cid;
  char hash[17];
  int need_fields, need_hist, delta_hist;
  int64_t ts;
  char *mid;
  int64_t edits_after; /* delta over a directory: re-send items at or before the cursor edited since */
};

typedef struct {
  const char *cid;
  const imp_item_t *it;
} page_entry_t;

typedef struct page page_t;
struct page {
  imp_t *im;
  imp_items_t *src; /* what the entries point into */
  page_entry_t *e;  /* the items to import, each with its conversation */
  size_t n, cap;
  char *cid;      /* the one conversation of a job's page, or NULL */
  json_t *commit; /* state changes that go with these messages (NULL: none) */
  int pending;
  void (*done)(page_t *p, void *arg);
  void *arg;
};

/* admin_import.c */
/* A record that could not be copied: logged, counted, kept in the state's skip list. */
void imp_skip(imp_t *im, const char *kind, const char *id, const char *reason);
/* Stops the run with a reason (the first one wins). */
void imp_fail(imp_t *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One record into the open body (--dry-run: printed). Takes rec. */
void imp_emit(imp_t *im, json_t *rec);
/* The same for a message of conversation cid at time ts, already written as one line of
 * compact JSON (no newline). */
void imp_emit_message(imp_t *im, const char *cid, int64_t ts, const char *line, size_t n);
/* Seals the open body when `lines` more records would not fit in it (a page of history
 * then goes into one body, so bodies in flight at once less often share a conversation). */
void imp_room_for(imp_t *im, int lines);
/* State changes that take effect when the body of that stream (IMP_MSG, IMP_CONV) now
 * open is acknowledged, with every body before it. Takes delta. */
void imp_commit_later(imp_t *im, int stream, json_t *delta);

/* admin_import_pages.c */
/* A page of history to import, its entries taken from src (taken; may be NULL when there
 * are none), each of conversation cid (copied; NULL: each entry names its own). */
page_t *imp_page_new(imp_t *im, imp_items_t *src, const char *cid);
/* One item of p->src to import, of conversation cid (NULL: the page's). */
void imp_page_add(page_t *p, const char *cid, const imp_item_t *it);
/* Emits the page's records once the files they refer to are rehosted (--rehost-files),
 * then commit (may be NULL) with them, then done(p, arg), and frees p. Takes commit.
 * done may run before this returns. */
void imp_page_start(page_t *p, json_t *commit, void (*done)(page_t *, void *), void *arg);
/* Downloads a file and stores it in the target (export: in DIR/files); p (may be NULL)
 * waits for it. */
void imp_rehost_start(imp_t *im, page_t *p, const char *id, const char *url, const char *name, const char *mime,
                      const char *created, json_t *meta);
/* The tern URL of a rehosted file, or NULL. */
const char *imp_rehosted(imp_t *im, const char *objid, const char *url);
void imp_out_line(imp_t *im, FILE *f, json_t *obj);
void imp_out_messages(imp_t *im, const char *cid, const imp_items_t *items);

#endif
