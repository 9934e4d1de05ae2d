/* convq.h — a conversation query (protocol.md §3.5) as every storage backend gets it.
 *
 * Clients and the app send LeanCloud's `where` JSON and a `sort` string. One parser
 * (convq_parse, convq.c) turns them into the tree below and makes every check the query
 * language has — nesting, number of conditions, the operator set, operand types, regular
 * expressions that compile, Dates that parse — with the error texts clients see. A backend
 * only compiles the tree (store/sqlite: query/query.c, to SQL); the only refusals left to it
 * are limits of its own engine (SQLite: bound parameters, its parser's stack, a key it cannot
 * address), with messages of their own (store_conv_query_check).
 *
 * Ownership: convq_parse allocates one convq_t; everything reachable from it (nodes, field
 * names and segments, operand values, strings) belongs to it and is freed by convq_free,
 * and nothing in it points into the JSON it was parsed from. A convq_t is never changed
 * after convq_parse returns, so any number of threads may read it at once (a query thread
 * and the worker that submitted it). */
#ifndef TERN_CONVQ_H
#define TERN_CONVQ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest accepted nesting: the where object is level 1, each $and/$or element one more;
 * also the deepest accepted operand value (arrays/objects inside a compared value). */
#define CONVQ_MAX_DEPTH 16
/* Most conditions per query: each operator of a field counts one, and so does each element
 * of an $and/$or list. */
#define CONVQ_MAX_TERMS 256
/* Longest accepted $regex pattern, in bytes. */
#define CONVQ_MAX_PATTERN 16384

/* What a leaf compares. Keys with a column of their own in every backend are named; every
 * other key ("name", "c", "tr", "sys", "unique", "uniqueId", "attr.level", …) is a path
 * into the conversation's document, the JSON object the IM layer stores beside the columns
 * (conv_json.c shapes it; store_conv_doc reads it). */
typedef enum {
  CONVQ_F_OBJECT_ID,  /* objectId: the conversation id (text) */
  CONVQ_F_MEMBERS,    /* m: the member set (one row per member in SQLite) */
  CONVQ_F_CREATED_AT, /* createdAt (ms) */
  CONVQ_F_UPDATED_AT, /* updatedAt (ms) */
  CONVQ_F_LM,         /* lm: the newest message's time (ms); absent when there is none */
  CONVQ_F_PATH,       /* a document path: segs */
} convq_field_kind_t;

typedef struct {
  convq_field_kind_t kind;
  char *name;   /* the key as the client wrote it (for error messages), NUL-free */
  char **segs;  /* CONVQ_F_PATH: the key split at '.', in order; each non-empty, NUL-free,
                 * any other byte allowed ('"', '[', '\\', control characters, UTF-8) */
  size_t nsegs; /* CONVQ_F_PATH: at least 1; else 0 */
} convq_field_t;

typedef enum {
  CONVQ_EQ, /* the field (or, when it is an array, one of its elements) equals val */
  CONVQ_NE, /* not EQ (a missing field matches) */
  CONVQ_LT,
  CONVQ_LTE,
  CONVQ_GT,
  CONVQ_GTE,    /* numbers with numbers, strings with strings, Dates with Dates */
  CONVQ_IN,     /* val is an array: EQ with one of its elements */
  CONVQ_NIN,    /* not IN */
  CONVQ_ALL,    /* val is an array: every element is matched (an empty one matches nothing) */
  CONVQ_EXISTS, /* val is a bool: the field is there (true) or not (false) */
  CONVQ_REGEX,  /* val is a string without NUL bytes: a PCRE2 pattern; regex_options */
  CONVQ_SIZE,   /* val is an integer >= 0: the field is an array of that many elements */
} convq_op_t;

/* A typed operand. Dates are recognised where the query language looks for them: the
 * operand itself and, for IN / NIN / ALL, each element of its array; a {"__type":"Date"}
 * object deeper inside a value stays a CONVQ_V_OBJECT. On the time fields (createdAt,
 * updatedAt, lm) every operand is already a CONVQ_V_DATE or CONVQ_V_NULL (ISO strings and
 * millisecond numbers are converted). On objectId and m, a Date-looking operand of EQ / NE
 * / IN / NIN / ALL is left as the object it is (it can never match). */
