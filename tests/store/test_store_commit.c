/* test_store_commit.c — conformance: the durability contract of store.h's write jobs on
 * every backend of st_backends.
 *
 *   - completions of one worker's jobs run in the order that worker submitted them
 *     (attribute updates among themselves: they commit in rounds of their own);
 *   - a completion runs only once its job is committed: a reader opened beside the store
 *     sees the job's effect when the completion runs, and so does the store reopened;
 *   - a commit that fails fails every job of it, and keeps none of them; a job that fails
 *     alone (a key taken) fails alone;
 *   - attribute-update rounds: many updates of one document, merged or not, apply in order;
 *   - crash recovery: a child process submitting jobs is SIGKILLed mid-stream; reopened,
 *     every job whose completion ran is there, and no job is there in part;
 *   - the import job: records applied in order in one job, imported ids mapped to keys.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <string.h>

#include "err.h"
#include "metrics.h"
#include "st_util.h"

static const char *const AB[] = {"alice", "bob", NULL};

#define NORDER 400

/* Jobs from four workers, submitted as fast as they come with a commit interval, so that
 * batches hold many jobs of each worker: per worker, completions run in submission order. */
static void completions_in_submission_order_per_worker(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 500);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  job_msg_insert_t *m = calloc(NORDER, sizeof *m);
  size_t base = t->ndone;
  for (int i = 0; i < NORDER; i++) {
    st_msg_fill(t, &m[i], i % ST_WORKERS, conv, 2000 + i / 50, i + 1, "alice", "x", 0);
    store_submit(t->s, &m[i].job);
  }
  st_wait_done(t, base + NORDER);
  assert_true(t->posts < NORDER + 1); /* some batches did carry several jobs */
  int last[ST_WORKERS] = {-1, -1, -1, -1};
  for (size_t k = base; k < t->ndone; k++) {
    job_msg_insert_t *j = (job_msg_insert_t *)t->done[k];
    int i = (int)(j - m);
    assert_true(i >= 0 && i < NORDER);
    assert_int_equal(j->job.result, 0);
    assert_true(i > last[i % ST_WORKERS]); /* after every earlier job of its worker */
    last[i % ST_WORKERS] = i;
  }
  for (int i = 0; i < NORDER; i++) st_msg_free(&m[i]);
  free(m);
  st_close(t);
}

/* The completion checks, through a second reader, that its message is readable: an ack
 * sent from here could never announce a message that is not yet committed. */
static store_reader_t *ack_reader;
static int ack_visible, ack_ran;

static int found_cb(void *arg, const msg_view_t *m) {
  (void)m;
  (*(int *)arg)++;
  return 0;
}

static void ack_fn(task_t *task) {
  job_msg_insert_t *j = (job_msg_insert_t *)task;
  int n = 0;
  store_msg_get(ack_reader, j->conv, j->ts, j->seq, found_cb, &n);
  ack_visible += n == 1;
  ack_ran++;
}

static void completion_only_after_commit(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 200);
  ack_reader = store_reader_new(t->s);
  ack_visible = ack_ran = 0;
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  enum { N = 200 };
  job_msg_insert_t *m = calloc(N, sizeof *m);
  for (int i = 0; i < N; i++) {
    st_msg_fill(t, &m[i], 0, conv, 2000, i + 1, "alice", "x", 0);
    m[i].job.task.fn = ack_fn;
    store_submit(t->s, &m[i].job);
  }
  while (ack_ran < N) st_wait_any(t);
  assert_int_equal(ack_visible, N);
  /* and the store reopened has every one */
  store_reader_free(ack_reader);
  st_reopen(t);
  logs_req_t q = {.conv = conv, .limit = 1000};
  int n = 0;
  assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0);
  assert_int_equal(n, N);
  for (int i = 0; i < N; i++) st_msg_free(&m[i]);
  free(m);
  st_close(t);
}

/* A commit that fails (store_fail_writes: as if the disk were full) fails every job it
 * holds, and none of them is kept. */
static void failed_commit_fails_every_job(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 2000);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  store_fail_writes(t->s, 1);
  enum { N = 20 };
  job_msg_insert_t m[N];
  job_progress_t ack = {0};
  job_members_t add = {0};
  size_t base = t->ndone;
  for (int i = 0; i < N; i++) {
    st_msg_fill(t, &m[i], i % 2, conv, 2000, i + 1, "alice", "x", 0);
    store_submit(t->s, &m[i].job);
  }
  st_job_init(t, &ack.job, JOB_MEMBER_ACK, 0);
  ack.conv = conv;
  ack.client = st_dup("bob");
  ack.ts = 2000;
  ack.seq = 5;
  store_submit(t->s, &ack.job);
  st_job_init(t, &add.job, JOB_MEMBERS_ADD, 1);
  add.conv = conv;
  static const char *const c[] = {"carol", NULL};
  add.clients = st_list(c, &add.n);
  store_submit(t->s, &add.job);
  st_wait_done(t, base + N + 2);
  for (int i = 0; i < N; i++) assert_int_equal(m[i].job.result, TERN_ESTORE);
  assert_int_equal(ack.job.result, TERN_ESTORE);
  assert_int_equal(add.job.result, TERN_ESTORE);
  store_fail_writes(t->s, 0);
  int n = 0;
  logs_req_t q = {.conv = conv, .limit = 100};
  assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0);
  assert_int_equal(n, 0);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "c", &row), 0);
  assert_int_equal(row.nmembers, 2);
  conv_row_free(&row);
  /* and the store works again once writes do */
  assert_int_equal(st_msg_insert(t, conv, 2000, 1, "alice", "x", 0), 0);
  for (int i = 0; i < N; i++) st_msg_free(&m[i]);
  free(ack.client);
  st_list_free(add.clients, add.n);
  st_close(t);
}

/* A job that fails on its own (its key is taken) fails alone: the jobs beside it in the
 * same batch commit. */
static void failing_job_fails_alone(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 2000);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  job_msg_insert_t a, dup, b;
  st_msg_fill(t, &a, 0, conv, 2000, 1, "alice", "a", 0);
  st_msg_fill(t, &dup, 0, conv, 2000, 1, "alice", "dup", 0);
  st_msg_fill(t, &b, 0, conv, 2000, 2, "alice", "b", 0);
  size_t base = t->ndone;
  store_submit(t->s, &a.job);
  store_submit(t->s, &dup.job);
  store_submit(t->s, &b.job);
  st_wait_done(t, base + 3);
  assert_int_equal(a.job.result, 0);
  assert_int_equal(dup.job.result, TERN_ESTORE);
  assert_int_equal(b.job.result, 0);
  st_msgs_t g = {0};
  logs_req_t q = {.conv = conv, .newer = 1, .limit = 10};
  assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &g), 0);
  assert_int_equal(g.n, 2);
  assert_string_equal(g.text[0], "a");
  assert_string_equal(g.text[1], "b");
  st_msg_free(&a);
  st_msg_free(&dup);
  st_msg_free(&b);
  st_close(t);
}

/* Many messages committed together (a backend may write them in one statement): every
 * byte of the content, ids and senders with quotes, backslashes, commas and braces, a
 * sender named NULL, readers, mentions and lctype survive; a key taken in the middle of the
 * run — by a stored message or by an earlier one of the same run — fails that job alone. */
static int raw_cb(void *arg, const msg_view_t *m) {
  st_msgs_t *c = arg;
  assert_int_equal(m->len, 256);
  for (int b = 0; b < 256; b++) assert_int_equal(m->data[b], (uint8_t)(b + c->n));
  snprintf(c->sender[c->n % 64], sizeof c->sender[0], "%s", m->sender);
  c->n++;
  return 0;
}

static void batched_messages_keep_every_byte(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 5000);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  assert_int_equal(st_msg_insert(t, conv, 2000, 100, "alice", "stored first", 0), 0);
  enum { N = 40 };
  job_msg_insert_t m[N];
  static const char *const senders[] = {"a\"b", "back\\slash", "com,ma", "{brace}", "NULL", "sp ace", "\u00e9t\u00e9"};
  size_t base = t->ndone;
  for (int i = 0; i < N; i++) {
    st_msg_fill(t, &m[i], 0, conv, 2000, i == 20 ? 3 : i == 7 ? 100 : i + 1, senders[i % 7], "", 0);
    free(m[i].data);
    m[i].data = malloc(256);
    for (int b = 0; b < 256; b++) m[i].data[b] = (uint8_t)(b + i);
    m[i].len = 256;
    if (i % 3 == 0)
      m[i].readers = st_dup("\x1f"
                            "bob"
                            "\x1f");
    if (i % 4 == 0) m[i].mentions = st_dup("[\"bob\",\"q\\\"uote\"]");
    m[i].has_lctype = i % 2;
    m[i].lctype = -i;
    store_submit(t->s, &m[i].job);
  }
  st_wait_done(t, base + N);
  /* and without a statement failing on the way (a backend that reruns a batch job by job
   * after one says so: PostgreSQL's tern_store_pg_batch_reruns_total) */
  buf_t mt = BUF_INIT;
  store_metrics(t->s, &mt);
  const char *rr = strstr(buf_cstr(&mt), "\ntern_store_pg_batch_reruns_total ");
  if (rr) assert_int_equal(atoi(rr + strlen("\ntern_store_pg_batch_reruns_total ")), 0);
  buf_free(&mt);
  for (int i = 0; i < N; i++) /* 7 (seq 100): taken by the stored one; 20 (seq 3): by i = 2 */
    assert_int_equal(m[i].job.result, i == 7 || i == 20 ? TERN_ESTORE : 0);
  logs_req_t q = {.conv = conv, .newer = 1, .limit = 100};
  st_msgs_t all = {0};
  assert_int_equal(store_logs(t->r, &q, found_cb, &all.n), 0);
  assert_int_equal(all.n, N - 2 + 1);
  for (int i = 0; i < N; i++) {
    if (i == 7 || i == 20) continue;
    st_msgs_t one = {.n = i};
    assert_int_equal(store_msg_get(t->r, conv, 2000, i + 1, raw_cb, &one), 0);
    assert_int_equal(one.n, i + 1);
    assert_string_equal(one.sender[i % 64], senders[i % 7]);
  }
  logs_req_t carol = {.conv = conv, .newer = 1, .limit = 100, .viewer = "carol"}; /* not a reader of 1 in 3 */
  int seen = 0;
  assert_int_equal(store_logs(t->r, &carol, found_cb, &seen), 0);
  assert_int_equal(seen, all.n - 14); /* 0, 3, …, 39 */
  for (int i = 0; i < N; i++) st_msg_free(&m[i]);
  st_close(t);
}

