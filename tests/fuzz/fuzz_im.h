/* fuzz_im.h — the in-process server the IM-facing fuzz targets drive.
 *
 * fuzz_dispatch, fuzz_ws_frame and fuzz_http all end in im_link_message(), so they share
 * one server: the real config, store and im, without threads or sockets. The store runs
 * with inline writes on a temporary SQLite file; its completions (which production posts
 * to a worker's inbox) are queued here and run by fz_drain(), the harness's stand-in for
 * "the next loop iteration", so a target can choose to let several frames in before the
 * writes they caused complete — as a fast client can.
 *
 * Every input starts from an empty database and a fresh im (fz_begin), so a crash found
 * in a long run reproduces from its one input file.
 *
 * Inputs cannot know the ids the server invents (conversation ids, message ids, session
 * tokens), so the harness learns them from the server's own frames and substitutes them
 * for fixed-length placeholders in later client bytes:
 *
 *   $c0$$$$$$$$$$$$$$$$$$$$$  (24 bytes)  the 1st..4th conversation id seen (24 hex)
 *   $t0$$$$$$$$$$$$$$$$$$$$$$$$$$ (29)    the 1st..4th temporary one (_tmp:…)
 *   $m0$$$$$$$$$$$$$$$$$$$  (22 bytes)    the 1st..4th message id seen
 *   $s0$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$ (46)  the 1st..4th session token seen (untagged)
 *   $u0$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$ (47) the 1st..4th session token with a one-byte
 *                                                   tag (single sign-on: `tag: "m"`)
 *   $g0$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$ (46)  an X-LC-Sign value "md5hex,ts" (fuzz_http
 *                                                   computes four at the start of each input)
 *
 * (digit 0..3). A placeholder keeps its length, so it can sit anywhere — in a protobuf
 * string, inside where-JSON — without re-encoding anything. */
#ifndef TERN_FUZZ_IM_H
#define TERN_FUZZ_IM_H

#include <stddef.h>
#include <stdint.h>

#include "im.h"
#include "server.h"

#define FZ_APP_ID "probeAppId0000000000000-gzGzoHsz" /* the id in tests/unit/data/vectors.jsonl */

/* Once per process: config defaults (tightened a little so inputs stay fast), a temp
 * database, the store, worker 0 (its loop initialised, never run as a thread; the calling
 * thread is worker 0). Idempotent. */
void fz_setup(void);
server_t *fz_server(void);
im_worker_t *fz_imw(void);

/* Starts one input on an empty database, with no learned ids. */
void fz_begin(void);
/* Runs every queued store completion and every piece of thread-pool work on worker 0's
 * loop (and whatever they queue) until none is left. */
void fz_drain(void);
/* Ends one input: drains, then checks what the input left stored against security.md's
 * promises (documents at most JSON_MAX_DEPTH deep, client ids utf8_client_id_ok): a
 * violation is a finding (fz_fail). Callers must have dropped their links first. */
void fz_end(void);

/* A frame the server sent (one serialized GenericCommand): it must decode — every
 * required field present — or the process aborts with the bytes in hex. Ids in it are
 * learned for fz_substitute. */
void fz_server_frame(const uint8_t *p, size_t n);
/* Learns one id (kind by shape) as if the server had sent it. */
void fz_learn(const char *s);
/* Replaces learned-id placeholders in client bytes, in place. */
void fz_substitute(uint8_t *p, size_t n);

/* Aborts with a message and a hex dump (the fuzzer then saves the input). */
void fz_fail(const char *what, const uint8_t *p, size_t n) __attribute__((noreturn));

#endif
