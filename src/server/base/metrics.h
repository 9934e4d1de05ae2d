/* metrics.h — the server's counters, gauges and histograms, rendered for /metrics.
 *
 * One X-macro row per series (TERN_METRICS): adding a series is one line here and one
 * increment where the thing happens. Rows that share a name form one family (one # HELP
 * and # TYPE); their labels tell them apart.
 *
 * Cheap on the hot path: every worker thread (worker_current() >= 0) writes its own
 * cache-line-aligned shard with a relaxed load and store — no lock prefix, no sharing —
 * and other threads (the store's writer, the thread pool) add to one shared shard with
 * atomic_fetch_add. A scrape sums the shards; a gauge is the sum of what each thread
 * added and took away, so a session opened on one worker and closed on another nets out.
 *
 * Histograms share one set of bucket bounds (durations, 50 µs to 10 s) and are observed
 * in microseconds; they render as Prometheus histograms in seconds (_bucket{le=…},
 * _sum, _count). */
#ifndef TERN_METRICS_H
#define TERN_METRICS_H

#include <stdint.h>

#include "buf.h"

/* X(id, kind, name, labels, help) — kind is COUNTER, GAUGE, HIST, HISTC or NSEC (a counter
 * of nanoseconds, rendered in seconds); labels is the text inside {…} or "". */
