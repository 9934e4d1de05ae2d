/* token.h — session tokens (`st`, protocol.md §3.1).
 *
 * A token is sealed, not stored: base64url(expiry ‖ issued ‖ lineage ‖ HMAC-SHA256(master
 * key, app ‖ client ‖ expiry ‖ issued ‖ lineage ‖ tag)[0..16] ‖ tag). It is unguessable,
 * bound to one client id, one app and the login's single-sign-on tag, expires on its own,
 * and survives a server restart — so a client whose connection dropped while ternd
 * restarted still resumes with `r:true` + `st`, and a reconnect knows which tag it logged
 * in with.
 *
 * Sealed tokens cannot be taken back by forgetting them, so revocation (revoke.h) names
 * what a token carries: its lineage — 8 random bytes drawn at a fresh login and kept by
 * every token descended from it (a refresh, a reconnect with it, the reconnect's own
 * refreshes) — for a logout or a single-sign-on displacement, and its issue time for an
 * admin kick (every token of the client issued before it). */
#ifndef TERN_TOKEN_H
#define TERN_TOKEN_H

#include <stdint.h>

#define TOKEN_TAG_MAX 256 /* bytes of tag a token can carry */
#define TOKEN_LINEAGE_LEN 8
#define TOKEN_HEAD_LEN 18 /* 4 expiry (s) + 6 issued (ms) + 8 lineage */
#define TOKEN_MAX_LEN (((TOKEN_HEAD_LEN + 16 + TOKEN_TAG_MAX) * 4 + 2) / 3) /* base64url, no padding */

/* What a valid token says. */
typedef struct {
  int64_t expires_ms;                 /* when it stops working (whole seconds) */
  int64_t issued_ms;                  /* when it was made */
  uint8_t lineage[TOKEN_LINEAGE_LEN]; /* the fresh login it descends from */
  char *tag;                          /* malloc'd; NULL when none. The caller frees it */
} token_info_t;

/* Writes a NUL-terminated token valid for ttl_s seconds into out (TOKEN_MAX_LEN + 1 bytes),
 * of a new lineage (a fresh login). tag may be NULL (no single sign-on); longer than
 * TOKEN_TAG_MAX bytes is cut. */
void token_make(const char *master_key, const char *app_id, const char *client_id, const char *tag, int64_t ttl_s,
                char *out);
/* The same for the given lineage (a refresh, or the login a reconnect continues). */
void token_make_lineage(const char *master_key, const char *app_id, const char *client_id, const char *tag,
                        const uint8_t lineage[TOKEN_LINEAGE_LEN], int64_t ttl_s, char *out);
/* 0 if st is a token this key sealed for client_id and it has not expired; TERN_EINVAL if
 * forged, malformed or for someone else, TERN_ETIMEDOUT if expired. info is optional;
 * on 0 it is filled (free info->tag), otherwise its tag is NULL. Whether the token was
 * revoked is revoke_check's question. */
int token_check(const char *master_key, const char *app_id, const char *client_id, const char *st, token_info_t *info);

#endif