/* Attribute updates of one document, submitted together with messages: each completes
 * with 0 once its change is committed, they complete in their submission order, and the
 * document ends as applying them in order gives. */
static void attribute_update_rounds(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 500);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, "{\"attr\":{}}", 1000, NULL);
  enum { N = 30 };
  job_conv_update_t u[N];
  job_msg_insert_t m[N];
  size_t base = t->ndone;
  for (int i = 0; i < N; i++) {
    memset(&u[i], 0, sizeof u[i]);
    st_job_init(t, &u[i].job, JOB_CONV_UPDATE, 0);
    u[i].conv = conv;
    u[i].updated_at = 2000 + i;
    u[i].n = i % 3 == 2 ? 2 : 1;
    u[i].changes = calloc(2, sizeof *u[i].changes);
    char v[32];
    snprintf(v, sizeof v, "%d", i);
    u[i].changes[0] = st_change("attr|n", v);
    if (u[i].n == 2) /* and a key that comes and goes */
      u[i].changes[1] = st_change("attr|flip", i % 2 ? "true" : NULL);
    store_submit(t->s, &u[i].job);
    st_msg_fill(t, &m[i], 0, conv, 3000, i + 1, "alice", "x", 0);
    store_submit(t->s, &m[i].job);
  }
  st_wait_done(t, base + 2 * N);
  long prev = -1;
  for (int i = 0; i < N; i++) {
    assert_int_equal(u[i].job.result, 0);
    assert_int_equal(m[i].job.result, 0);
    long at = st_done_index(t, &u[i].job);
    assert_true(at > prev);
    prev = at;
  }
  char *doc = NULL;
  assert_int_equal(store_conv_doc(t->r, conv, &doc), 0);
  json_t *d = json_loads(doc, 0, NULL);
  assert_non_null(d);
  json_t *attr = json_object_get(d, "attr");
  assert_int_equal(json_integer_value(json_object_get(attr, "n")), N - 1);
  /* the last update touching flip was i = 29 (odd): true */
  assert_true(json_is_true(json_object_get(attr, "flip")));
  json_decref(d);
  free(doc);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "c", &row), 0);
  assert_int_equal(row.updated_at, 2000 + N - 1);
  conv_row_free(&row);
  for (int i = 0; i < N; i++) {
    doc_changes_free(u[i].changes, u[i].n);
    st_msg_free(&m[i]);
  }
  st_close(t);
}

/* ---- crash recovery */

/* The child: opens the store, creates the conversation, then submits forever — messages,
 * member additions of five clients at once, and imports of ten messages at once — and
 * writes to the pipe, from each completion, which job committed. The parent kills it. */
enum { REC_MSG = 1, REC_MEMBERS = 2, REC_IMPORT = 3 };
typedef struct {
  int kind;
  int n;
} rec_t;

static int child_fd;

static void child_done(task_t *task) {
  store_job_t *j = (store_job_t *)task;
  rec_t r = {0, 0};
  if (j->type == JOB_MSG_INSERT) r = (rec_t){REC_MSG, (int)((job_msg_insert_t *)j)->seq};
  else if (j->type == JOB_MEMBERS_ADD) r = (rec_t){REC_MEMBERS, (int)((job_members_t *)j)->seen_seq};
  else if (j->type == JOB_IMPORT) r = (rec_t){REC_IMPORT, (int)((job_import_t *)j)->ops[0].line};
  if (j->result == 0 && write(child_fd, &r, sizeof r) != sizeof r) _exit(3);
}

static void import_fill(job_import_t *im, int round) {
  im->n = 10;
  im->ops = calloc(im->n, sizeof *im->ops);
  for (size_t k = 0; k < im->n; k++) {
    import_op_t *op = &im->ops[k];
    op->type = IMP_MSG;
    op->line = round;
    op->cid = st_dup("crash");
    char mid[32];
    snprintf(mid, sizeof mid, "imp-%d-%zu", round, k);
    op->mid = st_dup(mid);
    op->sender = st_dup("alice");
    op->ts = 500; /* below the live messages; the store picks the seq */
    op->data = (uint8_t *)st_dup("imported");
    op->len = 8;
  }
}

static void import_free(job_import_t *im) {
  for (size_t k = 0; k < im->n; k++) {
    free(im->ops[k].cid);
    free(im->ops[k].mid);
    free(im->ops[k].sender);
    free(im->ops[k].data);
  }
  free(im->ops);
  for (size_t k = 0; k < im->ntouched; k++) free(im->touched[k].cid);
  free(im->touched);
}

static void member_names(int round, const char *names[6], char buf[5][24]) {
  for (int k = 0; k < 5; k++) {
    snprintf(buf[k], 24, "m%05d-%d", round, k);
    names[k] = buf[k];
  }
  names[5] = NULL;
}

static void child_main(st_t *t, int fd) {
  child_fd = fd;
  int64_t conv = st_conv_create(t, "crash", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  if (conv <= 0) _exit(2);
  rec_t ready = {0, (int)conv};
  if (write(fd, &ready, sizeof ready) != sizeof ready) _exit(3);
  enum { WINDOW = 64 }; /* jobs in flight at once */
  for (int round = 1;; round++) {
    /* leaked on purpose: the process dies with them in flight */
    store_job_t *j;
    if (round % 7 == 0) {
      job_members_t *mj = calloc(1, sizeof *mj);
      st_job_init(t, &mj->job, JOB_MEMBERS_ADD, 0);
      mj->conv = conv;
      mj->seen_seq = round;
      const char *names[6];
      char buf[5][24];
      member_names(round, names, buf);
      mj->clients = st_list(names, &mj->n);
      j = &mj->job;
    } else if (round % 11 == 0) {
      job_import_t *im = calloc(1, sizeof *im);
      st_job_init(t, &im->job, JOB_IMPORT, 0);
      import_fill(im, round);
      j = &im->job;
    } else {
      job_msg_insert_t *m = calloc(1, sizeof *m);
      st_msg_fill(t, m, 0, conv, 2000 + round / 100, round, "alice", "crash", 0);
      j = &m->job;
    }
    j->task.fn = child_done;
    store_submit(t->s, j);
    if (round % WINDOW == 0) st_run(t);
  }
}

static void crash_recovery(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 200);
  /* the child opens its own store on the same place: close ours first */
  store_reader_free(t->r);
  store_close(t->s);
  t->s = NULL;
  t->r = NULL;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child_main(st_attach(t, 200), fds[1]);
    _exit(0);
  }
  close(fds[1]);
  rec_t ready;
  assert_int_equal(read(fds[0], &ready, sizeof ready), (ssize_t)sizeof ready);
  int64_t conv = ready.n;
  /* let it commit for a while: a few thousand completions */
  enum { WANT = 3000 };
  rec_t *seen = calloc(WANT * 2, sizeof *seen);
  size_t nseen = 0;
  while (nseen < WANT) {
    ssize_t k = read(fds[0], &seen[nseen], sizeof *seen);
    assert_int_equal(k, (ssize_t)sizeof *seen);
    nseen++;
  }
  kill(pid, SIGKILL);
  /* what it wrote before the signal landed ran after a commit too */
  for (;;) {
    if (nseen == WANT * 2) break;
    ssize_t k = read(fds[0], &seen[nseen], sizeof *seen);
    if (k != (ssize_t)sizeof *seen) break;
    nseen++;
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  close(fds[0]);
  st_reopen(t);
  /* every completion that ran: there */
  int msgs = 0, members = 0, imports = 0;
  for (size_t i = 0; i < nseen; i++) {
    if (seen[i].kind == REC_MSG) {
      int n = 0;
      store_msg_get(t->r, conv, 2000 + seen[i].n / 100, seen[i].n, found_cb, &n);
      assert_int_equal(n, 1);
      msgs++;
    } else if (seen[i].kind == REC_MEMBERS) {
      members++;
    } else if (seen[i].kind == REC_IMPORT) {
      imports++;
    }
  }
  assert_true(msgs > 0 && members > 0 && imports > 0);
  /* and nothing in part: each member addition has all five clients or none, each import
   * all ten messages or none; the ones that completed have all */
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "crash", &row), 0);
  int max_round = 0;
  for (size_t i = 0; i < nseen; i++)
    if (seen[i].n > max_round) max_round = seen[i].n;
  for (int round = 7; round <= max_round + 2000; round += 7) {
    const char *names[6];
    char buf[5][24];
    member_names(round, names, buf);
    int have = 0;
    for (int k = 0; k < 5; k++)
      for (size_t i = 0; i < row.nmembers; i++)
        if (strcmp(row.members[i], names[k]) == 0) have++;
    assert_true(have == 0 || have == 5);
  }
  for (int round = 11; round <= max_round + 2000; round += 11) {
    int have = 0;
    for (int k = 0; k < 10; k++) {
      char mid[32];
      int64_t ts, seq;
      snprintf(mid, sizeof mid, "imp-%d-%d", round, k);
      if (store_msg_ext_get(t->r, conv, mid, &ts, &seq) == 0) {
        int n = 0;
        store_msg_get(t->r, conv, ts, seq, found_cb, &n);
        assert_int_equal(n, 1);
        have++;
      }
    }
    assert_true(have == 0 || have == 10);
  }
  for (size_t i = 0; i < nseen; i++) {
    if (seen[i].kind == REC_MEMBERS) {
      const char *names[6];
      char buf[5][24];
      member_names(seen[i].n, names, buf);
      int have = 0;
      for (size_t k = 0; k < row.nmembers; k++)
        if (strcmp(row.members[k], names[0]) == 0) have = 1;
      assert_true(have);
    } else if (seen[i].kind == REC_IMPORT) {
      char mid[32];
      int64_t ts, seq;
      snprintf(mid, sizeof mid, "imp-%d-9", seen[i].n);
      assert_int_equal(store_msg_ext_get(t->r, conv, mid, &ts, &seq), 0);
    }
  }
  conv_row_free(&row);
  free(seen);
  st_close(t);
}

