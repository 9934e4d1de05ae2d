/* bench.h — tern-bench, the load generator: the types every bench file shares.
 *
 * Shape (the method is in bench/README.md): the main thread parses options and drives a list
 * of steps (connect, create conversations, join, fill, run, stop); each of --threads
 * worker threads owns one libuv loop and a fixed slice of the clients, and carries out a
 * step for its clients before reporting back. Everything a worker touches on its hot path
 * is its own: its clients, the streams its clients send on, its counters and histograms.
 * Cross-thread data is either immutable after a step (conversation ids, stream tables) or
 * a counter with a single writer read by the main thread with relaxed atomics.
 *
 * A "stream" is one sequence of numbered messages into one conversation: pairs have two
 * per conversation (one per direction), a group one (its sender rotates), a chat room one
 * per sender. Every message carries its stream, the receiver's slot for it, its sequence
 * number and its send time (CLOCK_MONOTONIC, one process), so a receiver finds loss,
 * duplicates and latency without any lookup table shared with the sender. */
#ifndef TERN_BENCH_H
#define TERN_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

#define BENCH_MAX_THREADS 16
#define BENCH_MAX_SOURCES 250
#define BENCH_MAX_NODES 16

/* ---------------------------------------------------------------- options */

/* X(name, type, default, help): one row per command-line option (style rule 18). Types:
 * S string, I integer, D number, B flag. --name and --name=value both work. */
#define BENCH_OPTIONS(X)                                                                                                                                                                                                                                      \
  X(scenario, S, "pairs", "idle | pairs | group | chatroom | login-storm | history")                                                                                                                                                                          \
  X(protocol, S, "lc",                                                                                                                                                                                                                                        \
    "lc (ternd's protobuf) | mqtt (MQTT 3.1.1 over WebSocket, for the mosquitto reference: pairs only, publish QoS 1 answered by the broker's PUBACK, subscriptions QoS 0)")                                                                                  \
  X(url, S, "ws://127.0.0.1:8080/",                                                                                                                                                                                                                           \
    "server WebSocket URL (ws://IPv4:port/path); several nodes of one cluster: repeat --url (or a comma-separated list); client i connects to node i mod nodes, so the two clients of a pair always sit on different nodes and a group's members are spread") \
  X(urls, S, "", "the same as --url: a comma-separated list of nodes (added after those of --url)")                                                                                                                                                           \
  X(one_way, B, 0,                                                                                                                                                                                                                                            \
    "pairs: only the first client of each pair sends (nodes that do not share a store: the conversation is known only to its creator's node)")                                                                                                                \
  X(app_id, S, "", "app id the server expects (ternd prints it; TERN_APP_ID)")                                                                                                                                                                                \
  X(clients, I, 100, "sessions to open (N)")                                                                                                                                                                                                                  \
  X(duration, D, 10, "seconds of measurement")                                                                                                                                                                                                                \
  X(warmup, D, 2, "seconds of load before measuring starts")                                                                                                                                                                                                  \
  X(drain, D, 10, "seconds to wait at the end for outstanding acks and deliveries")                                                                                                                                                                           \
  X(rate, D, 0, "target rate: msgs/s (pairs, group, chatroom), logins/s, pages/s; 0 = flat out")                                                                                                                                                              \
  X(tick_us, I, 1000,                                                                                                                                                                                                                                         \
    "pacing period in microseconds (--rate; 50..1000): below 1000 a timerfd ticks, libuv's timers having 1 ms steps. Latency is timed from each message's schedule, so up to a period of it is the generator's (send lag)")                                   \
  X(window, I, 64, "most unacknowledged requests per sender (flat out and rate mode alike)")                                                                                                                                                                  \
  X(group_size, I, 500, "members per conversation in the group scenario")                                                                                                                                                                                     \
  X(rotate, I, 100, "group: the sender changes after this many messages")                                                                                                                                                                                     \
  X(senders, I, 4, "chatroom: members that send")                                                                                                                                                                                                             \
  X(payload, I, 64, "message size in bytes (>= 64; carries stream, seq and send time)")                                                                                                                                                                       \
  X(dt, B, 0, "send with every message a 36-byte dt (dedupe token, unique per message) as the JS SDK does")                                                                                                                                                   \
  X(history_messages, I, 100000, "history: messages in the conversation that is paged")                                                                                                                                                                       \
  X(page_size, I, 20, "history: messages per logs request")                                                                                                                                                                                                   \
  X(ack_ms, I, 1000, "receivers ack each conversation at most this often (JS SDK: 1 s); 0 = never")                                                                                                                                                           \
  X(echo_s, I, 180, "keepalive echo per connection every this many seconds (JS SDK: 180)")                                                                                                                                                                    \
  X(threads, I, 1, "event-loop threads; clients are partitioned between them")                                                                                                                                                                                \
  X(sources, I, 0, "loopback source addresses 127.0.0.1..K to spread sockets over (0 = by N)")                                                                                                                                                                \
  X(connect_window, I, 256, "connections being opened at once")                                                                                                                                                                                               \
  X(server_pid, I, 0, "ternd's pid for RSS/CPU (0 = find the listener of the URL's port)")                                                                                                                                                                    \
  X(id_prefix, S, "", "client id prefix (default: random per run, so runs never share state)")                                                                                                                                                                \
  X(json, B, 0, "print one JSON object instead of the table")                                                                                                                                                                                                 \
  X(tsv, S, "", "also append one tab-separated row (rate, throughput, latency percentiles) to this file")                                                                                                                                                     \
  X(timeline, S, "", "write delivery latency per 100 ms of send time (count, p50, p99, max) to this file (TSV)")                                                                                                                                              \
  X(verbose, B, 0, "progress lines on stderr")

