/* admin_import.h — `tern admin import leancloud` and `tern admin export leancloud`: the
 * pieces the importer is made of, shared between its files.
 *
 *   admin_import_net.c    libcurl multi: many requests in flight, a request rate for the
 *                         source, retries with Retry-After or capped exponential backoff
 *   admin_import_state.c  the state file (--state): a JSON snapshot written atomically plus
 *                         an fsync'd journal of what each acknowledged batch advanced
 *   admin_import_hist.c   pages of history items: scanned in place (a bulk run reads a
 *                         million), or viewed the same way when parsed as JSON
 *   admin_import_rec.c    LeanCloud objects and history items → the target's NDJSON records
 *                         (docs/migrate-import.md), file URL rewriting for --rehost-files
 *   admin_import_src.c    the two sources: LeanCloud's REST API (--from) and a directory of
 *                         exported files (--from-dir)
 *   admin_import.c        the run: phases, conversation jobs, batches, progress, summary
 *   admin_import_pages.c  history pages: rehosting the files they refer to, export files
 *
 * Everything runs on one thread; concurrency is libcurl's. Callbacks run from
 * imp_net_step, never from inside libcurl. */
#ifndef TERN_CLI_ADMIN_IMPORT_H
#define TERN_CLI_ADMIN_IMPORT_H

#include <jansson.h>
#include <stdint.h>

#include "buf.h"

/* ---------------------------------------------------------------- history items */

/* A string of an item: p NUL-terminated at p[n] (it may hold U+0000 before), or NULL when
 * the field is absent or not a string. */
typedef struct {
  const char *p;
  size_t n;
} imp_str_t;

/* One history item (IM REST API v1.2) with what the importer reads of it. */
typedef struct {
  imp_str_t mid, from, data, to, conv_id;
  int has_ts; /* timestamp is an integer */
  int64_t ts;
  int64_t patch_ts;                       /* patch-timestamp (else patchTimestamp) when an integer > 0, else 0 */
  int bin, recall, recalled, mention_all; /* each: the field is true (mention-all, else mentionAll) */
  /* mention-pids (else mentionPids) when a non-empty array: its JSON text (scanned; not
   * NUL-terminated) or the value (from JSON) */
  imp_str_t mention_pids;
  json_t *mention_pids_json;
  json_t *obj; /* the item as parsed JSON, or NULL when scanned */
} imp_item_t;

/* A page of items and what they point into. */
typedef struct {
  imp_item_t *v;
  size_t n;
  char *mem;    /* scanned: the page's bytes */
  json_t *json; /* from JSON: the array */
} imp_items_t;

/* Scans a page (a JSON array of history items) in place: data (malloc'd, len bytes) is
 * checked as JSON and the items' strings are decoded into it; the page then owns data.
 * Otherwise NULL with err, and data stays the caller's, changed — unless *not_array (it
 * does not start as an array): then it is untouched, and may be parsed to tell whether
 * it is JSON of another shape. */
imp_items_t *imp_items_scan(char *data, size_t len, int *not_array, char *err, size_t errlen);
/* The same view of a parsed array (a directory's, an export's); holds a reference. */
imp_items_t *imp_items_from_json(json_t *arr);
void imp_items_free(imp_items_t *page);

/* ---------------------------------------------------------------- net */

typedef struct imp_net imp_net_t;
typedef struct imp_req imp_req_t;
typedef void (*imp_req_cb)(imp_req_t *r, void *arg);

struct imp_req {
  /* the answer, valid in the callback: status 0 when no answer came (after retries) */
  long status;
  buf_t body;
  char *content_type; /* the answer's, or NULL */
  json_t *json;       /* IMP_JSON: the 2xx answer parsed (borrowed), else NULL */
  imp_items_t *items; /* IMP_HIST: the 2xx answer scanned (the callback may take it) */
  char err[256];      /* why, when status is 0 or not 2xx */
  const char *url;
  int attempts;
  /* private */
  char *method;
  struct curl_slist *hdrs;
  buf_t req_body;
  int flags;        /* IMP_* */
  int64_t first_ms; /* when the first attempt started: the retry budget counts from here */
  int64_t not_before_ms;
  int64_t moved, moved_ms, stall_ms; /* the stall limit: bytes moved so far, and when last */
  char stalled[64];                  /* why the progress callback cut the attempt */
  char oversize[64];                 /* why the body callback cut the attempt (not retried) */
  int chunked;                       /* the answer came in chunks (its end was checked) */
  int64_t retry_after_ms;
  void *easy;
  imp_req_cb cb;
  void *arg;
  imp_req_t *next;
};

