/* internal.h — the structs behind libtern's opaque types, and the cross-file functions.
 *
 * Layout by subsystem: conn.c (WebSocket client, requests, timers, reconnect), client.c
 * (sessions, pushes, delegate), conv.c (conversation objects and member operations),
 * message.c (typed message encoding), send.c (send, receipts, read, history), query.c
 * (query builder and cache policies), cache.c (SQLite cache), upload.c (file uploads),
 * uv.c (libuv adapter), sync.c (blocking layer), error.c. */
#ifndef TERN_SDK_INTERNAL_H
#define TERN_SDK_INTERNAL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>

#include "codec.h"
#include "sbuf.h"
#include "tern/tern.h"

enum conn_state {
  CONN_IDLE = 0,   /* no socket, nobody needs one */
  CONN_CONNECTING, /* TCP connect asked of the adapter */
  CONN_HANDSHAKE,  /* HTTP upgrade sent */
  CONN_OPEN,       /* WebSocket up */
  CONN_CLOSING,    /* close asked of the adapter */
  CONN_WAIT,       /* waiting for the reconnect timer */
};

typedef struct req req_t;
typedef void (*req_reply_fn)(tern_t *t, req_t *r, lc_cmd_t *reply, int status);

/* One request waiting for its reply (matched by `i`). */
struct req {
  req_t *next;
  int32_t i;
  int64_t deadline;
  tern_client_t *c;
  tern_conv_t *conv;
  req_reply_fn on_reply;
  void *cb; /* the user's callback, cast by on_reply */
  void *data;
  void *ctx; /* per-kind state */
  void (*ctx_free)(void *ctx);
};

/* A file upload in flight (upload.c). */
typedef struct upload upload_t;

/* A callback deferred to the next timer tick, so that no completion callback ever runs
 * inside the call that started the operation (answers from the cache, local closes). */
typedef struct defer {
  struct defer *next;
  void (*fn)(tern_t *t, void *ctx, int canceled);
  void *ctx;
} defer_t;

struct tern {
  tern_options_t o;
  defer_t *deferred;
  char *url, *app_id, *app_key, *files_url, *cache_dir, *tls_ca_file;
  char *host, *path;
  int port;
  int tls; /* wss:// */
  char *http_host;
  int http_port;
  int http_tls; /* uploads over https:// */
  tern_io_t io;
  int attached;
  enum conn_state state;
  sbuf_t in, out;
  char ws_key[32];
  int32_t next_i;
  req_t *reqs;
  tern_client_t *clients;
  int attempt;        /* reconnect attempts since the last successful login */
  int idle_close;     /* the socket is closing because nobody needed it, not because it failed */
  int64_t retry_at;   /* CONN_WAIT: when to connect again */
  int64_t last_input; /* watchdog */
  int64_t next_ping;
  int64_t armed; /* the deadline the adapter's timer is set to (-1 none) */
  int *types;
  size_t ntypes;
  upload_t *uploads;
  uint64_t next_http_id;
  int freeing;
  void *sync; /* sync.c's private loop, when made by tern_sync_new */
  void (*sync_free)(tern_t *t);
};

typedef struct sent_msg {
  struct sent_msg *next;
  tern_msg_t *m;
} sent_msg_t;

struct tern_client {
  tern_client_t *next;
  tern_t *t;
  char *id, *tag;
  tern_client_status_t status;
  int ever_opened; /* a login succeeded once: later logins are re-logins (r:true) */
  int force;
  int kicked; /* the server ended the session (4111): a non-forced open sends r:true */
  int relogin_no_st;
  char *st;
  tern_delegate_t d;
  void *ddata;
  tern_signature_cb sig;
  void *sigdata;
  int msg_cache;
  tern_conv_t *convs;
  sqlite3 *db;
  int db_failed;
  int64_t last_unread_notif;
  tern_client_cb open_cb;
  void *open_data;
  int open_pending;     /* a session/open is in flight */
  sent_msg_t *receipts; /* sent messages waiting for a delivery receipt */
  size_t nreceipts;
  char *recent[64]; /* ids of the last received messages: delivery is at least once */
  unsigned recent_pos;
};

typedef struct strlist {
  struct strlist *next;
  char *s;
} strlist_t;

struct tern_conv {
  tern_conv_t *next;
  tern_client_t *c;
  char *id, *name, *creator;
  char **members;
  size_t nmembers;
  char **mu;
  size_t nmu;
  json_t *attrs; /* object */
  char *attrs_s; /* cached text */
  strlist_t *scratch;
  int transient, unique, sys, temp;
  int64_t created, updated, lm;
  int unread;
  tern_msg_t *last;
};

struct tern_msg {
  int type;
  int typed; /* content is a typed-message JSON */
  char *content;
  char *text;
  json_t *attrs;
  char *attrs_s;
  json_t *extra; /* other top-level fields of a typed message */
  char *file_url, *file_obj_id, *file_name, *file_format, *file_path;
  int64_t file_size;
  int file_width, file_height;
  double file_duration;
  int has_loc;
  double lat, lon;
  char *id, *cid, *from;
  int64_t ts, delivered_at;
  tern_msg_status_t status;
  tern_msg_io_t io;
  int transient;
};

