/* sign.h — third-party authorisation signatures (protocol.md §5).
 *
 * The app's own server signs what a client may do with the master key; ternd recomputes.
 * HMAC-SHA1 over a colon-joined string, lowercase hex. The timestamp is accepted in
 * seconds or milliseconds (LeanCloud's docs say ms, its own demos send s), must be within
 * the validity window either way, and a nonce is refused if seen again within the window. */
#ifndef TERN_SIGN_H
#define TERN_SIGN_H

#include <stddef.h>
#include <stdint.h>

typedef struct signer signer_t;

signer_t *signer_new(const char *app_id, const char *master_key, int64_t window_s);
void signer_free(signer_t *sg);

/* The signed string for an operation: parts are joined with ':' in order; ids (members,
 * conversation ids) are sorted and joined with ':' into one part. t is printed as given. */
char *sign_string_login(const char *app_id, const char *client, int64_t t, const char *nonce);
char *sign_string_start(const char *app_id, const char *client, char *const *members, size_t n, int64_t t,
                        const char *nonce);
/* add/remove/blacklist: action is "invite", "kick", "conversation-block-clients", … */
char *sign_string_action(const char *app_id, const char *client, const char *cid, char *const *ids, size_t n, int64_t t,
                         const char *nonce, const char *action);

/* ids sorted and joined with ':' (malloc'd). */
char *sign_join_sorted(char *const *ids, size_t n);

/* 0 when s is the signature of `text` made with the master key, t is within the window and
 * the nonce is fresh (it is then remembered); TERN_EPERM for a wrong signature or missing
 * fields, TERN_ETIMEDOUT for a stale or future timestamp, TERN_EEXIST for a replayed nonce. */
int sign_check(signer_t *sg, const char *text, int64_t t, const char *nonce, const char *s);
/* sign_check in two steps, for a cluster (im_bus.c asks the bus about the nonce between
 * them): the signature and the window (0, TERN_EPERM, TERN_ETIMEDOUT); then this node's
 * replay cache (0 and remembered, or TERN_EEXIST). */
int sign_verify(signer_t *sg, const char *text, int64_t t, const char *nonce, const char *s);
int sign_nonce_fresh(signer_t *sg, const char *nonce);
/* How long a nonce is remembered (twice the validity window), in ms. */
int64_t sign_nonce_ttl_ms(const signer_t *sg);

/* The signature itself, for tests and the REST sign endpoint: 40 hex chars + NUL. */
void sign_make(const char *master_key, const char *text, char out[41]);

#endif
