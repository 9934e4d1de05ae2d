/* bench_mqtt.c — MQTT 3.1.1 over WebSocket (--protocol mqtt): the reference broker runs.
 *
 * Issue #17 compares tern's paced latency with mosquitto's, measured back to back by the
 * same generator on the same machine (bench/README.md, "The mosquitto reference"). Only
 * the pairs scenario speaks it, mapped as closely as MQTT allows: client i subscribes to
 * its own topic "tb/<prefix><i>" (QoS 0, so the broker pushes without waiting for an
 * answer, as ternd does), and a pair's message is a PUBLISH at QoS 1 to the peer's topic,
 * answered by the broker's PUBACK — the counterpart of ternd's ack (which, unlike the
 * PUBACK, also waits for a durable commit). The payload is the same as for ternd, so
 * latency, loss and duplicates are measured by the same code (bench_scen.c).
 *
 * Packets may span WebSocket frames and a frame may hold several: the client's `mq` buffer
 * keeps an incomplete packet's bytes until the rest arrives. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

enum {
  MQ_CONNECT = 1,
  MQ_CONNACK = 2,
  MQ_PUBLISH = 3,
  MQ_PUBACK = 4,
  MQ_SUBSCRIBE = 8,
  MQ_SUBACK = 9,
  MQ_PINGRESP = 13,
};

#define MQ_MAX_PACKET (64 * 1024) /* far above anything the pairs scenario sends */

static void put_u16(buf_t *b, uint16_t v) {
  uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  buf_append(b, p, 2);
}

static void put_str(buf_t *b, const char *s, size_t n) {
  put_u16(b, (uint16_t)n);
  buf_append(b, s, n);
}

/* Sends the packet whose body is in th->scratch: its fixed header is put in front by
 * moving the body (packets are small). */
static void send_packet(client_t *c, uint8_t first) {
  buf_t *b = &c->th->scratch;
  size_t body = b->len;
  uint8_t hdr[5];
  size_t hl = 0;
  hdr[hl++] = first;
  size_t v = body;
  do {
    uint8_t d = (uint8_t)(v & 0x7f);
    v >>= 7;
    hdr[hl++] = (uint8_t)(d | (v ? 0x80 : 0));
  } while (v);
  buf_reserve(b, hl);
  memmove(b->data + hl, b->data, body);
  memcpy(b->data, hdr, hl);
  b->len += hl;
  client_send(c, b->data, b->len);
}

static size_t topic_of(char *out, size_t n, int idx) { return (size_t)snprintf(out, n, "tb/%s%d", bench.prefix, idx); }

void mqtt_send_connect(client_t *c) {
  buf_t *b = &c->th->scratch;
  b->len = 0;
  char id[64];
  int n = snprintf(id, sizeof id, "%s%d", bench.prefix, c->idx);
  put_str(b, "MQTT", 4);
  uint8_t level_flags[2] = {4, 0x02}; /* 3.1.1, clean session */
  buf_append(b, level_flags, 2);
  put_u16(b, 0); /* no keepalive: the run's own traffic is all there is */
  put_str(b, id, (size_t)n);
  send_packet(c, MQ_CONNECT << 4); /* the login ends with the SUBACK that follows CONNACK */
}

static void send_subscribe(client_t *c, uint16_t pid) {
  buf_t *b = &c->th->scratch;
  b->len = 0;
  char topic[80];
  size_t n = topic_of(topic, sizeof topic, c->idx);
  put_u16(b, pid);
  put_str(b, topic, n);
  uint8_t qos = 0;
  buf_append(b, &qos, 1);
  send_packet(c, MQ_SUBSCRIBE << 4 | 0x2);
}

void mqtt_send_publish(client_t *c, int to, int32_t pid, const void *payload, size_t n) {
  buf_t *b = &c->th->scratch;
  b->len = 0;
  char topic[80];
  size_t tn = topic_of(topic, sizeof topic, to);
  put_str(b, topic, tn);
  put_u16(b, (uint16_t)pid);
  buf_append(b, payload, n);
  send_packet(c, MQ_PUBLISH << 4 | 0x2); /* QoS 1 */
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* One whole packet (type and flags, its body). 0, or -1 for a protocol violation. */
static int packet(client_t *c, uint8_t first, const uint8_t *p, size_t n, uint64_t now) {
  pend_t pd;
  switch (first >> 4) {
  case MQ_CONNACK:
    if (n < 2 || p[1] != 0) {
      bench_fail("the broker refused the MQTT connection (code %d)", n >= 2 ? p[1] : -1);
      return -1;
    }
    send_subscribe(c, (uint16_t)client_req(c, P_OPEN, 0, c->t_login));
    return 0;
  case MQ_SUBACK:
    if (n < 3 || p[2] == 0x80 || !client_pend_take(c, get_u16(p), &pd) || pd.kind != P_OPEN) return -1;
    scen_ready(c, now);
    return 0;
  case MQ_PUBACK:
    if (n < 2 || !client_pend_take(c, get_u16(p), &pd)) return -1;
    scen_answered(c, &pd, 1, NULL, now);
    return 0;
  case MQ_PUBLISH: {
    if (n < 2) return -1;
    size_t off = 2 + (size_t)get_u16(p);
    int qos = (first >> 1) & 3;
    if (qos) { /* a broker that upgraded the subscription: answer as 3.1.1 asks */
      if (off + 2 > n) return -1;
      uint8_t ack[4] = {MQ_PUBACK << 4, 2, p[off], p[off + 1]};
      client_send(c, ack, sizeof ack);
      off += 2;
    }
    if (off > n) return -1;
    scen_delivered(c, p + off, n - off, 0, now);
    return 0;
  }
  case MQ_PINGRESP: return 0;
  default: return -1;
  }
}

/* Whole packets from p; returns the bytes used, or -1 on a protocol violation. */
static long packets(client_t *c, const uint8_t *p, size_t n, uint64_t now) {
  size_t off = 0;
  while (off + 2 <= n) {
    size_t len = 0, k = 1;
    int shift = 0;
    for (;;) {
      if (off + k >= n) return (long)off; /* the length is not all here yet */
      uint8_t d = p[off + k++];
      len |= (size_t)(d & 0x7f) << shift;
      if (!(d & 0x80)) break;
      shift += 7;
      if (shift > 21) return -1;
    }
    if (len > MQ_MAX_PACKET) return -1;
    if (off + k + len > n) break;
    if (packet(c, p[off], p + off + k, len, now) < 0) return -1;
    if (c->state >= C_CLOSING || c->state == C_IDLE) return -1;
    off += k + len;
  }
  return (long)off;
}

int mqtt_input(client_t *c, const uint8_t *p, size_t n, uint64_t now) {
  if (!c->mq.len) {
    long used = packets(c, p, n, now);
    if (used < 0) return -1;
    if ((size_t)used < n) buf_append(&c->mq, p + used, n - (size_t)used);
    return 0;
  }
  buf_append(&c->mq, p, n);
  long used = packets(c, c->mq.data, c->mq.len, now);
  if (used < 0) return -1;
  buf_consume(&c->mq, (size_t)used);
  return 0;
}