typedef struct {
#define BENCH_FIELD_S(n) char *n;
#define BENCH_FIELD_I(n) long n;
#define BENCH_FIELD_D(n) double n;
#define BENCH_FIELD_B(n) int n;
#define X(name, type, def, help) BENCH_FIELD_##type(name)
  BENCH_OPTIONS(X)
#undef X
} bench_opts_t;

/* ---------------------------------------------------------------- histogram (bench_hist.c) */

/* Log-linear, HdrHistogram-style: exact below 256, then 128 buckets per power of two
 * (relative error < 0.8%). Values are nanoseconds. 59 KB each, no allocation. */
#define HIST_SUB_BITS 7
#define HIST_BUCKETS (256 + (64 - 8) * 128)

typedef struct {
  uint64_t counts[HIST_BUCKETS];
  uint64_t n, max, min;
  double sum;
} hist_t;

void hist_init(hist_t *h);
void hist_add(hist_t *h, uint64_t v);
void hist_merge(hist_t *into, const hist_t *from);
uint64_t hist_percentile(const hist_t *h, double p); /* p in [0,100]; 0 when empty */

/* A latency timeline (--timeline): per TL_BIN_NS of send time a coarse histogram of
 * microseconds (16 buckets per power of two: percentiles within 6.3%) and the exact
 * maximum, so a report shows WHEN the slow messages were sent, not only how many there
 * were. 1.6 KB a bin, allocated for the whole run up front; one per thread. */
#define TL_BIN_NS 100000000ull
#define TL_SUB_BITS 4
#define TL_BUCKETS (16 + 26 * 16) /* up to 2^30 µs */
typedef struct {
  uint32_t counts[TL_BUCKETS];
  uint64_t max_ns;
} tl_bin_t;
typedef struct {
  tl_bin_t *bins;
  size_t nbins;
} timeline_t;
void tl_init(timeline_t *t, double seconds);
void tl_add(timeline_t *t, uint64_t stamp_ns, uint64_t lat_ns); /* stamp relative to the run's start */
/* Writes the merged timeline of n threads: one row per bin that saw a message. */
int tl_write(const char *path, timeline_t *const *per, int n, double warmup_s, uint64_t realtime_run_ns);

/* ---------------------------------------------------------------- protobuf wire (bench_pb.c) */

/* Just enough of the protobuf wire format to build the few commands the bench sends and
 * to pick fields out of what the server sends, without allocating (protobuf-c's unpack
 * mallocs every message and string, which would cost more than the server's work). */
typedef struct {
  const uint8_t *p, *end;
} pb_rd_t;

