/* uring.c — a worker's socket writes of one loop iteration in one io_uring_enter (uring.h). */
#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "err.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

/* SENDs per submission; a longer flush list goes in several. */
#define WRING_ENTRIES 256

struct wring {
  struct io_uring ring;
  int n;                       /* SENDs prepared, not yet submitted */
  conn_t *conn[WRING_ENTRIES]; /* the connection of SEND i (user_data is i) */
  buf_t *src[WRING_ENTRIES];   /* and the queue it sends from */
};

wring_t *wring_open(int *err) {
  wring_t *r = xcalloc(1, sizeof *r);
  int rc = io_uring_queue_init(WRING_ENTRIES, &r->ring, 0);
  if (rc < 0) {
    free(r);
    *err = rc;
    return NULL;
  }
  return r;
}

void wring_close(wring_t *r) {
  if (!r) return;
  io_uring_queue_exit(&r->ring);
  free(r);
}

#define RES_NONE INT_MIN /* no completion (yet) */

/* Submits the prepared SENDs and hands each result to its connection. Returns 0, or the
 * error that makes the ring unusable (io_uring_enter refused, as a seccomp filter that
 * lets io_uring_setup through would): then the SENDs the kernel never took are written
 * with write(2) instead, and the caller stops using the ring. */
static int submit(wring_t *r) {
  int n = r->n, seen = 0, err = 0;
  r->n = 0;
  /* a connection dropped since its flush began (conn_shed, while another's began) sends
   * nothing: its queue left the sums already, and it is reaped before the loop sleeps */
  int m = 0;
  for (int i = 0; i < n; i++)
    if (!r->conn[i]->reaping) r->conn[m] = r->conn[i], r->src[m] = r->src[i], m++;
  n = m;
  if (!n) return 0;
  int res[WRING_ENTRIES];
  for (int i = 0; i < n; i++) {
    buf_t *src = r->src[i];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring); /* never NULL: n <= WRING_ENTRIES, all reaped */
    io_uring_prep_send(sqe, conn_fd(r->conn[i]), src->data, src->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)i);
    res[i] = RES_NONE;
  }
  while (seen < n) {
    /* MSG_DONTWAIT: every SEND completes inside this call, so the wait is for CQEs
     * already posted; EINTR/EAGAIN/EBUSY (a signal, a short kernel allocation) retry */
    int rc = io_uring_submit_and_wait(&r->ring, (unsigned)(n - seen));
    struct io_uring_cqe *cqe;
    unsigned head, k = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
      if (cqe->user_data < (uint64_t)n) res[cqe->user_data] = cqe->res;
      k++;
    }
    io_uring_cq_advance(&r->ring, k);
    seen += (int)k;
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && seen < n) {
      /* Every SEND the kernel took has completed (MSG_DONTWAIT), so the ones without a
       * completion are still in the submission queue, never read: they are written
       * below instead. Anything else would be a SEND in flight on memory the loop
       * frees, which cannot be left to happen. */
      if ((int)io_uring_sq_ready(&r->ring) != n - seen) {
        log_at(LOG_ERROR, "io_uring_enter: %s with %d sends in flight", strerror(-rc), n - seen);
        abort();
      }
      err = rc;
      break;
    }
  }
  if (!err) {
    metric_add(M_URING_SUBMITS, 1);
    metric_add(M_URING_SENDS, n);
  }
  for (int i = 0; i < n; i++) {
    conn_t *c = r->conn[i];
    buf_t *src = r->src[i];
    int n_or_err = res[i];
    if (n_or_err == RES_NONE) { /* never submitted: a plain write, as conn_flush does */
      uv_buf_t b = uv_buf_init((char *)src->data, (unsigned)src->len);
      n_or_err = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    conn_flush_end(c, src, n_or_err);
  }
  return err;
}

int wring_flush(wring_t *r, worker_t *w) {
  while (w->flush_list) {
    /* one round: the list as it is now; what the ends queue (a download's next piece)
     * goes to a fresh list, written in the next round */
    conn_t *list = w->flush_list;
    w->flush_list = NULL;
    int err = 0;
    while (list) {
      conn_t *c = list;
      if (r->n == WRING_ENTRIES && (err = submit(r)) < 0) break;
      list = c->flush_next;
      c->in_flush = 0;
      buf_t *src = conn_flush_begin(c);
      if (!src) continue;
      r->conn[r->n] = c;
      r->src[r->n] = src;
      r->n++;
    }
    if (!err) err = submit(r);
    if (err < 0) {
      while (list) { /* not begun (still marked in_flush): back on the list, for write(2) */
        conn_t *c = list;
        list = c->flush_next;
        c->flush_next = w->flush_list;
        w->flush_list = c;
      }
      return err;
    }
  }
  return 0;
}
