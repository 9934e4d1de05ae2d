/* revoke.h — taking session tokens back (logout, admin kick, single-sign-on displacement).
 *
 * Tokens are sealed (token.h) and work on any worker and after a restart, so revoking one
 * means remembering what it carries: a logout or a displaced login revokes its token's
 * lineage (every token descended from that fresh login: refreshes, reconnects with it); an
 * admin kick revokes every token of the client issued until then, on every device, online
 * or not. Each revocation is a row in the store (a write job, durable across restarts)
 * kept until every token it names has expired, so the tables hold at most one
 * session_ttl's worth of revocations; each write also prunes a few expired rows.
 *
 * The cost lands on reconnects, not logins: a fresh login reads nothing (its token is of a
 * new lineage and issued now); a reconnect with `st` (and a REST call with a session token)
 * makes one indexed read (on PostgreSQL off the worker's loop: revoke_check_read, for a
 * reconnect in im_prefetch.c, for a REST call in api/rest_read.c). Until the job commits, a revocation
 * is held in memory, so it works on every worker at once — a logout followed at once by a
 * reconnect with the old token is refused; if the commit fails it stays in memory (it then
 * does not survive a restart). */
#ifndef TERN_REVOKE_H
#define TERN_REVOKE_H

#include "im_internal.h"
#include "token.h"

typedef struct revoke revoke_t;

revoke_t *revoke_new(void);
void revoke_free(revoke_t *rv); /* after the store has closed (its jobs point here); NULL: no-op */

/* A logout or a displaced login: every token of this lineage stops working now. Call on
 * w's thread. */
void revoke_lineage(im_worker_t *w, const uint8_t lineage[TOKEN_LINEAGE_LEN]);
/* An admin kick: every token of client issued until now stops working. */
void revoke_client(im_worker_t *w, const char *client);
/* 0 when a token of client (as token_check read it) has not been revoked and does not
 * outlive the current session_ttl (it was issued under a longer one); TERN_EPERM when it
 * is revoked, TERN_ESTORE when storage could not tell (callers refuse it then). */
int revoke_check(im_worker_t *w, const char *client, const token_info_t *info);

/* The same check with the store's part read ahead, off the worker's loop (a reconnect's
 * session/open on PostgreSQL, im_prefetch.c): revoke_check_memory is what needs no store
 * (the session_ttl bound and the revocations not committed yet); revoke_read_start notes
 * where the revocations stand (rd->gen) before the read is submitted; revoke_read runs the
 * read, on any thread, with the reader it is given; revoke_check_read is revoke_check
 * using rd's answer. That answer is used only if no revocation that could name this token
 * has committed since revoke_read_start (those not committed are in memory and checked
 * again): else, and when rd is NULL, the store is read again here, on the loop. So a
 * token revoked at any time before revoke_check_read returns is refused, as revoke_check
 * refuses it. */
typedef struct revoke_read {
  char client[64 * 4 + 1];            /* whom the read was about (utf8_client_id_ok) */
  uint8_t lineage[TOKEN_LINEAGE_LEN]; /* and which lineage */
  uint64_t gen;                       /* revocations committed in their buckets when it began */
  int rc;                             /* store_token_revoked's */
  int64_t before;
  int gone;
} revoke_read_t;
int revoke_check_memory(im_worker_t *w, const char *client, const token_info_t *info);
void revoke_read_start(im_worker_t *w, const char *client, const token_info_t *info, revoke_read_t *rd);
void revoke_read(store_reader_t *r, revoke_read_t *rd);
int revoke_check_read(im_worker_t *w, const char *client, const token_info_t *info, const revoke_read_t *rd);
/* A revocation another node made (im_bus.c): kept and stored here as if made here, and
 * not told on. client_kind 1: every token of client issued until `at`; 0: the lineage. */
void revoke_record(im_worker_t *w, int client_kind, const uint8_t lineage[TOKEN_LINEAGE_LEN], const char *client,
                   int64_t at, int64_t expires_at);

#endif