/* imp_net_request flags */
enum {
  IMP_SOURCE = 1, /* a request to the source: counts against --rate */
  IMP_JSON = 2,   /* a 2xx answer must be JSON: one that is not was cut short (a connection
                   * closed mid-answer with no length to tell), and is retried */
  IMP_FILE = 4,   /* file bytes: no overall time limit per attempt, only the stall limit */
  IMP_HIST = 8,   /* a 2xx answer must be a page of history items: scanned into items (one
                   * that is JSON of another shape: in json; not JSON: as IMP_JSON) */
};

/* What an answer may hold in memory: a source or a file host that sends without end is cut
 * (CURLE_WRITE_ERROR) and the request fails without a retry. A history page of 1,000
 * messages at LeanCloud's 5 KB each is ~10 MB of JSON; files: as `tern admin` downloads. */
#define IMP_ANSWER_MAX (64u << 20)
#define IMP_FILE_MAX (512u << 20)

typedef struct {
  double rate;        /* source requests per second, 0: unlimited */
  int timeout_ms;     /* per attempt (IMP_FILE: none); also the connect limit, at most 15 s */
  int stall_ms;       /* an attempt that moves no byte for this long is cut (and retried) */
  int retry_for_ms;   /* no new attempt starts later than this after the first (0: no limit) */
  int retries;        /* further attempts after the first */
  int insecure;       /* do not verify TLS certificates */
  const char *cacert; /* trust this PEM instead of the system's CAs */
  int max_backoff_ms; /* cap of the exponential backoff and of Retry-After */
} imp_net_opts_t;

imp_net_t *imp_net_new(const imp_net_opts_t *o);
void imp_net_free(imp_net_t *n);
/* Queues a request. headers: "Name: value" lines separated by "\r\n" (may be NULL); body
 * is copied. flags: IMP_*. cb runs exactly once, from imp_net_step. No request waits
 * forever: every attempt is bounded (timeout_ms, stall_ms), and so is the number of
 * attempts (retries) and the time they may take together (retry_for_ms); a request that
 * gives up says so in err ("gave up after N attempts in T s: <last error>"). */
imp_req_t *imp_net_request(imp_net_t *n, const char *method, const char *url, const char *headers, const void *body,
                           size_t len, int flags, imp_req_cb cb, void *arg);
/* Runs ready callbacks and transfers for at most wait_ms. Returns the requests not yet
 * answered (queued, waiting for a retry, in flight, or deferred). */
int imp_net_step(imp_net_t *n, int wait_ms);
int imp_net_pending(const imp_net_t *n);
/* Answers every request not yet answered with status 0 and err "cancelled", and runs the
 * deferred callbacks, until nothing is left (callbacks may queue more: they are answered
 * the same way). For a run that stops. */
void imp_net_cancel(imp_net_t *n);
/* Counters for the summary. */
void imp_net_counts(const imp_net_t *n, long *requests, long *retries);
/* Runs cb(arg) from the next imp_net_step (a source that answers at once uses this, so no
 * callback chain grows the stack). */
void imp_net_defer(imp_net_t *n, imp_req_cb cb, void *arg);

/* ---------------------------------------------------------------- state */

typedef struct imp_state imp_state_t;

/* Loads FILE (and replays FILE.journal); a missing file is an empty state. NULL path: an
 * in-memory state that is never written (--dry-run, export). 0, or -1 with err. */
int imp_state_open(imp_state_t **out, const char *path, char *err, size_t errlen);
void imp_state_free(imp_state_t *s);
/* The state document: {"version", "source", "runs": {...}, "convs": {cid: {"u", "h", "ts",
 * "mid"}}, "pagers": {name: {"mark","ties"}}, "files": {objectId: url}, "urls": {old: new},
 * "skipped": [...]}. Borrowed; change it only through imp_state_commit. */
json_t *imp_state_doc(imp_state_t *s);
/* Merges delta into the document (objects merged two levels deep, "skipped" appended) and
 * makes it durable: one journal line, fdatasync'd; the snapshot is rewritten now and then.
 * Takes delta. 0, or -1 (the error on stderr). */
int imp_state_commit(imp_state_t *s, json_t *delta);
/* The same merge on any two objects (a batch gathers its commit this way). */
void imp_json_merge(json_t *dst, json_t *src);
/* Rewrites the snapshot (temp + fsync + rename) and empties the journal. */
int imp_state_snapshot(imp_state_t *s);

