/* token.h — session tokens (`st`, protocol.md §3.1).
 *
 * A token is sealed, not stored: base64url(expiry ‖ nonce ‖ HMAC-SHA256(master key,
 * app ‖ client ‖ expiry ‖ nonce)[0..16]). It is unguessable, bound to one client id and
 * one app, expires on its own, and survives a server restart — so a client whose TCP
 * connection dropped while ternd restarted still resumes with `r:true` + `st`. */
#ifndef TERN_TOKEN_H
#define TERN_TOKEN_H

#include <stdint.h>

#define TOKEN_LEN 38 /* base64url of 28 bytes, no padding */

/* Writes a NUL-terminated token valid for ttl_s seconds into out (TOKEN_LEN + 1 bytes). */
void token_make(const char *master_key, const char *app_id, const char *client_id, int64_t ttl_s, char *out);
/* 0 if st is a live token for client_id; TERN_EINVAL if forged or for someone else,
 * TERN_ETIMEDOUT if expired. *expires_ms (optional) gets its expiry. */
int token_check(const char *master_key, const char *app_id, const char *client_id, const char *st, int64_t *expires_ms);

#endif