typedef struct {
  uint32_t field;
  int wt;           /* 0 varint, 2 length-delimited (others are skipped) */
  uint64_t v;       /* varint value */
  const uint8_t *d; /* length-delimited bytes */
  size_t n;
} pb_field_t;

/* 1 with *f filled, 0 at the end, -1 on malformed input. */
int pb_next(pb_rd_t *r, pb_field_t *f);
void pb_put_varint(buf_t *b, uint32_t field, uint64_t v);
void pb_put_bytes(buf_t *b, uint32_t field, const void *p, size_t n);
void pb_put_str(buf_t *b, uint32_t field, const char *s);
/* Nested message: call pb_begin, append its fields, then pb_end with the returned mark. */
size_t pb_begin(buf_t *b, uint32_t field);
void pb_end(buf_t *b, size_t mark);

/* The top level of a server command: what every handler looks at first. */
typedef struct {
  int cmd, op;
  int has_i;
  int32_t i;
  uint32_t sub_field; /* the first sub-message field (100..117), 0 if none */
  const uint8_t *sub;
  size_t sub_len;
} cmd_view_t;
int cmd_view(const uint8_t *p, size_t n, cmd_view_t *v); /* 0, or -1 if malformed */

/* ---------------------------------------------------------------- model */

typedef struct bthread bthread_t;
typedef struct client client_t;

typedef enum {
  C_IDLE = 0,   /* not connected */
  C_CONNECTING, /* TCP connect in progress */
  C_UPGRADING,  /* HTTP upgrade sent, waiting for 101 */
  C_OPENING,    /* session open sent */
  C_READY,      /* logged in */
  C_CLOSING,    /* uv_close pending */
  C_DEAD,       /* failed or closed by the server; never reconnects */
} client_state_t;

/* What a request id (i) was for, so its reply can be routed. */
typedef enum { P_NONE = 0, P_OPEN, P_START, P_JOIN, P_MSG, P_LOGS, P_ECHO } pend_kind_t;

typedef struct {
  int32_t i;
  uint8_t kind;
  uint32_t arg; /* stream index (P_MSG), conversation index (P_START/P_JOIN) */
  uint64_t t;   /* stamp: send time (ns) */
} pend_t;

/* A receiver's view of one stream: which sequence numbers arrived (a growable bitmap, so
 * duplicates and gaps are exact), and the message timestamps not yet acked. */
typedef struct {
  uint32_t stream;
  uint32_t nwords;
  uint64_t *bits;
  uint64_t uniq;
  int64_t ack_lo, ack_hi; /* server timestamps (ms) to acknowledge, 0 = nothing pending */
} rstate_t;

typedef struct conv {
  char cid[48]; /* filled by the creator's thread during the create step */
  int creator;  /* client index */
  int room;     /* chat room: receivers do not ack */
} conv_t;

typedef struct stream {
  uint32_t id;
  int conv;          /* index into bench.convs */
  int sender;        /* current sending client (index) */
  int first, count;  /* group rotation: members are clients first..first+count-1 */
  int nrecv;         /* receivers expected per message */
  int owner;         /* thread that sends on it */
  uint64_t seq;      /* next sequence number */
  uint32_t inflight; /* sent, not yet acked */
  uint32_t since_rotate;
} stream_t;

struct client {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  bthread_t *th;
  int idx;
  client_state_t state;
  uint8_t in_flush, writing, want;
  int32_t next_i;
  uint32_t npend, pcap; /* pending ring, indexed by i & (pcap - 1) */
  pend_t *pend;
  rstate_t *rs; /* one per stream this client receives */
  uint32_t nrs;
  uint64_t t_login; /* when the current login attempt began */
  uint64_t logins;
  buf_t in, out, wbuf;
  buf_t mq;           /* --protocol mqtt: an incomplete packet's bytes */
  char key[25];       /* Sec-WebSocket-Key */
  uint32_t hist_walk; /* history: progress through the conversation */
  int64_t page_t;
  char page_mid[32];
  uint64_t *walk_bits;
  uint64_t walk_seen;
  int close_code;
  client_t *flush_next;
};

