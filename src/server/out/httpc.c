/* httpc.c — libcurl multi on a libuv loop (see httpc.h).
 *
 * The socket callback creates one uv_poll per socket curl wants watched; the timer
 * callback arms one uv_timer; both feed curl_multi_socket_action and then collect the
 * finished transfers. */
#include "httpc.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "log.h"

typedef struct xfer xfer_t;

struct httpc {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  size_t active;
  int closing;
  xfer_t *all; /* transfers in flight, to cancel on close */
};

struct xfer {
  xfer_t *prev, *next;
  httpc_t *h;
  CURL *easy;
  struct curl_slist *headers;
  buf_t response;
  void *body_copy;
  httpc_cb cb;
  void *arg;
  char error[CURL_ERROR_SIZE];
};

static void unlink_xfer(xfer_t *x) {
  if (x->prev) x->prev->next = x->next;
  else x->h->all = x->next;
  if (x->next) x->next->prev = x->prev;
}

static void finish(xfer_t *x, const httpc_result_t *res) {
  curl_multi_remove_handle(x->h->multi, x->easy);
  unlink_xfer(x);
  x->h->active--;
  x->cb(x->arg, res);
  curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->headers);
  buf_free(&x->response);
  free(x->body_copy);
  free(x);
}

typedef struct {
  uv_poll_t poll;
  curl_socket_t fd;
  httpc_t *h;
} sock_t;

static void check_done(httpc_t *h) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(h->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    xfer_t *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    httpc_result_t res = {0};
    if (m->data.result == CURLE_OK) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &res.status);
    else res.error = x->error[0] ? x->error : curl_easy_strerror(m->data.result);
    curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &res.seconds);
    res.body = buf_cstr(&x->response);
    res.len = x->response.len;
    finish(x, &res);
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_t *s = p->data;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running;
  curl_multi_socket_action(s->h->multi, s->fd, flags, &running);
  check_done(s->h);
}

static void on_timeout(uv_timer_t *t) {
  httpc_t *h = t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

static void free_sock(uv_handle_t *hd) { free(hd->data); }

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  httpc_t *h = userp;
  sock_t *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, free_sock);
      curl_multi_assign(h->multi, fd, NULL);
    }
    return 0;
  }
  if (!s) {
    s = xcalloc(1, sizeof *s);
    s->fd = fd;
    s->h = h;
    uv_poll_init_socket(h->loop, &s->poll, fd);
    s->poll.data = s;
    curl_multi_assign(h->multi, fd, s);
  }
  int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  httpc_t *h = userp;
  if (timeout_ms < 0) uv_timer_stop(&h->timer);
  else uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg) {
  xfer_t *x = arg;
  size_t len = size * n;
  if (x->response.len + len > 4u << 20) return 0; /* hooks and providers answer small */
  buf_append(&x->response, p, len);
  return len;
}

static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

httpc_t *httpc_new(uv_loop_t *loop) {
  static uv_once_t once = UV_ONCE_INIT;
  uv_once(&once, global_init); /* curl_global_init is not thread-safe: once, first */
  httpc_t *h = xcalloc(1, sizeof *h);
  h->loop = loop;
  h->multi = curl_multi_init();
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  return h;
}

static void free_client(uv_handle_t *hd) {
  httpc_t *h = hd->data;
  curl_multi_cleanup(h->multi);
  free(h);
}

void httpc_close(httpc_t *h) {
  if (!h || h->closing) return;
  h->closing = 1;
  while (h->all) {
    httpc_result_t res = {.error = "cancelled", .body = ""};
    /* finish unlinks the transfer from h->all before it frees it */
    finish(h->all, &res); // NOLINT(clang-analyzer-unix.Malloc)
  }
  uv_close((uv_handle_t *)&h->timer, free_client);
}

size_t httpc_active(httpc_t *h) { return h->active; }

uv_loop_t *httpc_loop(httpc_t *h) { return h->loop; }

int httpc_request(httpc_t *h, const char *method, const char *url, const char *const *headers, const void *body,
                  size_t len, long timeout_ms, int flags, httpc_cb cb, void *arg) {
  if (h->closing) return TERN_ECLOSED;
  xfer_t *x = xcalloc(1, sizeof *x);
  x->h = h;
  x->cb = cb;
  x->arg = arg;
  x->easy = curl_easy_init();
  if (!x->easy) {
    free(x);
    return TERN_ENOMEM;
  }
  for (size_t i = 0; headers && headers[i]; i++) x->headers = curl_slist_append(x->headers, headers[i]);
  x->headers = curl_slist_append(x->headers, "Expect:"); /* no 100-continue round trip */
  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (flags & HTTPC_H2C) {
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    /* libcurl 7.88 cannot reuse a prior-knowledge h2c connection (the second stream fails
     * with "Error in the HTTP2 framing layer"): cleartext h2 is for tests, a connection
     * each is fine there */
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  } else if (flags & HTTPC_HTTP2) curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  if (body) {
    x->body_copy = xmalloc(len ? len : 1);
    memcpy(x->body_copy, body, len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body_copy);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
  }
  if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    curl_slist_free_all(x->headers);
    free(x->body_copy);
    free(x);
    return TERN_EINVAL;
  }
  h->active++;
  x->next = h->all;
  if (h->all) h->all->prev = x;
  h->all = x;
  return 0;
}
