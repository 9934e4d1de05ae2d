/* bench_pb.c — the protobuf wire format, by hand, for the handful of fields tern-bench
 * reads and writes (proto/lc.proto field numbers; protocol.md §2).
 *
 * The generator must be cheaper per message than the server, so the hot path neither
 * allocates nor walks descriptors: a reader yields (field, value) pairs in place and the
 * writer appends to a reused buffer. */
#include <string.h>

#include "bench.h"

static int get_varint(pb_rd_t *r, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) return -1;
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

int pb_next(pb_rd_t *r, pb_field_t *f) {
  for (;;) {
    if (r->p >= r->end) return 0;
    uint64_t key;
    if (get_varint(r, &key) < 0) return -1;
    f->field = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    switch (f->wt) {
    case 0:
      if (get_varint(r, &f->v) < 0) return -1;
      return 1;
    case 2: {
      uint64_t n;
      if (get_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p)) return -1;
      f->d = r->p;
      f->n = (size_t)n;
      r->p += n;
      return 1;
    }
    case 1: /* fixed64: not in our schema's use, skipped */
      if (r->end - r->p < 8) return -1;
      r->p += 8;
      continue;
    case 5:
      if (r->end - r->p < 4) return -1;
      r->p += 4;
      continue;
    default: return -1;
    }
  }
}

static void put_raw_varint(buf_t *b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  do {
    tmp[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) tmp[n] |= 0x80;
    n++;
  } while (v);
  buf_append(b, tmp, n);
}

void pb_put_varint(buf_t *b, uint32_t field, uint64_t v) {
  put_raw_varint(b, (uint64_t)field << 3);
  put_raw_varint(b, v);
}

void pb_put_bytes(buf_t *b, uint32_t field, const void *p, size_t n) {
  put_raw_varint(b, (uint64_t)field << 3 | 2);
  put_raw_varint(b, n);
  buf_append(b, p, n);
}

void pb_put_str(buf_t *b, uint32_t field, const char *s) { pb_put_bytes(b, field, s, strlen(s)); }

/* A nested message's length is not known until its fields are written: reserve three
 * bytes (lengths up to 2 MiB), then shrink to the minimal varint in pb_end. */
size_t pb_begin(buf_t *b, uint32_t field) {
  put_raw_varint(b, (uint64_t)field << 3 | 2);
  buf_append(b, "\0\0\0", 3);
  return b->len;
}

void pb_end(buf_t *b, size_t mark) {
  size_t n = b->len - mark;
  uint8_t tmp[3];
  size_t k = 0;
  uint64_t v = n;
  do {
    tmp[k] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) tmp[k] |= 0x80;
    k++;
  } while (v && k < 3);
  memmove(b->data + mark - 3 + k, b->data + mark, n);
  memcpy(b->data + mark - 3, tmp, k);
  b->len = mark - 3 + k + n;
}

int cmd_view(const uint8_t *p, size_t n, cmd_view_t *v) {
  memset(v, 0, sizeof *v);
  pb_rd_t r = {p, p + n};
  pb_field_t f;
  int rc;
  while ((rc = pb_next(&r, &f)) > 0) {
    if (f.wt == 0) {
      if (f.field == 1) v->cmd = (int)f.v;
      else if (f.field == 2) v->op = (int)f.v;
      else if (f.field == 5) {
        v->has_i = 1;
        v->i = (int32_t)f.v;
      }
    } else if (f.wt == 2 && f.field >= 100 && !v->sub_field) {
      v->sub_field = f.field;
      v->sub = f.d;
      v->sub_len = f.n;
    }
  }
  return rc < 0 ? -1 : 0;
}
