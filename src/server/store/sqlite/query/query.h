/* query.h — a parsed conversation query (store/convq.h) → SQLite SQL over the conv/member
 * schema; and the SQLite JSON paths of the document's keys.
 *
 * The store runs `SELECT … FROM conv c WHERE <q.sql> ORDER BY <sort> LIMIT ? OFFSET ?` and binds
 * q.params positionally before its own LIMIT/OFFSET values. Every piece of user input (values,
 * JSON paths built from keys, regex patterns) travels as a bound parameter, never as SQL text.
 * The generated SQL calls regexp(pattern, options, subject), which the store must register as a
 * deterministic 3-argument function wrapping query_regex_match(). */
#ifndef TERN_QUERY_H
#define TERN_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "convq.h"

typedef enum { QP_TEXT, QP_INT, QP_REAL } query_param_type_t;
typedef struct {
  query_param_type_t type;
  int64_t i;
  double d;
  char *s;
} query_param_t;
typedef struct query {
  buf_t sql;             /* boolean SQL expression over alias c, NUL-terminated via buf_cstr */
  query_param_t *params; /* positional parameters for the `?` placeholders, in order */
  size_t nparams, cap;
} query_t;

/* Most parameters one query may carry (WHERE and ORDER BY together); more is TERN_EINVAL. */
#define QUERY_MAX_PARAMS 1000

/* Makes q empty. q is caller-embedded; query_free() releases what it owns (strings in params). */
void query_init(query_t *q);
/* Appends a zeroed parameter of `type` to q->params and returns it for the caller to fill;
 * a string in ->s is q's (xstrdup it; query_free frees it). The caller writes its "?" where
 * the parameter goes. No limit here: query_where and query_sort enforce QUERY_MAX_PARAMS. */
query_param_t *query_param_add(query_t *q, query_param_type_t type);
/* Releases everything q owns and leaves it empty (re-usable without another query_init). */
void query_free(query_t *q);
/* Compiles a parsed where (convq_t.where) into q->sql/params: the tree's condition ANDed with
 * `c.kind IN (1,2,3)` (temporary conversations are fetched by id elsewhere). q must be freshly
 * initialised. Returns 0, or TERN_EINVAL with the reason in err (NUL-terminated, cut to
 * errlen) for what SQLite cannot take: more than QUERY_MAX_PARAMS parameters, nesting its
 * parser's stack cannot hold, a key its JSON paths cannot address (query_path_segment); on
 * error q is left empty. The tree is only read. */
int query_where(query_t *q, const convq_node_t *where, char *err, size_t errlen);
/* Compiles a parsed sort into an ORDER BY list (without the words ORDER BY) appended to out,
 * with any JSON paths bound as parameters appended to q (so call it after query_where with the
 * same q: the ORDER BY placeholders come after the WHERE ones). Every list ends with
 * ", c.id DESC" so paging with skip is deterministic. Returns 0, or TERN_EINVAL with err set
 * (then out and q are unchanged). */
int query_sort(query_t *q, const convq_sort_t *sort, size_t nsort, buf_t *out, char *err, size_t errlen);
/* Appends one segment seg[0..n) of a key to an SQLite JSON path ("$" first) in the form the
 * generated SQL uses, so the store's json_set/json_remove address exactly the member jansson
 * wrote. TERN_EINVAL (nothing appended) when SQLite cannot address it (a segment with both
 * '"' and '['). */
int query_path_segment(buf_t *b, const char *seg, size_t n);
/* "$" and every segment of segs[0..n) (NUL-terminated strings): 0, or TERN_EINVAL when one
 * cannot be addressed (b then holds part of the path). */
int query_path(buf_t *b, const char *const *segs, size_t n);
/* PCRE2 match used by the SQL function regexp(pattern, options, subject) that the SQLite store
 * registers: returns 1 match, 0 no match, TERN_EINVAL bad pattern/options (options: any of "imxs";
 * patterns longer than 16 KiB are refused), TERN_E2BIG when matching hit the backtracking limit
 * (a catastrophic pattern; report it as a failed query rather than a silent miss), TERN_ENOMEM if
 * PCRE2 cannot allocate, TERN_ETIMEDOUT once the thread's query deadline passed (below). Any
 * negative result should fail the SQL call. The subject may
 * contain invalid UTF-8 (it never matches there). Thread-safe: compiled patterns are cached per
 * thread (16 entries, freed when the thread exits). */
int query_regex_match(const char *pattern, const char *options, const char *subject, size_t subject_len);
/* The budget of the one query running on the calling thread. begin: from now on
 * query_regex_match answers TERN_ETIMEDOUT once mono_ns() passes deadline_ns (0: no
 * deadline) and notes why a match failed; query_budget_expired() is true past the deadline
 * (the store's SQLite progress handler asks it); query_budget_failure() is 0, TERN_ETIMEDOUT
 * or TERN_E2BIG (a match hit PCRE2's match, depth or heap limit) — why the statement failed.
 * end: forget it. Thread-local. */
void query_budget_begin(uint64_t deadline_ns);
void query_budget_end(void);
int query_budget_expired(void);
int query_budget_failure(void);

/* Conversation id's newest message time (NULL: none). Messages are in msg and, for a while
 * after they were sent, in one of two hot tables (store_sqlite_hot.c); the view msg_all
 * holds each once, but a correlated subquery over it makes SQLite scan it, so: a seek in
 * each table (a stale copy in a hot table equals msg's, and takes no part in a max). */
#define QUERY_LAST_TS(id)                                                                                              \
  "nullif(max(coalesce((SELECT ts FROM msg WHERE msg.conv = " id " ORDER BY ts DESC, seq DESC LIMIT 1), 0),"           \
  " coalesce((SELECT ts FROM msg_hot0 h WHERE h.conv = " id " ORDER BY ts DESC, seq DESC LIMIT 1), 0),"                \
  " coalesce((SELECT ts FROM msg_hot1 h WHERE h.conv = " id " ORDER BY ts DESC, seq DESC LIMIT 1), 0)), 0)"
/* A conversation's lm (last message time) as queries must see it: the stored column lags
 * by up to a second (store_sqlite.c, lm_note), so read the newest message and fall back to
 * the column when none is left. Conversation c. */
#define QUERY_LM_SQL "coalesce(" QUERY_LAST_TS("c.id") ", c.lm)"

#endif
