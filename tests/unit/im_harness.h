/* im_harness.h — the IM layer under test without sockets or a server process.
 *
 * On the fuzzers' in-process server (tests/fuzz/fuzz_im.h: the real config, im and an
 * SQLite store with inline writes in a temporary directory, worker 0 run by the calling
 * thread), each fake link is a WebSocket as im sees it (base/link.h): commands go in as
 * the JSON view of a GenericCommand (codec.h, pb_from_json), and every frame im sends back
 * is decoded and kept as JSON, so a test asserts on replies and pushes by their fields and
 * reads the store through its interface to see the jobs a handler submitted. */
#ifndef TERN_IM_HARNESS_H
#define TERN_IM_HARNESS_H

#include <jansson.h>

#include "fuzz_im.h"
#include "link.h"
#include "store.h"

typedef struct {
  im_link_t link;
  int open, closed, close_code;
  json_t *frames; /* every frame received, oldest first, as JSON (pb_to_json) */
} th_link_t;

/* An empty database and a fresh im for one test; th_end drops every link still open. */
void th_begin(void);
void th_end(void);

th_link_t *th_open(void);
/* Opens a link and a session for peer (session/open, reply checked); frames cleared. */
th_link_t *th_login(const char *peer);
/* The link goes (code 1000/1006), as net's close would say. */
void th_gone(th_link_t *l, int code);

/* Sends one command (JSON text, printf-style) and lets the loop run: completions, the
 * pushes they cause. Fails the test when the JSON does not convert. */
void th_send(th_link_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like th_send but the store's completions do not run yet (a fast client's next
 * command arrives while the writes are in flight). th_drain runs them. */
void th_send_held(th_link_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void th_drain(void);

/* The reply to request i (a frame with that i); NULL if none. Borrowed. */
json_t *th_reply(th_link_t *l, int i);
/* The first received frame without an i of cmd/op ("conv", "joined"; op NULL: any), and
 * drops it from the list: a new reference, NULL if none. */
json_t *th_take(th_link_t *l, const char *cmd, const char *op);
/* How many frames without i of cmd/op were received. */
int th_count(th_link_t *l, const char *cmd, const char *op);
void th_clear(th_link_t *l);

/* The error code of a reply (errorMessage.code, or the code of a conv/… error), 0 if none. */
int th_error(json_t *reply);
/* A string or number at a dotted path of a frame ("convMessage.cid"); NULL / 0 if absent. */
const char *th_str(json_t *frame, const char *path);
long long th_int(json_t *frame, const char *path);

/* conv/start by l (request i) with members m (JSON array text) and other ConvCommand
 * fields (JSON text or NULL); checks the reply is started, returns the cid (malloc'd). */
char *th_start(th_link_t *l, int i, const char *m, const char *extra);
/* direct message text from l to cid (request i); checks the ack, returns its t. */
long long th_direct(th_link_t *l, int i, const char *cid, const char *text);

/* The store, through its interface. */
store_reader_t *th_reader(void);
/* The stored row id of conversation cid; fails the test when it is not stored. */
int64_t th_conv_id(const char *cid);

#endif
