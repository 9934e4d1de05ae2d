/* im_device.c — device tokens reported on the IM socket (protocol.md §3.3, §10): where a
 * client's offline pushes go.
 *
 * SDKs that push through APNs themselves report their token on the IM socket (`report
 * upload`, or deviceToken at login, both Swift): the token becomes a device of the
 * logged-in client, and leaves any other client it was reported for — one device shows
 * one login's pushes. The other way in, `_Installation` objects over REST, is
 * rest_installations.c's; offline push (out/push.c) reads the rows both write.
 *
 * Writes go through the store like everything else; the report reply waits for the
 * commit. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "timeutil.h"

#define TOKEN_MAX 256

int device_token_valid(const char *t) {
  size_t n = t ? strlen(t) : 0;
  if (n == 0 || n > TOKEN_MAX) return 0;
  for (; *t; t++)
    if ((unsigned char)*t <= ' ' || *t == 0x7f) return 0;
  return 1;
}

static void device_put(job_device_t *j, const char *client, const char *token, const char *type) {
  j->job.type = JOB_DEVICE;
  j->op = DEVICE_PUT;
  j->client = xstrdup(client);
  j->token = xstrdup(token);
  j->type = xstrdup(type);
  j->at = now_ms();
}

/* ---------------------------------------------------------------- report upload */

typedef struct {
  job_device_t j; /* first: the store hands back &j.job.task */
  im_t *im;
  reply_to_t rt;
} report_job_t;

static void report_stored(task_t *t) {
  report_job_t *rj = (report_job_t *)t;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? rj->im->workers[idx] : NULL;
  if (w && rj->j.job.result < 0) {
    reply_error_async(w, &rj->rt, LC_INTERNAL_ERROR, "device token could not be stored");
  } else if (w) {
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__report);
    PB_SET(out, op, LC__OP_TYPE__uploaded);
    reply_async(w, &rj->rt, &out);
  }
  reply_to_free(&rj->rt);
  free(rj->j.client);
  free(rj->j.token);
  free(rj->j.type);
  free(rj);
}

void im_device_report(req_t *r) {
  lc_cmd_t *c = r->cmd;
  if (!c->has_op || c->op != LC__OP_TYPE__upload) {
    reply_error(r, LC_UNPARSEABLE_RAW_MESSAGE, "unsupported command report/-");
    return;
  }
  Lc__ReportCommand *rm = c->reportmessage;
  if (!rm || !rm->type || strcmp(rm->type, "token") != 0) {
    /* a report this server has no use for: acknowledged, not kept */
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__report);
    PB_SET(out, op, LC__OP_TYPE__uploaded);
    reply(r, &out);
    return;
  }
  if (!device_token_valid(rm->data)) {
    reply_error(r, LC_UNPARSEABLE_RAW_MESSAGE, "a device token is 1 to 256 printable characters");
    return;
  }
  report_job_t *rj = xcalloc(1, sizeof *rj);
  device_put(&rj->j, r->s->client_id, rm->data, "ios"); /* the Swift SDK's APNs token */
  rj->im = r->w->im;
  reply_to_init(&rj->rt, r);
  rj->j.job.worker = r->w->idx;
  rj->j.job.task.fn = report_stored;
  store_submit(r->w->im->store, &rj->j.job);
}

void im_device_login_token(im_worker_t *w, const char *client, const char *token) {
  /* an APNs token is hex (64 characters today); Swift sends a UDID when it has none */
  size_t n = token ? strlen(token) : 0;
  if (n < 32 || n > 200) return;
  for (size_t i = 0; i < n; i++)
    if (!((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f') ||
          (token[i] >= 'A' && token[i] <= 'F')))
      return;
  job_device_t *j = xcalloc(1, sizeof *j);
  device_put(j, client, token, "ios");
  j->job.worker = -1;
  j->job.free_fn = job_device_free;
  store_submit(w->im->store, &j->job);
}
