/* rest_rtm.h — what the /1.2/rtm REST handlers share (protocol.md §7).
 *
 * Handlers run on the worker that parsed the request, like the WebSocket ones: reads go
 * through the worker's store reader; changes go through the IM core's apply steps
 * (notifications included), and the answer waits for the commit — the request is
 * deferred (http_defer) and the completion finds the connection again by handle. Every
 * error is LeanCloud's {"code", "error"}. Internal to rest_*.c; the route table is
 * rest_rtm_routes (rest.h). */
#ifndef TERN_REST_RTM_H
#define TERN_REST_RTM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "http.h"
#include "im_internal.h"
#include "rest.h"
#include "worker.h"

/* ---- requests */

int rest_path_kind(const http_req_t *r);                        /* the conversation kind the path prefix serves */
json_t *rest_body_json(const http_req_t *r);                    /* the body parsed ({} when empty), NULL if not JSON */
void rest_bad(conn_t *c, const http_req_t *r, const char *msg); /* 400, code 107 */
/* A protocol error as HTTP: 404 for unknown conversations and messages, 403 for another's
 * message, 500 for storage, else 400; the message is detail or the code's NAME. */
int rest_im_status(int code);
void rest_im_error(conn_t *c, const http_req_t *r, int code, const char *detail);
/* The conversation cid if it is of `kind` (normal includes temporary), referenced; else
 * answers 404 itself and returns NULL. rest_path_conv: the :cid of the path's kind. */
conv_t *rest_find_conv(conn_t *c, const http_req_t *r, const char *cid, int kind);
conv_t *rest_path_conv(conn_t *c, const http_req_t *r);
/* 1 when id (may be NULL) is a client id as utf8_client_id_ok has it; else answers 400 with
 * code 4103 INVALID_LOGIN naming `what`, and returns 0. */
int rest_client_id_ok(conn_t *c, const http_req_t *r, const char *id, const char *what);
/* body's client_ids (1 to 500 client ids) as a borrowed array the caller frees; NULL after
 * answering 400 (also when body is not a JSON object; 4103 for a malformed id). */
char **rest_client_ids(conn_t *c, const http_req_t *r, json_t *body, size_t *n);
/* A JSON array of at most max client ids as a borrowed array (n set; absent: empty), or
 * NULL when it is anything else. */
char **rest_string_array(json_t *a, size_t max, size_t *n);
int64_t rest_qint(const http_req_t *r, const char *key, int64_t def); /* query parameters */
int rest_qbool(const http_req_t *r, const char *key);                 /* "true" or "1" */
int rest_page_limit(const http_req_t *r, int def, int max);           /* ?limit within 1..max */

/* ---- deferred answers */

typedef struct {
  server_t *srv;
  int worker;
  uint64_t conn;
  json_t *(*shape)(void *ctx, json_t *result); /* the success body from the result */
  char *cid;
  int status;
  char *headers; /* extra response header lines ("Name: value\r\n"), owned, or NULL */
} rest_wait_t;

/* Defers c's request until rest_answer(); cid is kept for the shape (may be NULL). */
rest_wait_t *rest_wait(conn_t *c, json_t *(*shape)(void *, json_t *), const char *cid);
/* Answers (code 0: the shape of result; else the error, result's "error" as its message),
 * resumes the connection if it is still there, frees wt. An im_done_t function. */
void rest_answer(im_worker_t *w, void *wt, int code, json_t *result);
const im_done_t *rest_done(rest_wait_t *wt, im_done_t *d); /* fills d to call rest_answer */
void rest_wait_free(rest_wait_t *wt);                      /* for a done function that answers on its own */
/* The presence fence of a REST request answered from the other nodes' presence
 * (check-online, a chat room's online count, stats, a block from a chat room; docs/cluster.md
 * "The window, closed"): with a bus whose
 * subscriber holds input not yet applied (bus_fence_needed), c's request is deferred and
 * 1 returned — the handler returns — and h(c, r) runs again on this worker once the home
 * worker has applied that input (bus_fence), this time answered (the call returns 0
 * inside it), unless the connection went meanwhile. Else 0: answer now. A login answered
 * on another node a moment before is in that input. h may answer at once, or defer the
 * request again (rest_wait) and answer it later. */
int rest_presence_fence(conn_t *c, const http_req_t *r, void (*h)(conn_t *c, const http_req_t *r));
json_t *rest_shape_updated(void *wt, json_t *result); /* {"updatedAt", "objectId": cid} */
json_t *rest_shape_empty(void *wt, json_t *result);   /* {} */
json_t *rest_shape_copy(void *wt, json_t *result);    /* the result itself */

/* ---- handlers (the table in rest_rtm.c) */

/* rest_conv.c */
void rest_conv_create(conn_t *c, const http_req_t *r);
void rest_conv_list(conn_t *c, const http_req_t *r);
void rest_all_conversations(conn_t *c, const http_req_t *r);
void rest_conv_get(conn_t *c, const http_req_t *r);
void rest_conv_update(conn_t *c, const http_req_t *r);
void rest_conv_delete(conn_t *c, const http_req_t *r);
void rest_members_add(conn_t *c, const http_req_t *r);
void rest_members_remove(conn_t *c, const http_req_t *r);
void rest_members_list(conn_t *c, const http_req_t *r);
void rest_room_online_count(conn_t *c, const http_req_t *r);
void rest_mutes_add(conn_t *c, const http_req_t *r);
void rest_mutes_remove(conn_t *c, const http_req_t *r);
void rest_mutes_list(conn_t *c, const http_req_t *r);
void rest_subscribe(conn_t *c, const http_req_t *r);
void rest_unsubscribe(conn_t *c, const http_req_t *r);
void rest_subscribers(conn_t *c, const http_req_t *r);
void rest_subscriber_count(conn_t *c, const http_req_t *r);
void rest_client_subscriptions(conn_t *c, const http_req_t *r);
void rest_silence_add(conn_t *c, const http_req_t *r);
void rest_silence_remove(conn_t *c, const http_req_t *r);
void rest_silence_list(conn_t *c, const http_req_t *r);
void rest_temp_silence(conn_t *c, const http_req_t *r);
void rest_temp_unsilence(conn_t *c, const http_req_t *r);
void rest_block_add(conn_t *c, const http_req_t *r);
void rest_block_remove(conn_t *c, const http_req_t *r);
void rest_block_list(conn_t *c, const http_req_t *r);
void rest_info_set(conn_t *c, const http_req_t *r);
void rest_info_delete(conn_t *c, const http_req_t *r);
void rest_info_list(conn_t *c, const http_req_t *r);

/* rest_msg.c */
void rest_send(conn_t *c, const http_req_t *r);
void rest_broadcast(conn_t *c, const http_req_t *r);
void rest_global_broadcast(conn_t *c, const http_req_t *r);
void rest_history(conn_t *c, const http_req_t *r);
void rest_edit(conn_t *c, const http_req_t *r);
void rest_recall(conn_t *c, const http_req_t *r);
void rest_delete_message(conn_t *c, const http_req_t *r);
void rest_app_history(conn_t *c, const http_req_t *r);
void rest_broadcast_list(conn_t *c, const http_req_t *r);
void rest_broadcast_delete(conn_t *c, const http_req_t *r);

/* rest_client.c */
void rest_check_online(conn_t *c, const http_req_t *r);
void rest_unread_count(conn_t *c, const http_req_t *r);
void rest_kick(conn_t *c, const http_req_t *r);
void rest_stats(conn_t *c, const http_req_t *r);
void rest_user_sign(conn_t *c, const http_req_t *r);

#endif