#define TERN_METRICS(X)                                                                                                \
  X(WS_PROTOBUF, GAUGE, "tern_ws_connections", "protocol=\"protobuf\"",                                                \
    "Open WebSocket connections by framing (lc.protobuf2.* binary frames, lc.proto2base64.* text frames).")            \
  X(WS_BASE64, GAUGE, "tern_ws_connections", "protocol=\"base64\"", "")                                                \
  X(SESSIONS_PROTOBUF, GAUGE, "tern_sessions", "protocol=\"protobuf\"",                                                \
    "Open client sessions (logins) by the framing of their WebSocket.")                                                \
  X(SESSIONS_BASE64, GAUGE, "tern_sessions", "protocol=\"base64\"", "")                                                \
  X(LOGINS_OK, COUNTER, "tern_logins_total", "result=\"ok\"",                                                          \
    "session/open requests by result: ok, refused (session/closed: app, client id, signature, quota, conflict), "      \
    "bad_token (an expired or invalid session token on reconnect).")                                                   \
  X(LOGINS_REFUSED, COUNTER, "tern_logins_total", "result=\"refused\"", "")                                            \
  X(LOGINS_BAD_TOKEN, COUNTER, "tern_logins_total", "result=\"bad_token\"", "")                                        \
  X(LOGIN_PUSHES_TOLD, COUNTER, "tern_login_pushes_told_total", "",                                                    \
    "Message pushes not sent to a new login because its unread counts (or lc.protobuf2.1 offline messages) "           \
    "already told it of the message (docs/cluster.md, \"A login's counts\").")                                         \
  X(MESSAGES_IN, COUNTER, "tern_messages_in_total", "kind=\"stored\"",                                                 \
    "Messages accepted for delivery (from clients, the REST API and will messages) by kind: stored, or transient "     \
    "(never stored).")                                                                                                 \
  X(MESSAGES_IN_TRANSIENT, COUNTER, "tern_messages_in_total", "kind=\"transient\"", "")                                \
  X(MESSAGES_OUT, COUNTER, "tern_messages_out_total", "kind=\"stored\"",                                               \
    "Messages delivered to sessions, one per receiving session (the fan-out of messages), by kind.")                   \
  X(MESSAGES_OUT_TRANSIENT, COUNTER, "tern_messages_out_total", "kind=\"transient\"", "")                              \
  X(FANOUT, COUNTER, "tern_fanout_deliveries_total", "",                                                               \
    "Pushes delivered to sessions: messages, receipts, membership and patch notifications, one per session.")          \
  X(RECEIPT_READS, COUNTER, "tern_receipt_reads_total", "",                                                            \
    "Acks whose messages were looked up for receipts: only in conversations some message of which asked for them.")    \
  X(SEND_DEDUPED, COUNTER, "tern_send_deduped_total", "",                                                              \
    "Sends answered with the ack of a message stored earlier with the same dt (a resend after a reconnect).")          \
  X(ROOM_SENDERS_PAUSED, COUNTER, "tern_room_senders_paused_total", "",                                                \
    "Times a connection's input was paused: 64 of its chat-room messages waited for the other workers' fan-out.")      \
  X(ROOM_ACKS_HELD, COUNTER, "tern_room_acks_held_total", "",                                                          \
    "Chat-room acks that waited at a worker because most of the room's members there were behind.")                    \
  X(CONV_PREFETCHES, COUNTER, "tern_conv_prefetches_total", "",                                                        \
    "Requests that waited for their conversation to be read off the worker's loop (PostgreSQL; im_prefetch.c).")       \
  X(TOKEN_PREFETCHES, COUNTER, "tern_token_prefetches_total", "",                                                      \
    "Reconnects whose session token's revocations were read off the worker's loop (PostgreSQL; im_prefetch.c).")       \
  X(DEDUPE_PREFETCHES, COUNTER, "tern_dedupe_prefetches_total", "",                                                    \
    "Sends after a reconnect whose resend lookup (by dt) was read off the worker's loop (PostgreSQL; im_dedupe.c).")   \
  X(KEYS_PREFETCHES, COUNTER, "tern_keys_prefetches_total", "",                                                        \
    "Acks, reads, history pages and is_members whose other conversations or imported ids were read off the worker's "  \
    "loop "                                                                                                            \
    "(PostgreSQL; im_prefetch.c).")                                                                                    \
  X(CMD_PREFETCHES, COUNTER, "tern_cmd_prefetches_total", "",                                                          \
    "Conversation commands (a unique start, a max_read, an update, an add, a client blacklist, a query by id) whose "  \
    "own reads were read off the worker's loop (PostgreSQL; im_prefetch.c).")                                          \
  X(PATCH_PREFETCHES, COUNTER, "tern_patch_prefetches_total", "",                                                      \
    "Edits and recalls whose messages (and conversations) were read off the worker's loop (PostgreSQL; im_patch.c).")  \
  X(SEND_KEY_RETRIES, COUNTER, "tern_send_key_retries_total", "",                                                      \
    "Sends stored again with a fresh key because another node took or passed theirs (cluster, docs/cluster.md).")      \
  X(SEND_RECHECKS_ABSENT, COUNTER, "tern_send_rechecks_total", "wait=\"absent\"",                                      \
    "Stored sends to normal conversations whose recipients with no session anywhere waited, in a cluster, for the "    \
    "presence this node's subscriber held unapplied (absent); later sends of the conversation queued behind one "      \
    "(order); sends not held so because the worker's queue was full (full). docs/cluster.md, \"The window, closed\".") \
  X(SEND_RECHECKS_ORDER, COUNTER, "tern_send_rechecks_total", "wait=\"order\"", "")                                    \
  X(SEND_RECHECKS_FULL, COUNTER, "tern_send_rechecks_total", "wait=\"full\"", "")                                      \
  X(SEND_RECHECK_FOUND, COUNTER, "tern_send_recheck_found_total", "",                                                  \
    "Recipients of such a send found online once the subscriber's input was applied, and pushed the message live.")    \
  X(CONV_RESYNCS, COUNTER, "tern_conv_cache_resyncs_total", "",                                                        \
    "Times every cached conversation was marked stale because bus invalidations may have been lost (cluster).")        \
  X(SEND_ACK, HIST, "tern_send_ack_seconds", "",                                                                       \
    "From a message accepted for storage to its ack (the commit included; the _messageReceived hook not).")            \
  X(DELIVERY, HIST, "tern_delivery_seconds", "",                                                                       \
    "From a message accepted to its fan-out queued to every online recipient (stored: after the commit).")             \
  X(COMMIT, HIST, "tern_store_commit_seconds", "", "One group commit of the store: BEGIN to COMMIT of a batch.")       \
  X(COMMIT_BATCH, HISTC, "tern_store_commit_batch_size", "", "Write jobs in one group commit.")                        \
  X(CHECKPOINTS, COUNTER, "tern_store_checkpoints_total", "",                                                          \
    "WAL checkpoint rounds run (PASSIVE: each copies what it can without blocking writers).")                          \
  X(QUEUE_WAIT, HIST, "tern_store_queue_wait_seconds", "",                                                             \
    "From the oldest job of a group commit queued to the commit starting (the commit interval, a busy writer).")       \
  X(CHECKPOINT, HIST, "tern_store_checkpoint_seconds", "",                                                             \
    "One WAL checkpoint round that copied frames, on the checkpointer thread (two fsyncs included).")                  \
  X(CHECKPOINT_HOLD, HIST, "tern_store_checkpoint_hold_seconds", "",                                                   \
    "How long the writer waited for a checkpoint's last round (no commit starts meanwhile).")                          \
  X(FSYNC, HIST, "tern_store_fsync_seconds", "",                                                                       \
    "One fsync by the writer's connection (each commit's under sync_full; checkpoints' are in their rounds).")         \
  X(CHECKPOINT_HOLD_FRAMES, HISTC, "tern_store_checkpoint_hold_frames", "",                                            \
    "WAL frames copied into the database and not yet flushed when a checkpoint's held round ends: the pages its "      \
    "database sync writes while the writer waits.")                                                                    \
  X(WAL_RESTARTS, COUNTER, "tern_store_wal_restarts_total", "",                                                        \
    "Times the WAL started over from its beginning (a commit after a round that copied every frame); fewer than "      \
    "tern_store_checkpoint_hold_seconds_count means a held round's restart was missed.")                               \
  X(WAL_FRAMES, COUNTER, "tern_store_wal_frames_total", "",                                                            \
    "Pages (WAL frames) the writer's commits appended to the WAL; per tern_store_commit_seconds_count, the pages a "   \
    "commit wrote.")                                                                                                   \
  X(WRITER_WAKEUPS, COUNTER, "tern_store_writer_wakeups_total", "",                                                    \
    "Times the store's writer thread woke from a wait (for work, out the commit interval, for a checkpoint).")         \
  X(INBOX_WAIT, HIST, "tern_worker_inbox_wait_seconds", "",                                                            \
    "From a task posted to a worker (commit completions, another worker's deliveries) to the worker running it.")      \
  X(STAGE_READ, NSEC, "tern_stage_seconds_total", "stage=\"read\"",                                                    \
    "Time the server's threads spent per stage, summed (read, decode and handle: one frame in 8 timed, "               \
    "counted 8 times): read (socket reads), decode (protobuf), "                                                       \
    "handle (routing and handlers: checks, store submits, replies queued), complete (tasks posted to a worker: "       \
    "commit completions with their acks and fan-out, other workers' deliveries), write (socket writes), commit (the "  \
    "writer's transactions), checkpoint (WAL checkpoint rounds). Divide by tern_messages_in_total for a "              \
    "per-message cost.")                                                                                               \
  X(STAGE_DECODE, NSEC, "tern_stage_seconds_total", "stage=\"decode\"", "")                                            \
  X(STAGE_HANDLE, NSEC, "tern_stage_seconds_total", "stage=\"handle\"", "")                                            \
  X(STAGE_COMPLETE, NSEC, "tern_stage_seconds_total", "stage=\"complete\"", "")                                        \
  X(STAGE_WRITE, NSEC, "tern_stage_seconds_total", "stage=\"write\"", "")                                              \
  X(STAGE_COMMIT, NSEC, "tern_stage_seconds_total", "stage=\"commit\"", "")                                            \
  X(STAGE_CHECKPOINT, NSEC, "tern_stage_seconds_total", "stage=\"checkpoint\"", "")                                    \
  X(URING_SUBMITS, COUNTER, "tern_uring_submits_total", "",                                                            \
    "io_uring submissions of the workers' socket writes: one per loop iteration with two or more connections to "      \
    "write (option io_uring).")                                                                                        \
  X(URING_SENDS, COUNTER, "tern_uring_sends_total", "",                                                                \
    "Socket writes the workers sent through io_uring, many per submission (tern_uring_submits_total).")                \
  X(PUSH, HIST, "tern_push_seconds", "", "One request to an offline-push provider, sent to answered (or failed).")     \
  X(PUSH_ERRORS, COUNTER, "tern_push_errors_total", "",                                                                \
    "Requests to offline-push providers that failed (transport error, timeout, or a refusing status).")                \
  X(HTTP_REQUEST, HIST, "tern_http_request_seconds", "",                                                               \
    "HTTP requests (REST, router, files), first byte to answer queued.")

