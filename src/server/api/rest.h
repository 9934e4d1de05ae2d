/* rest.h — the HTTP API handlers behind routes.c, and their shared authorisation. */
#ifndef TERN_REST_H
#define TERN_REST_H

#include "http.h"

/* What a request's keys prove (http_req_t.key): X-LC-Id naming this app together with
 * X-LC-Key "<app key>" or "<master key>,master", or X-LC-Sign "md5(ts + key),ts[,master]"
 * with ts (ms) within sign_header_window of now. */
enum { REST_KEY_NONE = 0, REST_KEY_APP = 1, REST_KEY_MASTER = 2 };

/* Who may call a route (rest_route_t.auth). The default, a row that names none, is the
 * master key: a route someone forgets to think about is closed, not open. */
typedef enum {
  AUTH_MASTER = 0, /* the master key */
  AUTH_CLIENT,     /* the master key, or the app key plus X-LC-IM-Session-Token: a live session
                    * token (not expired, not revoked) of the client the request is about —
                    * the path's :client_id, else the query's client_id. On PostgreSQL, for a
                    * row with token_read, the head checks what needs no store and sets
                    * r->auth_pending; the store's revocations are read with the handler's
                    * reads, off the loop, by rest_read_run (rest_read.h), which finishes
                    * the check before the handler answers */
  AUTH_APP,        /* the app key (or the master key) */
  AUTH_UPLOAD,     /* an upload token from fileTokens (?token=) for the path's :id; keys are not looked at */
  AUTH_METRICS,    /* the master key, also as "Authorization: Bearer <master key>" (Prometheus) */
  AUTH_OPEN,       /* anyone: no key is looked at */
} rest_auth_t;

/* X-LC-Id / X-LC-Key check (app key, or master key with ",master"); need_master refuses
 * the app key with 403. Answers the error itself and returns -1 on failure. For handlers
 * whose route row already says as much it is a second look, never a weaker one. */
int rest_check_app(conn_t *c, const http_req_t *r, int need_master);
/* The client an AUTH_CLIENT request is about: the path's :client_id, else ?client_id (a
 * new string, the caller frees it), NULL when it names none. */
char *rest_auth_client(const http_req_t *r);
/* The client a request that passed AUTH_CLIENT acts for (borrowed from r or copied into
 * a new string: the caller frees it), or NULL after answering 400 when it names none. */
char *rest_session_client(conn_t *c, const http_req_t *r);
/* Decides from the head alone whether r may reach a route of level `need`: 0 (r->key set),
 * or -1 with the refusal in r->deny_status, deny_code, deny_msg (rest_auth.c). */
int rest_authorize(conn_t *c, http_req_t *r, rest_auth_t need);
/* 0 when st is a live session token of client (sealed for it, not expired, not revoked:
 * token.h, revoke.h); TERN_EINVAL, TERN_ETIMEDOUT or TERN_EPERM otherwise. */
int rest_token_live(conn_t *c, const char *client, const char *st);

/* One row of a route table: method, path pattern (see route_match), handler, the largest
 * body the route takes, asked once the head is in (NULL: HTTP_MAX_BODY; a row that names
 * one is an upload: it also needs an upload slot, rest_files_admit), and who may call it. */
typedef struct {
  int method;
  const char *path;
  void (*fn)(conn_t *c, const http_req_t *r);
  size_t (*body_limit)(conn_t *c, const http_req_t *r);
  rest_auth_t auth;
  int token_read; /* AUTH_CLIENT: the handler makes its reads with rest_read_run, which reads the
                   * session token's revocations with them (off the loop on PostgreSQL); 0: they
                   * are read from the head, on the loop */
} rest_route_t;

/* routes.c, net's http_head (net.h): everything decided from a request's head, before any body byte is read: the
 * route (r->route, r->params), whether its keys may call it (r->key, or r->deny_* — a
 * refused request with a body is answered at once and the connection closed, one without
 * is answered in turn), an upload slot for upload routes; returns the largest body r may
 * carry: the route's own limit when its row names one, else HTTP_MAX_BODY. Not called for
 * WebSocket upgrades. */
size_t routes_head(conn_t *c, http_req_t *r);
/* routes.c, net's http_request: the request router. The upgrade path is handled before it. It answers the
 * refusal routes_head() decided, or calls the handler of the route it chose. */
void routes_dispatch(conn_t *c, http_req_t *r);
/* routes.c, net's http_done: an answered request ends — one access-log line (method,
 * path without the query, status, time, address; code for errors) and the count of
 * tern_http_requests_total{route, status}. */