/* Per-thread counters: one writer (the thread), read live by the main thread. */
typedef struct {
  _Atomic uint64_t sent, sent_m, expected, delivered, delivered_m, dup, foreign;
  _Atomic uint64_t acked, errors, unacked, disconnects, logins, login_fail, logins_m;
  _Atomic uint64_t pages_sent, pages_sent_m, pages, pages_m, items, walks, walk_lost, walk_dup;
  _Atomic uint64_t echoes, echo_replies;
  _Atomic uint64_t ready, step_pending, fill_done;
} counters_t;

#define CNT_ADD(field, n)                                                                                              \
  atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n), memory_order_relaxed)
#define CNT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

struct bthread {
  int idx;
  uv_loop_t loop;
  uv_async_t wake;
  uv_timer_t tick;    /* 1 ms: rate pacing, phase changes */
  uv_poll_t tfd_poll; /* --tick-us below 1000: the tick is a timerfd's (tfd), not `tick` */
  int tfd;
  uv_timer_t slow; /* 1 s: acks, echoes */
  uv_prepare_t prep;
  uv_check_t check;
  pthread_t thread;
  int step_seen;
  client_t **clients; /* the clients this thread owns */
  int nclients;
  int *streams; /* the streams this thread sends on */
  int nstreams, rr;
  int connecting, next_connect;
  int sending, drained;
  int64_t outstanding;  /* run: messages, pages or logins not yet answered */
  int64_t echo_pending; /* keepalive echoes not yet answered */
  uint64_t ack_start;   /* when the current --ack-ms period began (0: none yet) */
  int ack_next;         /* the clients that acked in it so far: clients[0 .. ack_next) */
  uint64_t sched;       /* rate mode: messages scheduled so far */
  uint64_t slow_ticks;
  client_t *flush_list;
  buf_t scratch; /* command encoding */
  counters_t cnt;
  hist_t lat;     /* delivery latency (messages), page latency (history), login latency */
  hist_t ack_lat; /* send → ack */
  hist_t lag;     /* --rate: how late each message left against its schedule (the 1 ms tick's
                     and this loop's share of every latency, which is timed from the schedule) */
  timeline_t tl;  /* --timeline: delivery latency by send time */
  uint8_t readbuf[64 * 1024];
  int readbuf_busy;
  uint64_t rng;
};

/* Steps the main thread walks the workers through (bench_main.c). */
typedef enum {
  STEP_NONE = 0,
  STEP_CONNECT_A, /* log in the clients of set A (all, or history's filler) */
  STEP_CREATE,    /* creators start their conversations */
  STEP_JOIN,      /* chat room: everyone else joins */
  STEP_FILL,      /* history: the filler sends the conversation's messages */
  STEP_CONNECT_B, /* history: the readers log in */
  STEP_RUN,       /* warmup + measurement + drain of outstanding requests */
  STEP_STOP,
} step_t;

/* One server node (--url); several make a cluster run. */
typedef struct {
  struct sockaddr_in addr;
  char host_hdr[64], path[128];
} bench_node_t;

typedef enum { SC_IDLE, SC_PAIRS, SC_GROUP, SC_CHATROOM, SC_LOGIN, SC_HISTORY } scenario_t;

typedef struct {
  bench_opts_t o;
  scenario_t sc;
  int mqtt;                            /* --protocol mqtt */
  bench_node_t nodes[BENCH_MAX_NODES]; /* --url, in order: client i connects to nodes[i % nnodes] */
  int nnodes;
  int nsources;
  char prefix[24];
  int nthreads;
  bthread_t *threads[BENCH_MAX_THREADS];
  client_t *clients;
  int nclients;
  conv_t *convs;
  int nconvs;
  stream_t *streams;
  int nstreams;
  _Atomic int step;
  _Atomic int step_done;
  _Atomic int failed;
  char fail_msg[256];
  uint64_t t_run, t_measure, t_end; /* ns: run start, measurement start, measurement end */
  uint64_t t_run_real;              /* CLOCK_REALTIME ns at t_run, for lining the timeline up with server logs */
  uint64_t history_n;               /* messages actually in the history conversation */
} bench_t;

extern bench_t bench;