/* ---------------------------------------------------------------- records */

/* ISO "…Z" string of a LeanCloud date: an ISO string or {"__type":"Date","iso"}. NULL
 * when neither. Borrowed from j. */
const char *imp_date_iso(json_t *j);
int64_t imp_date_ms(json_t *j); /* 0 when absent or unparseable */

/* The conversation record for a _Conversation object, or NULL with *why set (no objectId),
 * or NULL with *why NULL: an expired temporary conversation, which is left out. now: for
 * temporary conversations' expiry. A custom field named "type" cannot travel (the record's
 * own "type" holds the name): it is dropped, as is ACL. */
json_t *imp_rec_conversation(json_t *obj, int64_t now, const char **why);
/* conversation kind for the REST paths: "conversations", "chatrooms", "service-conversations" */
const char *imp_conv_kind(json_t *obj);
/* The message record for one history item of conversation cid, appended to out as one
 * compact JSON object (no newline), with data (n bytes) in place of the item's content
 * when not NULL (a rewritten file URL). 0, or -1 with *why (out unchanged). */
int imp_rec_message_line(buf_t *out, const char *cid, const imp_item_t *it, const char *data, size_t n,
                         const char **why);
/* The installation and file records. NULL with *why when unusable. */
json_t *imp_rec_installation(json_t *obj, const char **why);
json_t *imp_rec_file(json_t *obj, const char **why);

/* The file a message's content refers to (typed messages' _lcfile), or 0 when none:
 * *url (borrowed from data's parse: caller frees *parsed), *objid (may be NULL). */
int imp_msg_file(const char *data, json_t **parsed, const char **url, const char **objid, const char **name);
/* data with the file URL replaced (the JSON text kept as it was where it can be: the old
 * URL's JSON string replaced in place; else re-encoded). malloc'd. */
char *imp_msg_rewrite_url(const char *data, const char *old_url, const char *new_url);

/* ---------------------------------------------------------------- sources */

typedef struct imp_src imp_src_t;

/* One page of a class listing: results (borrowed for the callback), or results NULL and
 * err set. more: another page follows (ask again with the returned cursor). */
typedef void (*imp_page_cb)(json_t *results, const char *err, long status, void *arg);

/* A page of history items (taken: the callback frees it), or items NULL and err set. */
typedef void (*imp_items_cb)(imp_items_t *items, const char *err, long status, void *arg);

typedef struct {
  const char *url; /* --from: https://API_HOST (http:// for tests) */
  const char *dir; /* --from-dir */
  const char *app_id, *master_key;
  int keep_json; /* history items as parsed JSON (imp_item_t.obj): an export writes them */
} imp_src_opts_t;

imp_src_t *imp_src_new(const imp_src_opts_t *o, imp_net_t *net, char *err, size_t errlen);
void imp_src_free(imp_src_t *s);
int imp_src_is_dir(const imp_src_t *s);

/* Listing of a class (_Conversation, _Installation, _File), 1000 at a time.
 * by_id: ordered by objectId, after `after` (NULL: from the start);
 * otherwise ordered by updatedAt ≥ mark (NULL: all) skipping `ties` at the mark.
 * count: ask for the total too (results then carry it in the callback's json as
 * {"results","count"}: the callback gets the whole answer object). */
void imp_src_list(imp_src_t *s, const char *cls, int by_id, const char *after, const char *mark, int ties, int count,
                  imp_page_cb cb, void *arg);
/* A conversation's extras: member roles, shut-ups, blacklist, subscribers (as applies to its
 * kind), delivered as one object {"member_infos":[…], "permanent_silenceds":[…],
 * "blacklists":[…], "subscribers":[…]}. */
void imp_src_extras(imp_src_t *s, json_t *conv, imp_page_cb cb, void *arg);
/* A page of history, oldest first, after (ts, mid) (ts 0: from the start). */
void imp_src_history(imp_src_t *s, json_t *conv, int64_t ts, const char *mid, int limit, imp_items_cb cb, void *arg);
/* A page of the app's whole history, oldest first, after (ts, mid). */
void imp_src_app_history(imp_src_t *s, int64_t ts, const char *mid, int limit, imp_items_cb cb, void *arg);
/* The bytes of a file: an exported copy (dir source, files/<objectId>), else a GET of its
 * URL without the app's keys. cb gets req (status, body, content_type). */
void imp_src_file_bytes(imp_src_t *s, const char *objid, const char *url, imp_req_cb cb, void *arg);

#endif