/* ---- import */

static void import_job_and_imported_ids(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  job_import_t im = {0};
  st_job_init(t, &im.job, JOB_IMPORT, 0);
  im.n = 5;
  im.ops = calloc(im.n, sizeof *im.ops);
  /* 1: a conversation, created with exactly these columns */
  import_op_t *c = &im.ops[0];
  c->type = IMP_CONV;
  c->line = 1;
  c->cid = st_dup("imported-conv");
  c->conv = calloc(1, sizeof *c->conv);
  c->conv->cid = st_dup("imported-conv");
  c->conv->kind = CONV_NORMAL;
  c->conv->creator = st_dup("alice");
  c->conv->created_at = 1000;
  c->conv->updated_at = 1500;
  c->conv->members = st_list(AB, &c->conv->nmembers);
  c->doc = st_dup("{\"name\":\"old\"}");
  c->lm = 1700;
  /* 2, 3: messages with ids of their own; 3 with a seq the store picks */
  for (int k = 1; k <= 2; k++) {
    import_op_t *op = &im.ops[k];
    op->type = IMP_MSG;
    op->line = k + 1;
    op->cid = st_dup("imported-conv");
    op->mid = st_dup(k == 1 ? "cloud-id-1" : "cloud-id-2");
    op->sender = st_dup("bob");
    op->ts = 1600;
    op->seq = k == 1 ? 1 : 0;
    op->data = (uint8_t *)st_dup(k == 1 ? "first" : "second");
    op->len = strlen((char *)op->data);
  }
  /* 4: the first again with a newer patch: its content replaced */
  import_op_t *p = &im.ops[3];
  p->type = IMP_MSG;
  p->line = 4;
  p->cid = st_dup("imported-conv");
  p->mid = st_dup("cloud-id-1");
  p->sender = st_dup("bob");
  p->ts = 1600;
  p->seq = 1;
  p->patch_ts = 1800;
  p->data = (uint8_t *)st_dup("first, edited");
  p->len = strlen((char *)p->data);
  /* 5: a message of a conversation that is not there: skipped with a reason */
  import_op_t *s = &im.ops[4];
  s->type = IMP_MSG;
  s->line = 5;
  s->cid = st_dup("nowhere");
  s->mid = st_dup("cloud-id-3");
  s->sender = st_dup("bob");
  s->ts = 1600;
  s->data = (uint8_t *)st_dup("x");
  s->len = 1;
  assert_int_equal(st_submit_wait(t, &im.job), 0);
  assert_int_equal(im.ops[0].outcome, IMP_APPLIED);
  assert_int_equal(im.ops[1].outcome, IMP_APPLIED);
  assert_int_equal(im.ops[2].outcome, IMP_APPLIED);
  assert_int_equal(im.ops[3].outcome, IMP_APPLIED);
  assert_int_equal(im.ops[4].outcome, IMP_SKIPPED);
  assert_non_null(im.ops[4].reason);
  assert_int_equal(im.ntouched, 1);
  assert_string_equal(im.touched[0].cid, "imported-conv");
  assert_int_equal(im.touched[0].max_ts, 1600);
  assert_true(im.touched[0].max_seq >= 2);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "imported-conv", &row), 0);
  assert_int_equal(row.created_at, 1000);
  assert_int_equal(row.nmembers, 2);
  assert_int_equal(row.ext_ids, 1);
  int64_t conv = row.id;
  conv_row_free(&row);
  int64_t ts = 0, seq = 0, ts2 = 0, seq2 = 0;
  assert_int_equal(store_msg_ext_get(t->r, conv, "cloud-id-1", &ts, &seq), 0);
  assert_int_equal(ts, 1600);
  assert_int_equal(seq, 1);
  assert_int_equal(store_msg_ext_get(t->r, conv, "cloud-id-2", &ts2, &seq2), 0);
  assert_true(seq2 != seq); /* a free key at that time */
  assert_int_equal(store_msg_ext_get(t->r, conv, "cloud-id-3", &ts, &seq), TERN_ENOENT);
  assert_int_equal(store_msg_ext_find(t->r, "cloud-id-2", &ts, &seq), 0);
  assert_int_equal(seq, seq2);
  st_msgs_t g = {0};
  assert_int_equal(store_msg_get(t->r, conv, 1600, 1, st_msgs_cb, &g), 0);
  assert_int_equal(g.n, 1);
  assert_string_equal(g.text[0], "first, edited");
  /* the same request again changes nothing */
  for (size_t k = 0; k < im.n; k++) im.ops[k].outcome = 0;
  for (size_t k = 0; k < im.ntouched; k++) free(im.touched[k].cid);
  free(im.touched);
  im.touched = NULL;
  im.ntouched = 0;
  im.job.result = 1;
  assert_int_equal(st_submit_wait(t, &im.job), 0);
  assert_int_equal(im.ops[1].outcome, IMP_UNCHANGED);
  assert_int_equal(im.ops[3].outcome, IMP_UNCHANGED);
  assert_int_equal(im.ntouched, 0);
  conv_row_free(c->conv);
  free(c->conv);
  free(c->doc);
  import_free(&im);
  st_close(t);
}

/* SQLite's writer under paced jobs (issue #17): jobs that arrive while the commit interval
 * runs out are picked up when it ends, without a wake-up of their own, so the writer wakes
 * about once per commit, not twice (once for the job, once more for the interval's end). */
