/* im_out.h — what the IM layer asks of the layer above it: the app's hooks (protocol.md
 * §8) and offline push (§10).
 *
 * Both are out/'s (hooks.c, push.c), which sits above im and sees its types; im calls
 * them only through the small table below, which out fills in and main.c registers
 * (out_attach, wire.c). So im builds, and its tests and fuzzers run, without out: with no
 * table, no hook is enabled and there is no offline push — as with a configuration that
 * names none. Every call is made on the calling worker's thread and never blocks it. */
#ifndef TERN_IM_OUT_H
#define TERN_IM_OUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "link.h"

typedef struct im im_t;

typedef enum {
  HOOK_MESSAGE_RECEIVED,
  HOOK_RECEIVERS_OFFLINE,
  HOOK_MESSAGE_SENT,
  HOOK_MESSAGE_UPDATE,
  HOOK_CONVERSATION_START,
  HOOK_CONVERSATION_STARTED,
  HOOK_CONVERSATION_ADD,
  HOOK_CONVERSATION_ADDED,
  HOOK_CONVERSATION_REMOVE,
  HOOK_CONVERSATION_REMOVED,
  HOOK_CONVERSATION_UPDATE,
  HOOK_CLIENT_ONLINE,
  HOOK_CLIENT_OFFLINE,
  HOOK_RTM_CLIENT_SIGN,
  HOOK_COUNT
} hook_t;

/* The outcome of a hook call: result is the value under "result" in the hook's answer —
 * an object for most hooks, true/false for _rtmClientSign (borrowed for the callback; NULL
 * when there is none, the call failed or the hook is off: "carry on as usual"); failed is
 * set when the call did not succeed and hook_fail_closed asks that to reject the
 * operation. Runs on the worker that made the call. */
typedef void (*hook_cb)(im_worker_t *w, void *arg, json_t *result, int failed);

/* One message's offline push: who gets it and what the payload may come from. */
typedef struct {
  const char *from;  /* sender client id */
  const char *cid;   /* conversation id */
  int64_t timestamp; /* message timestamp (ms) */
  const char *msg_id;
  char *const *to; /* offline recipients (after the hook's offlinePeers filter) */
  size_t nto;
  const char *hook_payload; /* the hook's pushMessage as JSON text (a JSON string or object), or NULL */
  const char *push_data;    /* the message's pushData (JSON text), or NULL */
  int force;                /* push even to members who muted the conversation (hook `force`) */
  char *const *muted;       /* the conversation's `mu` list (sorted), to skip unless force */
  size_t nmuted;
} push_request_t;

typedef struct {
  /* Is this hook configured? Callers skip building the parameters of one that is not. */
  int (*hook_enabled)(const im_t *im, hook_t which);
  /* Calls the hook with params (stolen); cb (may be NULL when the answer is ignored) runs
   * with the outcome, at once when the hook is off or cannot be called. */
  void (*hook_call)(im_worker_t *w, hook_t which, json_t *params, hook_cb cb, void *arg);
  /* Is an offline push provider configured? */
  int (*push_enabled)(const im_t *im);
  /* Resolves the payload and sends to the recipients' devices, asynchronously; req is
   * borrowed for the call. */
  void (*push_offline)(im_worker_t *w, const push_request_t *req);
} im_out_t;

/* What im calls (im.c): the table's, or with none registered, "off". */
int im_hook_enabled(const im_t *im, hook_t which);
void im_hook_call(im_worker_t *w, hook_t which, json_t *params, hook_cb cb, void *arg);
int im_push_enabled(const im_t *im);
void im_push_offline(im_worker_t *w, const push_request_t *req);

#endif