void routes_done(conn_t *c, const http_req_t *r);
/* The lines of tern_http_requests_total and tern_http_request_seconds for /metrics. */
void routes_metrics(buf_t *out);
/* Route patterns. A pattern is a path of segments: a literal segment matches itself,
 * ":name" matches any one non-empty segment, and "*name" — last only — matches the
 * non-empty rest of the path, slashes included. Examples: "/1.2/rtm/conversations/:cid/members"
 * gives cid; "/files/:id" followed by the segment "*name" gives id and name.
 * Matching is on the raw (percent-encoded) path, so an encoded '/' stays inside its
 * segment; values are decoded afterwards. Returns 1 on a match — then, when r is not NULL,
 * r->params holds the parameters (replacing earlier ones) — else 0. Patterns with more
 * than HTTP_MAX_PARAMS parameters never match. */
int route_match(const char *pattern, const char *raw_path, http_req_t *r);

/* rest_rtm.c: the /1.2/rtm/… API, ended by a row with a NULL path. */
extern const rest_route_t rest_rtm_routes[];
/* routes.c: calls cb for every row of both tables, in the order they are matched. */
void routes_each(void (*cb)(void *arg, const rest_route_t *rt), void *arg);

void rest_member_infos(conn_t *c, const http_req_t *r);
/* rest_admin.c — tern's operator reads (master key): GET /1.2/tern/hooks,
 * GET /1.2/tern/push/dead-letters. */
void rest_hooks_status(conn_t *c, const http_req_t *r);
void rest_dead_letters(conn_t *c, const http_req_t *r);
void rest_notifications(conn_t *c, const http_req_t *r);
/* rest_ops.c — GET /ready (store writable, workers answering, within a deadline) and POST
 * /1.2/tern/backup (an online copy into a directory on the server: docs/operations.md). */
void rest_ready(conn_t *c, const http_req_t *r);
void rest_backup(conn_t *c, const http_req_t *r);
/* rest_installations.c — `_Installation` (protocol.md §10): POST /1.1/installations,
 * GET/PUT/DELETE /1.1/installations/<objectId>. Route both paths here. Channels bind (route
 * pushes) only with the master key or the channel's own session token. */
void rest_installations(conn_t *c, const http_req_t *r);

/* rest_files.c — the file endpoint. Routes with path parameters "name" (upload, optional)
 * and "id" (the others); uploads take bodies up to rest_files_body_limit(). */
size_t rest_files_body_limit(conn_t *c, const http_req_t *r);
/* An upload holds its body in memory until it is stored: at most max_uploads_per_ip from one
 * address and max_uploads in all may be in flight (the master key is not counted). Takes a
 * slot for r (released with the request, or by the job its body moves to), or sets r's
 * refusal (429, 503) and returns -1. */
int rest_files_admit(conn_t *c, http_req_t *r);
/* 1 when r's ?token= is an upload token this server made for the path's :id, unexpired. */
int rest_files_token_ok(conn_t *c, const http_req_t *r);
/* Prometheus lines for /metrics: uploads in flight, uploads refused. */
void rest_files_metrics(server_t *srv, buf_t *out);
void rest_file_upload(conn_t *c, const http_req_t *r);
void rest_file_meta(conn_t *c, const http_req_t *r);
void rest_file_delete(conn_t *c, const http_req_t *r);
void rest_file_download(conn_t *c, const http_req_t *r);
/* The upload-token flow of leancloud-storage 4.x's AV.File.save(): POST fileTokens, PUT
 * the bytes to its upload_url (path parameter "id"), POST fileCallback. */
void rest_file_token(conn_t *c, const http_req_t *r);
void rest_file_token_upload(conn_t *c, const http_req_t *r);
void rest_file_callback(conn_t *c, const http_req_t *r);
/* A stored file's object as the API shows it: its metadata plus its download URL. */
json_t *rest_file_json(const server_t *srv, json_t *meta, const char *id);

/* rest_import.c — tern as an import target (docs/migrate-api.md), master key only:
 * POST /1.2/import/records (NDJSON) and PUT /1.2/import/files/:id (the bytes). */
size_t rest_import_body_limit(conn_t *c, const http_req_t *r);
void rest_import_records(conn_t *c, const http_req_t *r);
void rest_import_file(conn_t *c, const http_req_t *r);

/* rest_classes.c — LeanCloud's storage-API reads of _Conversation, _Installation and
 * _File, with the master key (tern as an export source). */
void rest_class_conversations(conn_t *c, const http_req_t *r);
void rest_class_installations(conn_t *c, const http_req_t *r);
void rest_class_files(conn_t *c, const http_req_t *r);

#endif
