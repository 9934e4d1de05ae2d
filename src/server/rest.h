/* rest.h — the HTTP API handlers behind routes.c, and their shared authorisation. */
#ifndef TERN_REST_H
#define TERN_REST_H

#include "http.h"

/* X-LC-Id / X-LC-Key check (app key, or master key with ",master"); need_master refuses
 * the app key with 403. Answers the error itself and returns -1 on failure. */
int rest_check_app(conn_t *c, const http_req_t *r, int need_master);
/* Whether r carries valid master-key credentials, answering nothing: for decisions made
 * from a request's head (how large a body to accept). */
int rest_is_master(conn_t *c, const http_req_t *r);
/* The client_id whose X-LC-IM-Session-Token is valid (caller frees), or NULL after a 401. */
char *rest_session_client(conn_t *c, const http_req_t *r);

/* One row of a route table: method, path pattern (see route_match), handler, and the
 * largest body the route takes, asked once the head is in (NULL: HTTP_MAX_BODY). */
typedef struct {
  int method;
  const char *path;
  void (*fn)(conn_t *c, const http_req_t *r);
  size_t (*body_limit)(conn_t *c, const http_req_t *r);
} rest_route_t;

/* rest_rtm.c: the /1.2/rtm/… API, ended by a row with a NULL path. */
extern const rest_route_t rest_rtm_routes[];

void rest_member_infos(conn_t *c, const http_req_t *r);
void rest_notifications(conn_t *c, const http_req_t *r);

/* rest_files.c — the file endpoint. Routes with path parameters "name" (upload, optional)
 * and "id" (the others); uploads take bodies up to rest_files_body_limit(). */
size_t rest_files_body_limit(conn_t *c, const http_req_t *r);
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
