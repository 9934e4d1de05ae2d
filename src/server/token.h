/* token.h — session tokens (`st`, protocol.md §3.1).
 *
 * A token is sealed, not stored: base64url(expiry ‖ nonce ‖ HMAC-SHA256(master key, app ‖
 * client ‖ expiry ‖ nonce ‖ tag)[0..16] ‖ tag). It is unguessable, bound to one client id,
 * one app and the login's single-sign-on tag, expires on its own, and survives a server
 * restart — so a client whose connection dropped while ternd restarted still resumes with
 * `r:true` + `st`, and a reconnect knows which tag it logged in with. */
#ifndef TERN_TOKEN_H
#define TERN_TOKEN_H

#include <stdint.h>

#define TOKEN_TAG_MAX 256                                  /* bytes of tag a token can carry */
#define TOKEN_MAX_LEN (((28 + TOKEN_TAG_MAX) * 4 + 2) / 3) /* base64url, no padding */

/* Writes a NUL-terminated token valid for ttl_s seconds into out (TOKEN_MAX_LEN + 1 bytes).
 * tag may be NULL (no single sign-on); longer than TOKEN_TAG_MAX bytes is cut. */
void token_make(const char *master_key, const char *app_id, const char *client_id, const char *tag, int64_t ttl_s,
                char *out);
/* 0 if st is a live token for client_id; TERN_EINVAL if forged or for someone else,
 * TERN_ETIMEDOUT if expired. *expires_ms and *tag (malloc'd, NULL when none) are optional. */
int token_check(const char *master_key, const char *app_id, const char *client_id, const char *st, int64_t *expires_ms,
                char **tag);

#endif