#define NPACED 100
static void paced_jobs_one_wakeup_per_commit(void **state) {
  (void)state;
  if (strcmp(st_current->name, "sqlite") != 0) skip(); /* a property of this backend's writer */
  st_t *t = st_open(st_current, 2000);
  int64_t conv = st_conv_create(t, "paced", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  job_msg_insert_t *m = calloc(NPACED, sizeof *m);
  size_t base = t->ndone;
  int posts0 = t->posts;
  int64_t wakes0 = metric_value(M_WRITER_WAKEUPS);
  for (int i = 0; i < NPACED; i++) { /* one job every 200 µs, all from worker 0: one post per commit */
    st_msg_fill(t, &m[i], 0, conv, 5000 + i, 1, "alice", "x", 0);
    store_submit(t->s, &m[i].job);
    usleep(200);
  }
  st_wait_done(t, base + NPACED);
  int64_t commits = (int64_t)(t->posts - posts0), wakes = metric_value(M_WRITER_WAKEUPS) - wakes0;
  for (int i = 0; i < NPACED; i++) {
    assert_int_equal(m[i].job.result, 0);
    st_msg_free(&m[i]);
  }
  free(m);
  st_close(t);
  print_message("paced: %lld commits, %lld writer wake-ups\n", (long long)commits, (long long)wakes);
  assert_true(commits >= 4 && commits < NPACED / 2); /* batches of several jobs */
  /* two per commit before; ~1 now, up to 1.2 on a machine busy past its cores (24 commits,
   * 29 wake-ups beside three spinning processes on two cores) */
  assert_true(2 * wakes <= 3 * commits);
}

/* SQLite's checkpointer under a writer that never pauses (store_sqlite_writer.c,
 * "Checkpoints"): its rounds beside the writer never copy every frame, so the WAL restarts
 * only through the held round at the end of its catch-up steps. Without that hold the WAL
 * would end at the size of everything written (a page or more a message here: each message
 * fills a leaf); with it the WAL restarts every ~8,192 frames and stays far below. */
#define NWAL 32000
static int64_t holds_so_far(void) { /* tern_store_checkpoint_hold_seconds_count */
  buf_t out = BUF_INIT;
  metrics_render(&out);
  const char *k = "\ntern_store_checkpoint_hold_seconds_count ", *at = strstr(buf_cstr(&out), k);
  int64_t n = at ? atoll(at + strlen(k)) : -1;
  buf_free(&out);
  return n;
}

static void wal_restarts_under_a_writer_that_never_pauses(void **state) {
  (void)state;
  if (strcmp(st_current->name, "sqlite") != 0) skip(); /* a property of this backend's checkpointer */
  st_hot_interval_us = 60 * 1000 * 1000; /* the messages stay in a hot table: one write each, as before it */
  st_t *t = st_open(st_current, 0);
  st_hot_interval_us = 0;
  int64_t conv = st_conv_create(t, "wal", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  static char text[3001];
  memset(text, 'w', sizeof text - 1);
  job_msg_insert_t *m = calloc(NWAL, sizeof *m);
  size_t base = t->ndone;
  int64_t holds0 = holds_so_far(), frames0 = metric_value(M_WAL_FRAMES);
  for (int i = 0; i < NWAL; i++) { /* all queued at once: the writer commits batch after batch */
    st_msg_fill(t, &m[i], 0, conv, 10000 + i, 1, "alice", text, 0);
    store_submit(t->s, &m[i].job);
  }
  st_wait_done(t, base + NWAL);
  int64_t holds = holds_so_far() - holds0, frames = metric_value(M_WAL_FRAMES) - frames0;
  char wal[600];
  snprintf(wal, sizeof wal, "%s-wal", t->path);
  struct stat st;
  assert_int_equal(stat(wal, &st), 0);
  for (int i = 0; i < NWAL; i++) {
    assert_int_equal(m[i].job.result, 0);
    st_msg_free(&m[i]);
  }
  free(m);
  st_close(t);
  print_message("wal: %lld MB after %lld MB written (%d messages of 3 KB), %lld held rounds\n",
                (long long)(st.st_size >> 20), (long long)(frames * 4096 >> 20), NWAL, (long long)holds);
  assert_true(holds >= 1);
  /* restarted: well under what was written (the file keeps up to journal_size_limit, 64 MiB,
   * of its largest size; new messages, in a hot table, write ~126 MB here) */
  assert_true(st.st_size < frames * 4096 * 3 / 4);
}

/* The same writer, and a reader that keeps one snapshot while NWAL_PINNED messages are
 * committed, as a backup or a long history read does: no checkpoint round can copy past
 * its snapshot meanwhile, and the WAL cannot restart. When it lets go, the WAL holds more
 * than a cycle's worth of frames not yet copied. Before, the checkpointer then skipped its
 * catch-up steps (bounded by the WAL's size) or held the writer while it copied them, and
 * the held round flushed them all, about NWAL_PINNED pages (a missed restart at 25,000
 * messages/s did the same with ~8,000: bench/README.md, "Short holds at 25,000–50,000/s").
 * Now the steps count the frames since the cycle began, no hold is taken while a reader
 * keeps the rounds from copying, and every held round's flush stays under CKPT_FRAMES
 * (8,192; half of it on a quiet machine). Counted by tern_store_checkpoint_hold_frames, not
 * timed. */
#define NWAL_AHEAD 256
#define NWAL_PINNED 12000

static int64_t hold_frames_over(int64_t bound, int64_t *count) { /* tern_store_checkpoint_hold_frames */
  buf_t out = BUF_INIT;
  metrics_render(&out);
  char k[96];
  snprintf(k, sizeof k, "\ntern_store_checkpoint_hold_frames_bucket{le=\"%lld\"} ", (long long)bound);
  const char *c = "\ntern_store_checkpoint_hold_frames_count ", *at = strstr(buf_cstr(&out), k),
             *cat = strstr(buf_cstr(&out), c);
  *count = cat ? atoll(cat + strlen(c)) : -1;
  int64_t over = at && cat ? *count - atoll(at + strlen(k)) : -1;
  buf_free(&out);
  return over;
}

/* SQLite's hot tables (store_sqlite_hot.c): a message is read exactly once whichever table
 * it is in — the active one, the one moving into msg (before and after the watermark), or
 * msg — across a reopen in the middle of a move; an update or delete of a moved message
 * leaves no trace in the stale copy the moving table still holds; and every message ends up
 * in msg. The harness moves two conversations a step, one step a commit. */
#define HOT_CONVS 24
#define HOT_ROUNDS 6

typedef struct {
  sqlite3 *db;
  int partial; /* times a move was seen half done */
} hot_side_t;

/* The one value sql selects (?1, if any, bound to arg). */
static int64_t hot_value(hot_side_t *h, const char *sql, int64_t arg) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(h->db, sql, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_bind_parameter_count(st)) sqlite3_bind_int64(st, 1, arg);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

static void hot_lm_cb(void *arg, const conv_view_t *c) { *(int64_t *)arg = c->has_lm ? c->lm : -1; }

/* Every conversation reads back its messages 0..sent[c]-1, once each, in order, and its
 * newest time the same way queries see it (QUERY_LM_SQL: the newest of the three tables). */
static void hot_check(st_t *t, hot_side_t *h, const int64_t *conv, const int *sent) {
  int total = 0;
  for (int c = 0; c < HOT_CONVS; c++) {
    st_msgs_t g = {0};
    logs_req_t q = {.conv = conv[c], .limit = 50, .newer = 1};
    assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &g), 0);
    assert_int_equal(g.n, sent[c]);
    for (int i = 0; i < g.n; i++) assert_int_equal(g.ts[i], 2000 + i);
    conv_row_t row;
    char cid[16];
    snprintf(cid, sizeof cid, "hot%d", c);
    assert_int_equal(store_conv_load(t->r, cid, &row), 0);
    assert_int_equal(row.last_ts, sent[c] ? 2000 + sent[c] - 1 : 0);
    conv_row_free(&row);
    const char *cids[1] = {cid};
    int64_t lm = 0;
    assert_int_equal(store_conv_fetch(t->r, cids, 1, 0, hot_lm_cb, &lm), 0);
    if (sent[c]) assert_int_equal(lm, 2000 + sent[c] - 1);
    total += sent[c];
  }
  assert_int_equal(hot_value(h, "SELECT count(*) FROM msg_all", 0), total);
  if (hot_value(h, "SELECT draining >= 0 AND upto > 0 FROM msg_hot_state", 0)) h->partial++;
}

/* The SQLite backend's reader connection (store_sqlite_int.h, not a header tests see). */
sqlite3 *store_reader_db(store_reader_t *r);

/* Every prepared read of one conversation's messages walks the three tables' keys in order
 * and stops at its LIMIT: no sort of the conversation's rows, no scan of a table. (A
 * compound view is merged in key order only when the ORDER BY columns are selected.) */
