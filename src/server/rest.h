/* rest.h — the HTTP API handlers behind routes.c, and their shared authorisation. */
#ifndef TERN_REST_H
#define TERN_REST_H

#include "http.h"

/* X-LC-Id / X-LC-Key check (app key, or master key with ",master"); need_master refuses
 * the app key with 403. Answers the error itself and returns -1 on failure. */
int rest_check_app(conn_t *c, const http_req_t *r, int need_master);
/* The client_id whose X-LC-IM-Session-Token is valid (caller frees), or NULL after a 401. */
char *rest_session_client(conn_t *c, const http_req_t *r);

void rest_member_infos(conn_t *c, const http_req_t *r);
void rest_notifications(conn_t *c, const http_req_t *r);

/* rest_files.c — the file endpoint. Routes with path parameters "name" (upload, optional)
 * and "id" (the others); uploads take bodies up to rest_files_body_limit(). */
size_t rest_files_body_limit(conn_t *c, const http_req_t *r);
void rest_file_upload(conn_t *c, const http_req_t *r);
void rest_file_meta(conn_t *c, const http_req_t *r);
void rest_file_delete(conn_t *c, const http_req_t *r);
void rest_file_download(conn_t *c, const http_req_t *r);

#endif