/* ---------------------------------------------------------------- bench_conn.c */

void client_connect(client_t *c);
void client_reset(client_t *c); /* RST close; login-storm reconnects from its close cb */
void client_close(client_t *c); /* graceful end of the run */
/* Frames one command (the protobuf bytes in p) into the client's output; one write per
 * connection per loop iteration carries everything queued (thread_flush). */
void client_send(client_t *c, const uint8_t *p, size_t n);
int32_t client_req(client_t *c, pend_kind_t kind, uint32_t arg, uint64_t t); /* registers a new i */
int client_pend_take(client_t *c, int32_t i, pend_t *out);                   /* 1 if found */
void thread_flush(bthread_t *th);
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- bench_scen.c */

void scen_plan(void);                                                   /* clients, conversations, streams, threads */
void scen_step(bthread_t *th, step_t step);                             /* begin a step on this thread */
void scen_tick(bthread_t *th, uint64_t now);                            /* every 1 ms */
void scen_slow_tick(bthread_t *th, uint64_t now);                       /* every 1 s */
void scen_ready(client_t *c, uint64_t now);                             /* session opened */
void scen_frame(client_t *c, const uint8_t *p, size_t n, uint64_t now); /* a command from the server */
void scen_lost(client_t *c);                  /* connection gone: settle its pending requests */
void scen_settle(client_t *c, pend_t *p);     /* a request that will never be answered */
void step_progress(bthread_t *th, int delta); /* a unit of the current step finished */
/* What both protocols' receiving sides call: a message's payload arrived (ts: the server's
 * timestamp to acknowledge, 0 for none); a message's answer arrived (ok: an ack, not a
 * refusal; v: the refusal to report, or NULL). */
void scen_delivered(client_t *c, const uint8_t *payload, size_t n, int64_t ts, uint64_t now);
void scen_answered(client_t *c, const pend_t *pd, int ok, const cmd_view_t *v, uint64_t now);
uint32_t rng_next(bthread_t *th);

/* ---------------------------------------------------------------- bench_mqtt.c */

void mqtt_send_connect(client_t *c);
/* A QoS 1 PUBLISH of payload to client `to`'s topic, with packet id pid (1..65535). */
void mqtt_send_publish(client_t *c, int to, int32_t pid, const void *payload, size_t n);
/* A WebSocket message's bytes: 0, or -1 on a protocol violation (the caller closes). */
int mqtt_input(client_t *c, const uint8_t *p, size_t n, uint64_t now);

/* ---------------------------------------------------------------- bench_report.c */

typedef struct {
  long rss_kb;
  double cpu_s; /* user + system */
  double sys_s; /* of which in the kernel */
  long wal_kb;  /* the size of the SQLite WAL the server has mapped (its -shm file's), -1 if none */
} proc_sample_t;

int proc_sample(int pid, proc_sample_t *out); /* 0, or -1 if the process is gone */
double self_cpu_s(void);                      /* user + system */
double self_sys_s(void);
long self_rss_kb(void);
int machine_cpu(uint64_t *busy, uint64_t *total); /* jiffies since boot */
int find_listener_pid(int port);                  /* 0 when not found */

typedef struct {
  int server_pid;                   /* the first node's */
  proc_sample_t before, start, end; /* summed over every node's process (RSS, CPU) */
  int npids;                        /* distinct server processes sampled (one per node) */
  int pids[BENCH_MAX_NODES];
  proc_sample_t nbefore[BENCH_MAX_NODES], nstart[BENCH_MAX_NODES], nend[BENCH_MAX_NODES];
  double setup_s, measured_s, drain_s;
  double gen_cpu_s, gen_sys_s; /* the generator's own CPU in the window, and its kernel part */
  double machine_busy;         /* fraction of all cores busy during measurement */
  long gen_rss_kb;
  double fill_s;
  uint64_t held; /* sessions logged in at the end of the measured window */
} run_info_t;

/* Samples every server process of ri (which: 0 before connecting, 1 measurement start,
 * 2 its end) into the per-node arrays and their sum. */
void servers_sample(run_info_t *ri, int which);
void report_print(const run_info_t *ri);

#endif