static void hot_reads_seek(st_t *t, hot_side_t *h) {
  char *mid = NULL;
  int64_t ts, newest;
  store_msg_by_dt(t->r, 1, "alice", 7, 0, &mid, &ts, &newest); /* prepared on first use */
  free(mid);
  int checked = 0;
  for (sqlite3_stmt *st = sqlite3_next_stmt(store_reader_db(t->r), NULL); st;
       st = sqlite3_next_stmt(store_reader_db(t->r), st)) {
    const char *sql = sqlite3_sql(st);
    if (!strstr(sql, "msg_all WHERE conv = ?1")) continue;
    char plan_sql[2048];
    snprintf(plan_sql, sizeof plan_sql, "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *p;
    assert_int_equal(sqlite3_prepare_v2(h->db, plan_sql, -1, &p, NULL), SQLITE_OK);
    while (sqlite3_step(p) == SQLITE_ROW) {
      const char *step = (const char *)sqlite3_column_text(p, 3);
      int scan = strncmp(step, "SCAN msg", 8) == 0 && strncmp(step, "SCAN msg_hot_state", 18) != 0;
      if (strstr(step, "TEMP B-TREE") || scan) fail_msg("%s\n  plans: %s", sql, step);
    }
    sqlite3_finalize(p);
    checked++;
  }
  print_message("hot tables: %d reads of a conversation seek\n", checked);
  assert_true(checked >= 8);
}

static void hot_tables_hold_every_message_once(void **state) {
  (void)state;
  if (strcmp(st_current->name, "sqlite") != 0) skip(); /* this backend's layout */
  st_hot_interval_us = 60 * 1000 * 1000;               /* first every message stays in the active table */
  st_t *t = st_open(st_current, 0);
  hot_side_t h = {0};
  assert_int_equal(sqlite3_open_v2(t->path, &h.db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  int64_t conv[HOT_CONVS];
  int sent[HOT_CONVS] = {0};
  for (int c = 0; c < HOT_CONVS; c++) {
    char cid[16];
    snprintf(cid, sizeof cid, "hot%d", c);
    conv[c] = st_conv_create(t, cid, CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  }
  for (int r = 0; r < HOT_ROUNDS; r++)
    for (int c = 0; c < HOT_CONVS; c++) {
      assert_int_equal(st_msg_insert(t, conv[c], 2000 + sent[c], 1, "alice", "m", 0), 0);
      sent[c]++;
      hot_check(t, &h, conv, sent);
    }
  assert_int_equal(hot_value(&h, "SELECT count(*) FROM msg", 0), 0);
  /* then it moves at the next commit, two conversations a commit (commits to conversation 0);
   * the state of a half-done move survives the store's restart */
  st_hot_interval_us = 0;
  st_reopen(t);
  hot_check(t, &h, conv, sent);
  for (int i = 0; i < 4 && !h.partial; i++) {
    assert_int_equal(st_msg_insert(t, conv[0], 2000 + sent[0], 1, "alice", "m", 0), 0);
    sent[0]++;
    hot_check(t, &h, conv, sent);
  }
  assert_true(h.partial);
  st_reopen(t);
  hot_check(t, &h, conv, sent);
  /* a message that moved but whose stale copy is still in the moving table, the newest of
   * its conversation: its delete and its patch must not show through the copy. Commits (to
   * conversation 0) go on until a move has one. */
  static const char *const stale =
      "SELECT coalesce((SELECT h.conv FROM msg_hot_state s, msg_hot0 h WHERE s.draining = 0 AND h.conv <= s.upto"
      " AND h.conv <> ?1 AND h.ts = (SELECT max(ts) FROM msg WHERE conv = h.conv) UNION ALL"
      " SELECT h.conv FROM msg_hot_state s, msg_hot1 h WHERE s.draining = 1 AND h.conv <= s.upto"
      " AND h.conv <> ?1 AND h.ts = (SELECT max(ts) FROM msg WHERE conv = h.conv) LIMIT 1), 0)";
  int64_t victim = 0;
  for (int i = 0; i < 8 * HOT_CONVS && !(victim = hot_value(&h, stale, conv[0])); i++) {
    assert_int_equal(st_msg_insert(t, conv[0], 2000 + sent[0], 1, "alice", "m", 0), 0);
    sent[0]++;
  }
  int c = 0;
  while (c < HOT_CONVS && conv[c] != victim) c++;
  assert_true(c < HOT_CONVS);
  assert_int_equal(st_msg_patch(t, JOB_MSG_PATCH, conv[c], 2000 + sent[c] - 2, 1, "edited", 9000), 0);
  assert_int_equal(st_msg_patch(t, JOB_MSG_DELETE, conv[c], 2000 + sent[c] - 1, 1, NULL, 0), 0);
  sent[c]--;
  /* the move is still under way: the copy would still be there, had the delete missed it */
  assert_true(hot_value(&h, "SELECT upto FROM msg_hot_state WHERE draining >= 0", 0) >= victim);
  hot_check(t, &h, conv, sent); /* its newest time is the one before: the stale copy took no part */
  st_msgs_t g = {0};
  assert_int_equal(store_msg_get(t->r, conv[c], 2000 + sent[c] - 1, 1, st_msgs_cb, &g), 0);
  assert_int_equal(g.n, 1);
  assert_string_equal(g.text[0], "edited");
  /* the key of a moved message is taken */
  assert_int_equal(st_msg_insert(t, conv[0], 2000, 1, "alice", "again", 0), TERN_ESTORE);
  /* commits go on moving: every message stored so far ends up in msg */
  int64_t before = 0;
  for (int c2 = 0; c2 < HOT_CONVS; c2++) before += sent[c2];
  for (int i = 0; i < 8 * HOT_CONVS && hot_value(&h, "SELECT count(*) FROM msg", 0) < before; i++) {
    assert_int_equal(st_msg_insert(t, conv[1], 2000 + sent[1], 1, "alice", "m", 0), 0);
    sent[1]++;
  }
  assert_true(hot_value(&h, "SELECT count(*) FROM msg", 0) >= before);
  hot_check(t, &h, conv, sent);
  hot_reads_seek(t, &h);
  print_message("hot tables: %d checks saw a move half done\n", h.partial);
  sqlite3_close(h.db);
  st_close(t);
}

/* A conversation with several messages in one commit already shares its msg leaf among
 * them: they go straight into msg, not through a hot table (two writes each). Nothing moves
 * here (a minute's hot interval): what msg holds came straight. */
static void hot_tables_skip_a_conversation_s_repeats(void **state) {
  (void)state;
  if (strcmp(st_current->name, "sqlite") != 0) skip(); /* this backend's layout */
  st_hot_interval_us = 60 * 1000 * 1000;
  st_t *t = st_open(st_current, 100000); /* a commit at most every 100 ms: the four below share one */
  st_hot_interval_us = 0;
  hot_side_t h = {0};
  assert_int_equal(sqlite3_open_v2(t->path, &h.db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  int64_t a = st_conv_create(t, "rep-a", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  int64_t b = st_conv_create(t, "rep-b", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  job_msg_insert_t m[5] = {0};
  size_t base = t->ndone;
  for (int i = 0; i < 5; i++) { /* four of a, one of b */
    st_msg_fill(t, &m[i], 0, i < 4 ? a : b, 2000 + i, 1, "alice", "r", 0);
    store_submit(t->s, &m[i].job);
  }
  st_wait_done(t, base + 5);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(m[i].job.result, 0);
    st_msg_free(&m[i]);
  }
  assert_int_equal(hot_value(&h, "SELECT count(*) FROM msg WHERE conv = ?1", a), 4);
  assert_int_equal(hot_value(&h, "SELECT count(*) FROM msg WHERE conv = ?1", b), 0);
  assert_int_equal(hot_value(&h, "SELECT count(*) FROM msg_all WHERE conv = ?1", b), 1);
  /* a's keys are taken in msg; the next of b goes on in the hot table */
  assert_int_equal(st_msg_insert(t, a, 2001, 1, "alice", "again", 0), TERN_ESTORE);
  assert_int_equal(st_msg_insert(t, b, 2005, 1, "alice", "r", 0), 0);
  st_msgs_t g = {0};
  logs_req_t q = {.conv = a, .limit = 10, .newer = 1};
  assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &g), 0);
  assert_int_equal(g.n, 4);
  for (int i = 0; i < 4; i++) assert_int_equal(g.ts[i], 2000 + i);
  sqlite3_close(h.db);
  st_close(t);
}

static void held_rounds_flush_little_after_a_long_reader(void **state) {
  (void)state;
  if (strcmp(st_current->name, "sqlite") != 0) skip(); /* a property of this backend's checkpointer */
  st_hot_interval_us = 60 * 1000 * 1000; /* the messages stay in a hot table: one write each, as before it */
  st_t *t = st_open(st_current, 0);
  st_hot_interval_us = 0;
  int64_t conv = st_conv_create(t, "walr", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  static char text[3001];
  memset(text, 'r', sizeof text - 1);
  job_msg_insert_t *m = calloc(2 * NWAL, sizeof *m);
  size_t base = t->ndone;
  int64_t n0 = 0, over0 = hold_frames_over(4096, &n0), far0 = hold_frames_over(8192, &n0),
          restarts0 = metric_value(M_WAL_RESTARTS), n = 0;
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open_v2(t->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT ts FROM msg_all", -1, &st, NULL), SQLITE_OK);
  /* at most NWAL_AHEAD queued: batches as a busy server's, never a pause. Past NWAL, on
   * until a held round and the WAL's restart came (a slow disk's catch-up steps can outlast
   * the first NWAL; seen once), at most NWAL more */
  int sent = 0;
  for (int i = 0; i < NWAL || (i < 2 * NWAL && (n < 1 || metric_value(M_WAL_RESTARTS) == restarts0)); i++) {
    if (i >= NWAL_AHEAD) st_wait_done(t, base + (size_t)(i - NWAL_AHEAD) + 1);
    if (i == NWAL / 4) assert_int_equal(sqlite3_step(st), SQLITE_ROW); /* a read transaction, open until the reset */
    if (i == NWAL / 4 + NWAL_PINNED) sqlite3_reset(st);
    st_msg_fill(t, &m[i], 0, conv, 10000 + i, 1, "alice", text, 0);
    store_submit(t->s, &m[i].job);
    sent = i + 1;
    if (i + 1 >= NWAL && (i + 1) % NWAL_AHEAD == 0) { /* the held rounds so far */
      hold_frames_over(4096, &n);
      n -= n0;
    }
  }
  st_wait_done(t, base + (size_t)sent);
  sqlite3_finalize(st);
  sqlite3_close(db);
  int64_t over = hold_frames_over(4096, &n) - over0, far = hold_frames_over(8192, &n) - far0,
          restarts = metric_value(M_WAL_RESTARTS) - restarts0;
  n -= n0;
  for (int i = 0; i < sent; i++) {
    assert_int_equal(m[i].job.result, 0);
    st_msg_free(&m[i]);
  }
  free(m);
  st_close(t);
  print_message(
      "a reader pinned for %d messages, %d in all: %lld held rounds, %lld flushed over 4096 frames, %lld over "
      "8192, %lld WAL restarts\n",
      NWAL_PINNED, sent, (long long)n, (long long)over, (long long)far, (long long)restarts);
  assert_true(n >= 1);
  assert_true(restarts >= 1);
  /* no held round flushed CKPT_FRAMES (before: all the reader's ~12,000 pages at once); on
   * a quiet machine none flushes half of it, but a checkpointer starved of CPU beside a
   * writer that is not (three spinning processes on two cores) was seen once to leave one
   * round over 4,096 frames: printed above, not asserted */
  assert_int_equal(far, 0);
}

/* ---- message order across writers (store.h: rekey; docs/cluster.md, "Message order
 * across nodes"): two stores on one database stand for two nodes; each allocates keys from
 * its own clock and cache, one clock ahead of the other. Every message asking for it is
 * stored past every message committed before it: history order is commit order, each
 * node's messages in its order, a moved message named by its new key, and the
 * conversation's newest key is the last one committed. One writer per database (SQLite:
 * the data directory's lock) never meets a key it did not give itself: skipped there. */

static void test_rekey(job_msg_insert_t *j) {
  char mid[64];
  snprintf(mid, sizeof mid, "r-%lld-%lld", (long long)j->ts, (long long)j->seq);
  free(j->mid);
  j->mid = st_dup(mid);
}

static int mid_cb(void *arg, const msg_view_t *m) {
  snprintf(arg, 64, "%s", m->mid);
  return 0;
}

typedef struct {
  int n;
  int64_t ts[256], seq[256];
  char text[256][16];
} order_log_t;

static int order_cb(void *arg, const msg_view_t *m) {
  order_log_t *c = arg;
  if (c->n >= 256) return 1;
  c->ts[c->n] = m->ts;
  c->seq[c->n] = m->seq;
  snprintf(c->text[c->n], sizeof c->text[0], "%.*s", (int)m->len, (const char *)m->data);
  c->n++;
  return 0;
}

static int key_lt(int64_t ts, int64_t seq, int64_t ts2, int64_t seq2) { return ts < ts2 || (ts == ts2 && seq < seq2); }

static void ordered_msg(st_t *t, job_msg_insert_t *m, int64_t conv, int64_t ts, int64_t seq, const char *text) {
  st_msg_fill(t, m, 0, conv, ts, seq, "alice", text, 0);
  m->rekey = test_rekey;
}

static void message_order_across_writers(void **state) {
  (void)state;
  if (strcmp(st_current->name, "sqlite") == 0) skip(); /* one writer per database */
  st_t *a = st_open(st_current, 0);
  st_t *b = st_attach(a, 20000); /* b batches what comes within 20 ms */
  int64_t conv = st_conv_create(a, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  /* a's clock is ahead: (5000, 1); then b's, behind, gives (4000, 1) */
  job_msg_insert_t m1, m2, m3;
  ordered_msg(a, &m1, conv, 5000, 1, "a1");
  assert_int_equal(st_submit_wait(a, &m1.job), 0);
  assert_int_equal(m1.rekeyed, 0);
  ordered_msg(b, &m2, conv, 4000, 1, "b1");
  assert_int_equal(st_submit_wait(b, &m2.job), 0);
  assert_int_equal(m2.rekeyed, 1); /* moved past a's, and named by its new key */
  assert_int_equal(m2.ts, 5000);
  assert_int_equal(m2.seq, 2);
  assert_string_equal(m2.mid, "r-5000-2");
  char mid[64] = "";
  assert_int_equal(store_msg_get(a->r, conv, 5000, 2, mid_cb, mid), 0);
  assert_string_equal(mid, "r-5000-2");
  /* a's cache still says seq 1: its next key is taken by b's — moved again, not refused */
  ordered_msg(a, &m3, conv, 5000, 2, "a2");
  assert_int_equal(st_submit_wait(a, &m3.job), 0);
  assert_int_equal(m3.rekeyed, 1);
  assert_int_equal(m3.seq, 3);
  /* a job that does not ask keeps its key: behind the newest, it is stored where it says */
  job_msg_insert_t old;
  st_msg_fill(a, &old, 0, conv, 3000, 1, "alice", "old", 0);
  assert_int_equal(st_submit_wait(a, &old.job), 0);
  assert_int_equal(old.rekeyed, 0);
  assert_int_equal(old.ts, 3000);

  /* then both flood it at once, b's clock 1 s behind a's, each batch holding many of both
   * stores' messages in flight: per store keys only grow in its completion order, and
   * every message completed before another was submitted sorts before it */
  enum { N = 60 };
  job_msg_insert_t fa[N], fb[N];
  size_t base_a = a->ndone, base_b = b->ndone;
  size_t seen[2][N][2]; /* per job: how many of a's and of b's had completed when it was submitted */
  int64_t seq_a = 3, seq_b = 2;
  for (int i = 0; i < N; i++) {
    seen[0][i][0] = seen[1][i][0] = a->ndone - base_a;
    seen[0][i][1] = seen[1][i][1] = b->ndone - base_b;
    char text[16];
    snprintf(text, sizeof text, "a%d", i + 10);
    ordered_msg(a, &fa[i], conv, 6000 + i, ++seq_a, text);
    snprintf(text, sizeof text, "b%d", i + 10);
    ordered_msg(b, &fb[i], conv, 5000 + i, ++seq_b, text);
    store_submit(a->s, &fa[i].job);
    store_submit(b->s, &fb[i].job);
    if (i % 8 == 7) { /* let some commit in between */
      st_run(a);
      st_run(b);
    }
  }
  st_wait_done(a, base_a + N);
  st_wait_done(b, base_b + N);
  int moved = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(fa[i].job.result, 0);
    assert_int_equal(fb[i].job.result, 0);
    moved += fa[i].rekeyed + fb[i].rekeyed;
    if (i) { /* each store's acks in its order */
      assert_true(key_lt(fa[i - 1].ts, fa[i - 1].seq, fa[i].ts, fa[i].seq));
      assert_true(key_lt(fb[i - 1].ts, fb[i - 1].seq, fb[i].ts, fb[i].seq));
    }
    /* a message acked (on either store) before another was submitted sorts before it */
    for (int k = 0; k < 2; k++) {
      job_msg_insert_t *y = k ? &fb[i] : &fa[i];
      for (size_t x = 0; x < seen[k][i][0]; x++) assert_true(key_lt(fa[x].ts, fa[x].seq, y->ts, y->seq));
      for (size_t x = 0; x < seen[k][i][1]; x++) assert_true(key_lt(fb[x].ts, fb[x].seq, y->ts, y->seq));
    }
  }
  assert_true(moved >= 1); /* b's first, (5000, 3), is a2's own key whatever committed first */
  /* history: every message once, in key order, each at the key its job ended with */
  order_log_t h = {0};
  logs_req_t q = {.conv = conv, .newer = 1, .limit = 200};
  assert_int_equal(store_logs(a->r, &q, order_cb, &h), 0);
  assert_int_equal(h.n, 4 + 2 * N);
  assert_string_equal(h.text[0], "old");
  assert_string_equal(h.text[1], "a1");
  assert_string_equal(h.text[2], "b1");
  assert_string_equal(h.text[3], "a2");
  for (int i = 1; i < h.n; i++) assert_true(key_lt(h.ts[i - 1], h.seq[i - 1], h.ts[i], h.seq[i]));
  for (int i = 0; i < N; i++) {
    job_msg_insert_t *both[2] = {&fa[i], &fb[i]};
    for (int k = 0; k < 2; k++) {
      int at = -1;
      for (int x = 0; x < h.n; x++)
        if (h.ts[x] == both[k]->ts && h.seq[x] == both[k]->seq) at = x;
      assert_true(at >= 0);
      assert_memory_equal(h.text[at], both[k]->data, both[k]->len);
      if (both[k]->rekeyed) {
        assert_int_equal(store_msg_get(b->r, conv, both[k]->ts, both[k]->seq, mid_cb, mid), 0);
        assert_string_equal(mid, both[k]->mid);
      }
    }
  }
  /* the newest key, as a node loading the conversation sees it, is the last in history */
  conv_row_t row;
  assert_int_equal(store_conv_load(b->r, "c", &row), 0);
  assert_int_equal(row.last_ts, h.ts[h.n - 1]);
  assert_int_equal(row.last_seq, h.seq[h.n - 1]);
  conv_row_free(&row);
  for (int i = 0; i < N; i++) {
    st_msg_free(&fa[i]);
    st_msg_free(&fb[i]);
  }
  st_msg_free(&m1);
  st_msg_free(&m2);
  st_msg_free(&m3);
  st_msg_free(&old);
  st_detach(b);
  st_close(a);
}

/* ---- round trips per commit (PostgreSQL: pg_writer.c, "the first attempt"): a batch of
 * messages, acks and reads commits in one round trip (BEGIN … COMMIT as one pipelined
 * flight), also when its messages ask for their order (rekey: the locks and the check that
 * no key is behind ride in the flight). A key behind fails the check: nothing of that
 * flight commits, the batch runs again with the locks and the newest keys first (two round
 * trips), and so do the next 64 batches. Counted by
 * tern_store_round_trips_total; each member's acks and reads of the batch are one UPDATE,
 * with what job after job gave: the furthest position, the first job's time on a tie,
 * never backwards. */

static long long metric_in(store_t *s, const char *name) {
  buf_t m = BUF_INIT;
  store_metrics(s, &m);
  char line[128];
  snprintf(line, sizeof line, "\n%s ", name); /* the sample, not its # HELP */
  const char *p = strstr(buf_cstr(&m), line);
  long long v = p ? strtoll(p + strlen(line), NULL, 10) : -1;
  buf_free(&m);
  return v;
}

typedef struct {
  int64_t ack_seq[3], ack_at[3], read_seq[3], read_at[3];
} trip_progress_t;

static void trip_progress_cb(void *arg, const member_progress_t *p) {
  trip_progress_t *c = arg;
  int k = p->client[0] - 'a'; /* alice, bob, carol */
  if (k < 0 || k > 2) return;
  c->ack_seq[k] = p->ack_seq;
  c->ack_at[k] = p->ack_at;
  c->read_seq[k] = p->read_seq;
  c->read_at[k] = p->read_at;
}

static void trip_notif_cb(void *arg, int64_t ts, const char *body) {
  (void)ts;
  (void)body;
  (*(int *)arg)++;
}

static void progress_fill(st_t *t, job_progress_t *j, job_type_t type, int64_t conv, const char *client, int64_t ts,
                          int64_t seq, int64_t at) {
  memset(j, 0, sizeof *j);
  st_job_init(t, &j->job, type, 0);
  j->conv = conv;
  j->client = st_dup(client);
  j->ts = ts;
  j->seq = seq;
  j->at = at;
}

#define NTRIP 40
static void one_round_trip_per_commit(void **state) {
  (void)state;
  if (strcmp(st_current->name, "postgres") != 0) skip(); /* SQLite has no round trips */
  static const char *const ABC[] = {"alice", "bob", "carol", NULL};
  st_t *t = st_open(st_current, 300000); /* jobs submitted right after a commit wait for one batch */
  int64_t ordered = 0;
  for (int rekey = 0; rekey < 2; rekey++) {
    char cid[16];
    snprintf(cid, sizeof cid, "trip%d", rekey);
    int64_t conv = st_conv_create(t, cid, CONV_NORMAL, ABC, NULL, NULL, 1000, NULL);
    assert_true(conv > 0);
    if (rekey) ordered = conv;
    job_msg_insert_t m[NTRIP];
    job_progress_t p[2 * NTRIP + 3];
    size_t np = 0, base = t->ndone;
    int posts0 = t->posts;
    long long trips0 = metric_in(t->s, "tern_store_round_trips_total");
    for (int i = 0; i < NTRIP; i++) { /* a message, bob's ack of it, carol's read of it */
      st_msg_fill(t, &m[i], 0, conv, 3000, i + 1, "alice", "x", 0);
      if (rekey) m[i].rekey = test_rekey;
      store_submit(t->s, &m[i].job);
      progress_fill(t, &p[np], JOB_MEMBER_ACK, conv, "bob", 3000, i + 1, 7000 + i);
      store_submit(t->s, &p[np++].job);
      progress_fill(t, &p[np], JOB_MEMBER_READ, conv, "carol", 3000, i + 1, i == NTRIP - 1 ? 8000 : 7000 + i);
      store_submit(t->s, &p[np++].job);
    }
    progress_fill(t, &p[np], JOB_MEMBER_ACK, conv, "bob", 3000, 1, 9000); /* behind: changes nothing */
    store_submit(t->s, &p[np++].job);
    progress_fill(t, &p[np], JOB_MEMBER_READ, conv, "carol", 3000, NTRIP, 9001); /* a tie: the first stays */
    store_submit(t->s, &p[np++].job);
    progress_fill(t, &p[np], JOB_MEMBER_READ, conv, "alice", 3000, 2, 9002);
    store_submit(t->s, &p[np++].job);
    job_notif_t nj = {0}; /* a notification for two clients rides in the same flight */
    st_job_init(t, &nj.job, JOB_NOTIF, 0);
    nj.ts = 5000 + rekey;
    nj.body = st_dup("{\"trip\":1}");
    static const char *const BC[] = {"bob", "carol", NULL};
    nj.clients = st_list(BC, &nj.n);
    store_submit(t->s, &nj.job);
    st_wait_done(t, base + NTRIP + np + 1);
    long long trips = metric_in(t->s, "tern_store_round_trips_total") - trips0;
    print_message("%s: one commit of %d messages, %zu acks and reads, a notification: %lld round trips\n",
                  rekey ? "ordered (rekey)" : "keyed", NTRIP, np, trips);
    assert_int_equal(t->posts - posts0, 1); /* one batch */
    assert_true(trips0 >= 0);
    assert_int_equal(trips, 1);
    for (int i = 0; i < NTRIP; i++) assert_int_equal(m[i].job.result, 0);
    for (size_t k = 0; k < np; k++) assert_int_equal(p[k].job.result, 0);
    assert_int_equal(nj.job.result, 0);
    int nn = 0, more = -1;
    assert_int_equal(store_notifications(t->r, "carol", 5000 + rekey - 1, 10, &more, trip_notif_cb, &nn), 0);
    assert_int_equal(nn, 1);
    free(nj.body);
    st_list_free(nj.clients, nj.n);
    trip_progress_t g = {0};
    assert_int_equal(store_progress(t->r, conv, trip_progress_cb, &g), 0);
    assert_int_equal(g.ack_seq[1], NTRIP);
    assert_int_equal(g.ack_at[1], 7000 + NTRIP - 1);
    assert_int_equal(g.read_seq[2], NTRIP);
    assert_int_equal(g.read_at[2], 8000);
    assert_int_equal(g.read_seq[0], 2);
    assert_int_equal(g.read_at[0], 9002);
    int n = 0;
    logs_req_t q = {.conv = conv, .limit = 1000};
    assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0);
    assert_int_equal(n, NTRIP);
    for (int i = 0; i < NTRIP; i++) st_msg_free(&m[i]);
    for (size_t k = 0; k < np; k++) free(p[k].client);
  }
  /* (3000, 1) again, behind the newest (3000, NTRIP): the check fails, the flight commits
   * nothing, and the batch runs again ordered — moved past it, stored once */
  long long retries0 = metric_in(t->s, "tern_store_pg_order_retries_total");
  long long trips0 = metric_in(t->s, "tern_store_round_trips_total");
  job_msg_insert_t late, next;
  ordered_msg(t, &late, ordered, 3000, 1, "late");
  assert_int_equal(st_submit_wait(t, &late.job), 0);
  assert_int_equal(late.rekeyed, 1);
  assert_int_equal(late.ts, 3000);
  assert_int_equal(late.seq, NTRIP + 1);
  assert_int_equal(metric_in(t->s, "tern_store_pg_order_retries_total"), retries0 + 1);
  assert_int_equal(metric_in(t->s, "tern_store_round_trips_total") - trips0, 3); /* the flight (no ROLLBACK), two */
  /* the next batch: ordered at once, two round trips, nothing moved */
  trips0 = metric_in(t->s, "tern_store_round_trips_total");
  ordered_msg(t, &next, ordered, 3000, NTRIP + 2, "next");
  assert_int_equal(st_submit_wait(t, &next.job), 0);
  assert_int_equal(next.rekeyed, 0);
  assert_int_equal(metric_in(t->s, "tern_store_round_trips_total") - trips0, 2);
  assert_int_equal(metric_in(t->s, "tern_store_pg_order_retries_total"), retries0 + 1);
  int n = 0;
  logs_req_t q = {.conv = ordered, .limit = 1000};
  assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0);
  assert_int_equal(n, NTRIP + 2); /* each once */
  st_msg_free(&late);
  st_msg_free(&next);
  st_close(t);
}

/* The order check rides in the batch's first message INSERT (pg_sql.h PG_ORDER_GATE); a
 * batch whose first message statement is a possible resend's (INS_MSG_UNLESS_DT) gets it
 * as a statement of its own before it. Either way a key behind is caught: the flight
 * commits nothing and the batch runs again ordered, the message moved past the newest. */
static void order_check_before_the_first_message_statement(void **state) {
  (void)state;
  if (strcmp(st_current->name, "postgres") != 0) skip(); /* one writer: no order check */
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "gate", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  job_msg_insert_t first[3];
  for (int i = 0; i < 3; i++) {
    ordered_msg(t, &first[i], conv, 3000, i + 1, "x");
    assert_int_equal(st_submit_wait(t, &first[i].job), 0);
    st_msg_free(&first[i]);
  }
  /* (3000, 1) again: as a plain message, then as a possible resend (its dt not stored) */
  int64_t newest = 3;
  for (int resend = 0; resend < 2; resend++) {
    long long retries0 = metric_in(t->s, "tern_store_pg_order_retries_total");
    job_msg_insert_t late;
    ordered_msg(t, &late, conv, 3000, 1, resend ? "resend" : "late");
    if (resend) {
      late.dt = 77;
      late.dt_since = 1;
    }
    assert_int_equal(st_submit_wait(t, &late.job), 0);
    assert_int_equal(late.rekeyed, 1);
    assert_int_equal(late.ts, 3000);
    assert_int_equal(late.seq, newest + 1);
    assert_int_equal(metric_in(t->s, "tern_store_pg_order_retries_total"), retries0 + 1);
    st_msg_free(&late);
    newest++;
    /* the ordered batches the retry leaves behind it (ORDER_HOPE_AFTER), done */
    for (int i = 0; i < 64; i++) {
      job_msg_insert_t m;
      ordered_msg(t, &m, conv, 3000, ++newest, "fill");
      assert_int_equal(st_submit_wait(t, &m.job), 0);
      assert_int_equal(m.rekeyed, 0);
      st_msg_free(&m);
    }
  }
  int n = 0;
  logs_req_t q = {.conv = conv, .limit = 1000};
  assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0);
  assert_int_equal(n, 3 + 2 + 2 * 64); /* each once */
  st_close(t);
}

/* A statement of the pipelined flight that fails (PostgreSQL refuses a client name that is
 * not UTF-8: the batch's one UPDATE of acks fails) aborts the flight; the batch runs again
 * job by job, and only that job fails: the messages and the other acks commit. */
static void failed_statement_in_flight_fails_its_job_alone(void **state) {
  (void)state;
  if (strcmp(st_current->name, "postgres") != 0) skip(); /* SQLite stores any bytes */
  st_t *t = st_open(st_current, 300000);
  static const char *const ABC[] = {"alice", "bob", "carol", NULL};
  int64_t conv = st_conv_create(t, "flight", CONV_NORMAL, ABC, NULL, NULL, 1000, NULL);
  long long reruns0 = metric_in(t->s, "tern_store_pg_batch_reruns_total");
  enum { N = 10 };
  job_msg_insert_t m[N];
  job_progress_t p[3];
  size_t base = t->ndone;
  for (int i = 0; i < N; i++) {
    st_msg_fill(t, &m[i], 0, conv, 3000, i + 1, "alice", "x", 0);
    store_submit(t->s, &m[i].job);
  }
  progress_fill(t, &p[0], JOB_MEMBER_ACK, conv, "bob", 3000, 4, 7000);
  progress_fill(t, &p[1], JOB_MEMBER_ACK, conv, "bad\xff\xfe", 3000, 5, 7001);
  progress_fill(t, &p[2], JOB_MEMBER_ACK, conv, "carol", 3000, 6, 7002);
  for (int k = 0; k < 3; k++) store_submit(t->s, &p[k].job);
  st_wait_done(t, base + N + 3);
  for (int i = 0; i < N; i++) assert_int_equal(m[i].job.result, 0);
  assert_int_equal(p[0].job.result, 0);
  assert_int_equal(p[1].job.result, TERN_ESTORE);
  assert_int_equal(p[2].job.result, 0);
  assert_int_equal(metric_in(t->s, "tern_store_pg_batch_reruns_total"), reruns0 + 1);
  trip_progress_t g = {0};
  assert_int_equal(store_progress(t->r, conv, trip_progress_cb, &g), 0);
  assert_int_equal(g.ack_seq[1], 4);
  assert_int_equal(g.ack_seq[2], 6);
  int n = 0;
  logs_req_t q = {.conv = conv, .limit = 100};
  assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0);
  assert_int_equal(n, N);
  /* and the writer goes on: the next batch commits in one flight again */
  assert_int_equal(st_msg_insert(t, conv, 3000, N + 1, "alice", "after", 0), 0);
  for (int i = 0; i < N; i++) st_msg_free(&m[i]);
  for (int k = 0; k < 3; k++) free(p[k].client);
  st_close(t);
}

/* PostgreSQL closes the store's connections while the writer is idle (a restart, an
 * operator's pg_terminate_backend): the next batch goes to a new connection and commits —
 * both the one-flight batch (keyed messages: the closed connection is found before the
 * flight is sent, since a flight that holds its COMMIT is never sent twice) and the one
 * whose first flight is the order lock's. */
static int pg_count(PGconn *admin, const char *sql) {
  PGresult *r = PQexec(admin, sql);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  int n = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

/* Terminates ternd's backends and waits until those very ones are gone (a connection the
 * store opens again meanwhile, as its background rounds may, is not waited for). */
static void ternd_backends_terminate(PGconn *admin) {
  PGresult *r = PQexec(admin, "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity WHERE"
                              " datname = current_database() AND application_name = 'ternd'");
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  char pids[4096];
  snprintf(pids, sizeof pids, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  assert_true(pids[0]); /* the writer's, and the reader's */
  char sql[4300];
  snprintf(sql, sizeof sql, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid IN (%s)", pids);
  assert_true(pg_count(admin, sql) >= 1);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid IN (%s)", pids);
  for (int k = 0; k < 1000 && pg_count(admin, sql) > 0; k++) usleep(10000); /* until they are gone */
  assert_int_equal(pg_count(admin, sql), 0);
}

static void connections_closed_while_idle(void **state) {
  (void)state;
  if (strcmp(st_current->name, "postgres") != 0) skip(); /* no connection to lose */
  st_t *t = st_open(st_current, 0);
  static const char *const ABC[] = {"alice", "bob", "carol", NULL};
  int64_t conv = st_conv_create(t, "idle", CONV_NORMAL, ABC, NULL, NULL, 1000, NULL);
  PGconn *admin = PQconnectdb(t->path);
  assert_int_equal(PQstatus(admin), CONNECTION_OK);
  long long connects0 = metric_in(t->s, "tern_store_pg_connects_total");
  for (int rekey = 0; rekey < 2; rekey++) {
    ternd_backends_terminate(admin);
    job_msg_insert_t m;
    st_msg_fill(t, &m, 0, conv, 3000 + rekey, 1, "alice", "after the close", 0);
    if (rekey) m.rekey = test_rekey;
    assert_int_equal(st_submit_wait(t, &m.job), 0);
    st_msg_free(&m);
    job_progress_t p;
    progress_fill(t, &p, JOB_MEMBER_ACK, conv, "bob", 3000 + rekey, 1, 7000);
    assert_int_equal(st_submit_wait(t, &p.job), 0);
    free(p.client);
  }
  assert_true(metric_in(t->s, "tern_store_pg_connects_total") >= connects0 + 2); /* connected again */
  int n = 0;
  logs_req_t q = {.conv = conv, .limit = 100};
  assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0); /* the reader reconnects by itself */
  assert_int_equal(n, 2);
  PQfinish(admin);
  st_close(t);
}

/* A commit PostgreSQL refuses at its very end (here a deferred constraint trigger; a full
 * disk or a serialization failure would do the same): a batch sent as one flight has no
 * COMMIT statement — its pipeline's Sync commits it, and the refusal comes in place of the
 * Sync's answer. Every job of the batch fails, none is kept, and the next batch commits on
 * a new connection. */
static void pg_exec_ok(PGconn *admin, const char *sql) {
  PGresult *r = PQexec(admin, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  PQclear(r);
}

static void commit_refused_at_the_end_fails_every_job(void **state) {
  (void)state;
  if (strcmp(st_current->name, "postgres") != 0) skip(); /* failed_commit_fails_every_job covers SQLite */
  st_t *t = st_open(st_current, 300000);
  static const char *const ABC[] = {"alice", "bob", "carol", NULL};
  int64_t conv = st_conv_create(t, "refused", CONV_NORMAL, ABC, NULL, NULL, 1000, NULL);
  PGconn *admin = PQconnectdb(t->path);
  assert_int_equal(PQstatus(admin), CONNECTION_OK);
  pg_exec_ok(admin, "CREATE OR REPLACE FUNCTION tern_test_refuse() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$BEGIN RAISE EXCEPTION 'refused at commit'; END$$");
  pg_exec_ok(admin, "CREATE CONSTRAINT TRIGGER tern_test_refuse AFTER INSERT ON msg DEFERRABLE INITIALLY"
                    " DEFERRED FOR EACH ROW WHEN (NEW.seq = 777) EXECUTE FUNCTION tern_test_refuse()");
  long long connects0 = metric_in(t->s, "tern_store_pg_connects_total");
  long long trips0 = metric_in(t->s, "tern_store_round_trips_total");
  enum { N = 8 };
  job_msg_insert_t m[N];
  job_progress_t p[2];
  size_t base = t->ndone;
  for (int i = 0; i < N; i++) {
    st_msg_fill(t, &m[i], 0, conv, 3000, i == N - 1 ? 777 : i + 1, "alice", "x", 0);
    store_submit(t->s, &m[i].job);
  }
  progress_fill(t, &p[0], JOB_MEMBER_ACK, conv, "bob", 3000, 2, 7000);
  progress_fill(t, &p[1], JOB_MEMBER_READ, conv, "carol", 3000, 2, 7001);
  for (int k = 0; k < 2; k++) store_submit(t->s, &p[k].job);
  st_wait_done(t, base + N + 2);
  for (int i = 0; i < N; i++) assert_int_equal(m[i].job.result, TERN_ESTORE);
  for (int k = 0; k < 2; k++) assert_int_equal(p[k].job.result, TERN_ESTORE);
  assert_int_equal(metric_in(t->s, "tern_store_round_trips_total") - trips0, 1); /* one flight, no ROLLBACK */
  int n = 0;
  logs_req_t q = {.conv = conv, .limit = 100};
  assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0);
  assert_int_equal(n, 0);
  trip_progress_t g = {0};
  assert_int_equal(store_progress(t->r, conv, trip_progress_cb, &g), 0);
  assert_int_equal(g.ack_seq[1], 0);
  assert_int_equal(g.read_seq[2], 0);
  pg_exec_ok(admin, "DROP TRIGGER tern_test_refuse ON msg");
  assert_int_equal(st_msg_insert(t, conv, 3000, 777, "alice", "again", 0), 0);
  assert_true(metric_in(t->s, "tern_store_pg_connects_total") >= connects0 + 1); /* connected again */
  assert_int_equal(store_logs(t->r, &q, found_cb, &n), 0);
  assert_int_equal(n, 1);
  for (int i = 0; i < N; i++) st_msg_free(&m[i]);
  for (int k = 0; k < 2; k++) free(p[k].client);
  PQfinish(admin);
  st_close(t);
}

/* store_read_submit (store.h): fn runs with a reader that sees every committed job, its
 * return is the result, and the task comes back on the worker named, once per read — many
 * at once too (PostgreSQL: on its read threads; SQLite: at once, on the caller's reader). */
typedef struct {
  store_read_t rd;
  int64_t conv;
  int runs, done;
  st_msgs_t got;
} st_read_t;

static int st_read_fn(store_reader_t *r, store_read_t *rd) {
  st_read_t *x = (st_read_t *)rd;
  x->runs++;
  logs_req_t q = {.conv = x->conv, .newer = 1, .limit = 10};
  int rc = store_logs(r, &q, st_msgs_cb, &x->got);
  return rc < 0 ? rc : x->got.n;
}

static void st_read_done(task_t *t) { ((st_read_t *)t)->done++; }

static void reads_off_the_loop(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  assert_int_equal(st_msg_insert(t, conv, 2000, 1, "alice", "one", 0), 0);
  assert_int_equal(st_msg_insert(t, conv, 2000, 2, "alice", "two", 0), 0);
  enum { N = 40 };
  static st_read_t rd[N];
  memset(rd, 0, sizeof rd);
  for (int i = 0; i < N; i++) {
    rd[i].conv = conv;
    rd[i].rd.fn = st_read_fn;
    rd[i].rd.task.fn = st_read_done;
    rd[i].rd.worker = i % ST_WORKERS;
    assert_int_equal(store_read_submit(t->s, t->r, &rd[i].rd), 0);
  }
  for (int pending = 1; pending;) {
    pending = 0;
    for (int i = 0; i < N; i++) pending |= !rd[i].done;
    if (pending) st_wait_any(t);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(rd[i].runs, 1);
    assert_int_equal(rd[i].done, 1);
    assert_int_equal(rd[i].rd.result, 2);
    assert_string_equal(rd[i].got.text[0], "one");
    assert_string_equal(rd[i].got.text[1], "two");
  }
  st_close(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(completions_in_submission_order_per_worker),
      cmocka_unit_test(completion_only_after_commit),
      cmocka_unit_test(failed_commit_fails_every_job),
      cmocka_unit_test(failing_job_fails_alone),
      cmocka_unit_test(batched_messages_keep_every_byte),
      cmocka_unit_test(attribute_update_rounds),
      cmocka_unit_test(import_job_and_imported_ids),
      cmocka_unit_test(crash_recovery),
      cmocka_unit_test(paced_jobs_one_wakeup_per_commit),
      cmocka_unit_test(wal_restarts_under_a_writer_that_never_pauses),
      cmocka_unit_test(held_rounds_flush_little_after_a_long_reader),
      cmocka_unit_test(message_order_across_writers),
      cmocka_unit_test(one_round_trip_per_commit),
      cmocka_unit_test(order_check_before_the_first_message_statement),
      cmocka_unit_test(hot_tables_hold_every_message_once),
      cmocka_unit_test(hot_tables_skip_a_conversation_s_repeats),
      cmocka_unit_test(failed_statement_in_flight_fails_its_job_alone),
      cmocka_unit_test(connections_closed_while_idle),
      cmocka_unit_test(commit_refused_at_the_end_fails_every_job),
      cmocka_unit_test(reads_off_the_loop),
  };
  return st_run_groups(tests, sizeof tests / sizeof tests[0]);
}