#define METRICS_NBOUNDS 17
/* The histograms' upper bounds in microseconds (+Inf follows); HISTC histograms count
 * things (batch sizes) with powers of two up to 65536. */
extern const uint64_t metrics_bounds_us[METRICS_NBOUNDS];
extern const uint64_t metrics_bounds_count[METRICS_NBOUNDS];

#define METRICS_SLOTS_COUNTER 1
#define METRICS_SLOTS_GAUGE 1
#define METRICS_SLOTS_NSEC 1
#define METRICS_SLOTS_HIST (METRICS_NBOUNDS + 2) /* buckets, +Inf, sum of µs */
#define METRICS_SLOTS_HISTC METRICS_SLOTS_HIST

typedef enum {
#define X(id, kind, name, labels, help) M_##id, M_##id##_LAST_ = M_##id + METRICS_SLOTS_##kind - 1,
  TERN_METRICS(X)
#undef X
      M_ERRORS_BASE_, /* then one slot per protocol error code (LC_ERROR_MAP) and one for others,
                   * and as many again for login failures */
} metric_t;

/* Adds n (negative for a gauge going down) to a counter or gauge. */
void metric_add(metric_t m, int64_t n);
static inline void metric_inc(metric_t m) { metric_add(m, 1); }
/* The per-frame stages (read, decode, handle) time one frame in STAGE_SAMPLE on each thread
 * and add its time STAGE_SAMPLE times: their clock reads cost ~1.5% of the server's CPU at
 * pairs flat out when every frame was timed (bench/README.md, issue #13). True for the first
 * call at a site on a thread, then every STAGE_SAMPLE-th. Each site counts on its own: with
 * one frame per read, a shared count gave the read site the even calls and the decode site
 * only odd ones, and decode was never timed. */
enum { STAGE_SAMPLE = 8 };
typedef enum { STAGE_SITE_READ, STAGE_SITE_FRAME, STAGE_SITES } stage_site_t;
int metric_stage_sampled(stage_site_t site);
/* Records one observation of a histogram, in microseconds (HISTC: the count). */
void metric_observe_us(metric_t m, uint64_t us);
void metric_observe_count(metric_t m, uint64_t n);
/* Counts one protocol error sent to a client ({cmd: error} with this code): the series
 * tern_errors_total{code, reason}. */
void metric_error(int code);
/* Counts one refused login (session/open answered with an error or session/closed) by
 * code: tern_login_failures_total{code, reason}. */
void metric_login_failed(int code);

/* The value of a counter or gauge summed over every shard (tests, /1.2/rtm/stats). */
int64_t metric_value(metric_t m);
/* Appends every series in Prometheus text format 0.0.4. */
void metrics_render(buf_t *out);
/* The standard process_* series (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds) from /proc/self, as the official clients export them. */
void metrics_render_process(buf_t *out);

#endif