typedef enum {
  CONVQ_V_NULL,
  CONVQ_V_BOOL,   /* b */
  CONVQ_V_INT,    /* i */
  CONVQ_V_REAL,   /* d (finite) */
  CONVQ_V_STRING, /* s[0..len), NUL-terminated; may hold NUL bytes (then strlen(s) < len) */
  CONVQ_V_DATE,   /* i: ms since the epoch (UTC); backends keep LeanCloud's {"__type":"Date",
                   * "iso": …} form with the canonical ISO text (timeutil.h iso_format) */
  CONVQ_V_ARRAY,  /* items[0..n) */
  CONVQ_V_OBJECT, /* keys[k] → items[k], k < n, in the order the client wrote them */
} convq_vtype_t;

typedef struct convq_val convq_val_t;
struct convq_val {
  convq_vtype_t type;
  int b;
  int64_t i;
  double d;
  char *s;
  size_t len;
  convq_val_t *items;
  char **keys;
  size_t n;
};

typedef enum {
  CONVQ_AND, /* every kid holds (no kids: true) */
  CONVQ_OR,  /* some kid holds (always at least one kid) */
  CONVQ_LEAF,
} convq_node_kind_t;

typedef struct convq_node convq_node_t;
struct convq_node {
  convq_node_kind_t kind;
  /* CONVQ_AND / CONVQ_OR. An AND comes from a where object (its kids: leaves, field groups
   * and lists, in the client's key order), from an operator object with several operators
   * ({"$gt":1,"$lt":5}: a field group, kids are leaves of one field), or from an $and list
   * (list = 1, kids are where objects). An OR is always an $or list of where objects. */
  convq_node_t **kids;
  size_t n;
  int list;
  /* CONVQ_LEAF */
  convq_field_t field;
  convq_op_t op;
  convq_val_t val;
  char *regex_options; /* CONVQ_REGEX: the $options letters (any of "imxs") or NULL */
};

/* A sort key: ascending unless desc. */
typedef struct {
  convq_field_t field; /* never CONVQ_F_MEMBERS */
  int desc;
} convq_sort_t;

typedef struct {
  convq_node_t *where; /* never NULL: an AND (list 0) */
  convq_sort_t *sort;  /* at least one key; the backend adds a tie-break of its own (a
                        * stable order, so paging with skip is deterministic) */
  size_t nsort;
} convq_t;

/* Parses a `where` and a `sort` into *out (free with convq_free).
 *   where: NULL, JSON null or {}: the conversations whose m contains `self` (an AND of one
 *          leaf m EQ self; self NULL is ""); else an object. Only borrowed.
 *   sort:  "-lm", "name,-createdAt", "attr.level" (comma list, '-' descending, blanks around
 *          keys ignored); NULL or blank: "-lm,-updatedAt". Sorting by m is refused.
 * Returns 0, or TERN_EINVAL with the reason for the client in err (NUL-terminated, cut to
 * errlen; *out NULL). Never crashes on any JSON. */
int convq_parse(json_t *where, const char *sort, const char *self, convq_t **out, char *err, size_t errlen);
void convq_free(convq_t *q); /* NULL: no-op */

/* The JSON value v stands for (Dates as {"__type":"Date","iso":…} with canonical ISO text),
 * a new reference. */
json_t *convq_val_json(const convq_val_t *v);
/* 1 when v is a string without NUL bytes (what objectId and m can equal). */
int convq_val_plain_string(const convq_val_t *v);

/* Whether (pattern, options) compiles as the query language's $regex: 0, or TERN_EINVAL
 * with the reason in msg ("$options must be made of i, m, x, s", "pattern too long", or
 * PCRE2's message with the offset). Backends run patterns with PCRE2 (UTF, invalid UTF-8
 * never matches) and these option letters. */
int convq_regex_check(const char *pattern, const char *options, char *msg, size_t msglen);

#endif
