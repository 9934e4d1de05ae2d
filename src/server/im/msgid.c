/* msgid.c — message ids that name their own storage key.
 *
 * An id is base64url of 16 bytes: 6 bytes of timestamp, 6 of the per-conversation sequence
 * and 4 random. The SDKs treat ids as opaque 22-character strings (the cloud's look the
 * same), and the server gets the (ts, seq) key back from any id a client sends — for
 * history paging, acks, reads and edits — without a secondary index on ids.
 *
 * Imported messages (rest_import.c) keep the cloud's ids, which encode no key: those map
 * to their key in msg_ext, and msg_key_resolve looks there first, only in conversations
 * that hold such messages, so every other conversation pays nothing. */
#include <string.h>

#include "base64.h"
#include "crypto.h"
#include "err.h"
#include "im_internal.h"

/* The random bytes only tell apart ids of different conversations that share (ts, seq);
 * they guard nothing, so a per-thread generator seeded once replaces a getrandom() call
 * per message (visible in profiles of the send path). splitmix64. */
static uint32_t id_noise(void) {
  static _Thread_local uint64_t state;
  if (!state) random_bytes(&state, sizeof state);
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (uint32_t)(z ^ (z >> 31));
}

void msgid_make(int64_t ts, int64_t seq, char out[MSGID_LEN + 1]) {
  uint8_t raw[16];
  for (int i = 0; i < 6; i++) raw[i] = (uint8_t)(ts >> (8 * (5 - i)));
  for (int i = 0; i < 6; i++) raw[6 + i] = (uint8_t)(seq >> (8 * (5 - i)));
  uint32_t r = id_noise();
  memcpy(raw + 12, &r, 4);
  base64url_encode(raw, 16, out);
  out[MSGID_LEN] = 0;
}

int msgid_parse(const char *mid, int64_t *ts, int64_t *seq) {
  if (!mid || strlen(mid) != MSGID_LEN) return TERN_EINVAL;
  uint8_t raw[18];
  if (base64_decode(mid, MSGID_LEN, raw) != 16) return TERN_EINVAL;
  int64_t t = 0, s = 0;
  for (int i = 0; i < 6; i++) t = t << 8 | raw[i];
  for (int i = 0; i < 6; i++) s = s << 8 | raw[6 + i];
  if (s == 0) return TERN_EINVAL;
  *ts = t;
  *seq = s;
  return 0;
}

int msg_key_resolve(im_worker_t *w, conv_t *c, const char *mid, int64_t *ts, int64_t *seq) {
  if (!mid) return TERN_EINVAL;
  if (atomic_load(&c->ext_ids)) {
    int k = im_keys_answer(w, c->id, mid, ts, seq); /* read ahead, off the loop (im_prefetch_keys) */
    if (k == 1) return 0;
    if (k < 0 && store_msg_ext_get(w->reader, c->id, mid, ts, seq) == 0) return 0;
  }
  return msgid_parse(mid, ts, seq);
}
