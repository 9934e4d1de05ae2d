/* test_uvredis.c — hiredis on a libuv loop (src/server/bus/redis/uvredis.c) against a fake
 * Redis (a loopback socket this test answers): commands and their replies in order, with
 * no epoll_ctl per command (every uv_poll_start is one: bench/README.md, "The Redis
 * adapter's system calls"), output larger than the socket takes written in full once it
 * drains, commands queued late in an iteration written at once on request (uvredis_write_now),
 * and the handles closed with the context. epoll_ctl is counted by defining it here:
 * libuv's calls resolve to the program's definition first. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "uvredis.h"

static int nctl; /* epoll_ctl calls */

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  nctl++;
  return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

typedef struct {
  uv_loop_t loop;
  redisAsyncContext *ac;
  int lfd, sfd;     /* the fake Redis: listener, accepted connection */
  size_t got;       /* bytes the fake Redis read since the last reply */
  int replies;      /* replies the context handed to callbacks, in order */
  int order_broken; /* a reply came out of order */
} fx_t;

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  fx_t *f = ac->data;
  redisReply *rep = r;
  if (!rep || rep->type != REDIS_REPLY_STATUS || (intptr_t)priv != f->replies) f->order_broken = 1;
  f->replies++;
}

static void fx_open(fx_t *f) {
  memset(f, 0, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(f->lfd, 4), 0);
  assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
  f->ac = redisAsyncConnect("127.0.0.1", ntohs(a.sin_port));
  assert_non_null(f->ac);
  assert_int_equal(f->ac->err, 0);
  f->ac->data = f;
  assert_int_equal(uvredis_attach(f->ac, &f->loop), REDIS_OK);
  f->sfd = accept(f->lfd, NULL, NULL); /* loopback: the handshake is done */
  assert_true(f->sfd >= 0);
  assert_int_equal(fcntl(f->sfd, F_SETFL, O_NONBLOCK), 0);
}

/* One turn: the loop once without blocking, then the fake Redis reads what came and, once
 * `want` bytes have, answers +OK. */
static void fx_turn(fx_t *f, size_t want) {
  uv_run(&f->loop, UV_RUN_NOWAIT);
  char b[65536];
  ssize_t n;
  while ((n = read(f->sfd, b, sizeof b)) > 0) f->got += (size_t)n;
  if (want && f->got >= want) {
    assert_int_equal(write(f->sfd, "+OK\r\n", 5), 5);
    f->got -= want;
  }
}

static void fx_close(fx_t *f) {
  redisAsyncFree(f->ac); /* the adapter's cleanup closes its handles */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle closed */
  close(f->sfd);
  close(f->lfd);
}

#define PING_LEN 14 /* "*1\r\n$4\r\nPING\r\n" */

/* fx_open, and a first PING answered: connected, and the poll reads. */
static void fx_open_up(fx_t *f) {
  fx_open(f);
  assert_int_equal(redisAsyncCommand(f->ac, on_reply, (void *)(intptr_t)0, "PING"), REDIS_OK);
  for (int i = 0; i < 100 && f->replies < 1; i++) fx_turn(f, PING_LEN);
  assert_int_equal(f->replies, 1);
}

/* Commands one at a time, each answered before the next: written without any change to
 * what the poll watches once the connection is up (before: two epoll_ctl per command and
 * two per reply, at least). */
static void test_commands_without_poll_changes(void **state) {
  (void)state;
  fx_t f;
  fx_open_up(&f);
  nctl = 0;
  for (int k = 1; k <= 50; k++) {
    assert_int_equal(redisAsyncCommand(f.ac, on_reply, (void *)(intptr_t)k, "PING"), REDIS_OK);
    for (int i = 0; i < 100 && f.replies < k + 1; i++) fx_turn(&f, PING_LEN);
    assert_int_equal(f.replies, k + 1);
  }
  assert_false(f.order_broken);
  assert_true(nctl <= 2);
  fx_close(&f);
}

/* Several commands queued in one turn leave together and are answered in order. */
static void test_commands_of_a_turn_together(void **state) {
  (void)state;
  fx_t f;
  fx_open(&f);
  for (int k = 0; k < 20; k++)
    assert_int_equal(redisAsyncCommand(f.ac, on_reply, (void *)(intptr_t)k, "PING"), REDIS_OK);
  for (int i = 0; i < 200 && f.replies < 20; i++) fx_turn(&f, PING_LEN);
  assert_int_equal(f.replies, 20);
  assert_false(f.order_broken);
  fx_close(&f);
}

/* A command larger than the socket takes at once: the rest waits for the socket to drain
 * (the poll's writable event) and the whole of it arrives, then its reply. */
static void test_large_command_written_in_full(void **state) {
  (void)state;
  fx_t f;
  fx_open_up(&f);
  size_t big = 16u << 20; /* far more than loopback's socket buffers */
  char *v = malloc(big);
  memset(v, 'x', big);
  assert_int_equal(redisAsyncCommand(f.ac, on_reply, (void *)(intptr_t)1, "SET k %b", v, big), REDIS_OK);
  free(v);
  char hdr[64];
  size_t want = strlen("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n") + (size_t)snprintf(hdr, sizeof hdr, "$%zu\r\n", big) + big + 2;
  uv_run(&f.loop, UV_RUN_NOWAIT); /* the first write: the socket takes only part */
  assert_int_equal(f.replies, 1);
  for (int i = 0; i < 100000 && f.replies < 2; i++) fx_turn(&f, want);
  assert_int_equal(f.replies, 2);
  assert_int_equal(f.got, 0);
  assert_false(f.order_broken);
  fx_close(&f);
}

/* A command queued in the check phase after the adapter's own check handle ran (as a
 * worker's acks and publishes made in its drain: net/worker.c) waits for the next
 * iteration's idle phase — after the worker wrote its clients' output. uvredis_write_now
 * writes it at once: the fake Redis has it before the callback that queued it returns
 * (bus_write_out: an ack never leaves before its publish). */
static int late_now;      /* late_cb calls uvredis_write_now */
static ssize_t late_seen; /* bytes the fake Redis had when late_cb returned */

static void late_cb(uv_check_t *h) {
  fx_t *f = h->data;
  uv_check_stop(h);
  assert_int_equal(redisAsyncCommand(f->ac, on_reply, (void *)(intptr_t)(f->replies), "PING"), REDIS_OK);
  if (late_now) uvredis_write_now(f->ac);
  char b[256];
  ssize_t n = read(f->sfd, b, sizeof b);
  late_seen = n > 0 ? n : 0;
  f->got += (size_t)late_seen;
}

static void test_write_now_writes_what_waits(void **state) {
  (void)state;
  fx_t f;
  fx_open_up(&f);
  uv_check_t late;
  uv_check_init(&f.loop, &late);
  late.data = &f;
  for (late_now = 0; late_now <= 1; late_now++) {
    uv_check_start(&late, late_cb);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(late_seen, late_now ? PING_LEN : 0); /* without it: not yet written */
    for (int i = 0; i < 100 && f.replies < 2 + late_now; i++) fx_turn(&f, PING_LEN);
    assert_int_equal(f.replies, 2 + late_now);
  }
  assert_false(f.order_broken);
  uv_close((uv_handle_t *)&late, NULL);
  fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_commands_without_poll_changes),
      cmocka_unit_test(test_commands_of_a_turn_together),
      cmocka_unit_test(test_large_command_written_in_full),
      cmocka_unit_test(test_write_now_writes_what_waits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