typedef struct {
  void (*fn)(void);
} tern_unused_t;

/* ---- conn.c ---- */
void tlog(tern_t *t, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int64_t tern_now(void);
/* Queues a command. With r: assigns `i`, keeps r until its reply / timeout / drop. */
int conn_send(tern_t *t, lc_cmd_t *cmd, req_t *r);
req_t *req_new(tern_client_t *c, req_reply_fn fn, void *cb, void *data);
void req_free(req_t *r);
void conn_need(tern_t *t); /* a client wants the socket: connect if idle */
void conn_maybe_idle(tern_t *t);
void conn_sched(tern_t *t);
int conn_defer(tern_t *t, void (*fn)(tern_t *t, void *ctx, int canceled), void *ctx);
int conn_is_open(const tern_t *t);
int tern_type_registered(const tern_t *t, int type);

/* ---- client.c ---- */
void client_on_connected(tern_client_t *c);
void client_on_dropped(tern_client_t *c, int err);
void client_on_resuming(tern_client_t *c);
void client_on_push(tern_t *t, lc_cmd_t *cmd);
void client_free(tern_client_t *c);
int client_ready(const tern_client_t *c); /* 0 or TERN_ENOTOPEN */
int client_sign(tern_client_t *c, const char *cid, const char *action, char **ids, size_t n, char *s, size_t slen,
                int64_t *ts, char *nonce, size_t nlen);
/* Sets the reply error status for a reply command (error/ack code/session closed code). */
int reply_status(const lc_cmd_t *reply);

/* ---- conv.c ---- */
tern_conv_t *conv_get(tern_client_t *c, const char *cid, int create);
void conv_free(tern_conv_t *conv);
void conv_changed(tern_conv_t *conv);
int conv_from_json(tern_client_t *c, json_t *o, tern_conv_t **out);
json_t *conv_to_json(const tern_conv_t *conv);
void conv_set_members(tern_conv_t *conv, char **ids, size_t n);
void conv_add_members_local(tern_conv_t *conv, char **ids, size_t n);
void conv_remove_members_local(tern_conv_t *conv, char **ids, size_t n);
void conv_apply_update(tern_conv_t *conv, json_t *attr);
void conv_set_last(tern_conv_t *conv, const tern_msg_t *m);
int str_sorted_ids(char **in, size_t n, char ***out);
void strv_free(char **v, size_t n);
char **strv_dup(const char *const *v, size_t n);

/* ---- message.c ---- */
tern_msg_t *msg_alloc(void);
/* Parses wire content into a message (typed when it is a typed-message JSON whose type is
 * built in or registered). */
tern_msg_t *msg_from_content(tern_t *t, const char *content);
/* Serializes (typed) into m->content. */
int msg_encode(tern_msg_t *m);
json_t *msg_to_json(const tern_msg_t *m);
tern_msg_t *msg_from_json(tern_t *t, json_t *j);
void msg_set_str(char **dst, const char *s);

/* ---- send.c ---- */
void send_on_direct(tern_client_t *c, lc_cmd_t *cmd);
void send_on_rcp(tern_client_t *c, lc_cmd_t *cmd);

/* ---- query.c ---- */
tern_client_t *query_client(const tern_query_t *q);
tern_cache_policy_t query_policy(const tern_query_t *q);

/* ---- cache.c ---- */
int cache_open(tern_client_t *c);
void cache_close(tern_client_t *c);
void cache_put_msgs(tern_client_t *c, const char *cid, tern_msg_t **msgs, size_t n, int page_complete_before,
                    const char *newer_anchor);
void cache_put_msg(tern_client_t *c, const tern_msg_t *m);
/* Contiguous messages before (mid, ts) — or newest when mid is NULL and newest_ok. Returns 0 with
 * *msgs (oldest first) when the cache can answer, TERN_ECACHEMISS otherwise. */
int cache_get_before(tern_client_t *c, const char *cid, const char *mid, int64_t ts, int limit, int newest_ok,
                     tern_msg_t ***msgs, size_t *n);
void cache_put_query(tern_client_t *c, const char *key, const char *result_json);
/* Returns malloc'd JSON text of a cached result not older than max_age_s, or NULL. */
char *cache_get_query(tern_client_t *c, const char *key, int max_age_s);
void cache_put_conv(tern_client_t *c, const tern_conv_t *conv);

/* ---- upload.c ---- */
/* Starts uploading the file of m (m->file_path); calls done(t, ctx, status) after filling
 * m's file fields. Returns 0 or a negative code (then done is not called). */
typedef void (*upload_done_fn)(tern_t *t, void *ctx, int status);
int upload_start(tern_t *t, tern_msg_t *m, upload_done_fn done, void *ctx);
void upload_on_http_done(tern_t *t, uint64_t id, int status, const void *resp, size_t n);
void upload_cancel_all(tern_t *t);
/* Reads width/height from PNG, GIF or JPEG bytes; 0 on success. */
int image_size(const uint8_t *p, size_t n, int *w, int *h);

#endif
