/* ws.c — the WebSocket side of a connection: frames in, GenericCommands out.
 *
 * Incoming frames are parsed in place (unmasked where they lie); complete messages go to
 * the IM layer over the connection's link (link.h, through net.h's callbacks). Outgoing commands are framed here for the connection's negotiated format: binary
 * frames hold the protobuf bytes, text frames (lc.proto2base64.*) hold their base64. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "conn.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"
#include "ws_frame.h"

static void link_send(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen) {
  conn_t *c = (conn_t *)((char *)l - offsetof(conn_t, link));
  if (c->state != CONN_WS || c->close_sent) return;
  uint8_t hdr[WS_MAX_HEADER];
  if (!c->ws_base64) {
    size_t hl = ws_write_header(hdr, WS_OP_BINARY, plen + blen, NULL);
    uv_buf_t parts[3] = {uv_buf_init((char *)hdr, (unsigned)hl), uv_buf_init((char *)prefix, (unsigned)plen),
                         uv_buf_init((char *)body, (unsigned)blen)};
    conn_writev(c, parts, 3);
    return;
  }
  /* base64 cannot be spliced at arbitrary byte boundaries, so text frames are encoded
   * whole for each recipient; the protobuf body underneath is still shared. */
  size_t raw = plen + blen;
  uint8_t *tmp = xmalloc(raw + base64_encoded_len(raw) + 1);
  if (plen) memcpy(tmp, prefix, plen);
  memcpy(tmp + plen, body, blen);
  char *enc = (char *)tmp + raw;
  size_t elen = base64_encode(tmp, raw, enc);
  size_t hl = ws_write_header(hdr, WS_OP_TEXT, elen, NULL);
  uv_buf_t parts[2] = {uv_buf_init((char *)hdr, (unsigned)hl), uv_buf_init(enc, (unsigned)elen)};
  conn_writev(c, parts, 2);
  free(tmp);
}

static void link_close(im_link_t *l, int code, const char *reason) {
  conn_t *c = (conn_t *)((char *)l - offsetof(conn_t, link));
  conn_close(c, code, reason);
}

static size_t link_queued(im_link_t *l) {
  conn_t *c = (conn_t *)((char *)l - offsetof(conn_t, link));
  return conn_queued(c);
}

static void link_held(im_link_t *l) {
  conn_t *c = (conn_t *)((char *)l - offsetof(conn_t, link));
  conn_held(c);
}

/* l->paused is already set (on) or cleared (off) when this is called: ws_input stops at
 * the next frame while it is set. */
static void link_pause(im_link_t *l, int on) {
  conn_t *c = (conn_t *)((char *)l - offsetof(conn_t, link));
  if (on) conn_pause_input(c);
  else conn_resume_input(c);
}

static const im_link_ops_t link_ops = {link_send, link_close, link_queued, link_held, link_pause};

void ws_start(conn_t *c, int base64, int proto_version) {
  c->state = CONN_WS;
  c->ws_base64 = (uint8_t)base64;
  c->w->srv->net_app->link_open(&c->link, c->w->imw, &link_ops, proto_version, c->ip);
  c->link.last_rx_ms = c->last_rx_ms;
  c->link.base64 = (uint8_t)base64;
  metric_inc(base64 ? M_WS_BASE64 : M_WS_PROTOBUF);
}

static void send_control(conn_t *c, int opcode, const uint8_t *p, size_t n) {
  uint8_t hdr[WS_MAX_HEADER];
  size_t hl = ws_write_header(hdr, opcode, n, NULL);
  uv_buf_t parts[2] = {uv_buf_init((char *)hdr, (unsigned)hl), uv_buf_init((char *)p, (unsigned)n)};
  conn_writev(c, parts, 2);
}

void ws_send_close(conn_t *c, int code, const char *reason) {
  if (c->close_sent || c->state != CONN_WS) return;
  uint8_t payload[125];
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > sizeof payload - 2) rl = sizeof payload - 2;
  payload[0] = (uint8_t)(code >> 8);
  payload[1] = (uint8_t)code;
  if (rl) memcpy(payload + 2, reason, rl); /* reason may be NULL: memcpy's NULL is undefined even for 0 bytes */
  send_control(c, WS_OP_CLOSE, payload, rl + 2);
  c->close_sent = 1;
}

static int deliver(conn_t *c, int opcode, const uint8_t *p, size_t n) {
  /* Decode by frame type rather than by subprotocol: protobufjs accepts either, and a
   * text frame can only be base64. An empty message is a legacy heartbeat: ignore it. */
  if (n == 0) return 0;
  int code = c->w->srv->net_app->link_message(&c->link, p, n, opcode == WS_OP_TEXT);
  if (code) {
    conn_close(c, code, lc_error_name(code));
    return -1;
  }
  return 0;
}

int ws_input(conn_t *c, uint8_t *p, size_t n) {
  size_t off = 0;
  size_t max = (size_t)c->w->srv->cfg->max_frame;
  while (off < n && c->state == CONN_WS && !c->reaping && !c->link.paused) { /* paused: the rest waits in c->in */
    ws_header_t h;
    int r = ws_parse_header(p + off, n - off, &h);
    if (r == 0) break;
    if (r < 0 || !h.masked) { /* RFC 6455 §5.1: client frames must be masked */
      conn_close(c, 1002, "protocol error");
      return (int)n;
    }
    if (h.len > max || (c->frag ? c->frag->len : 0) + h.len > max) {
      conn_close(c, 4109, "FRAME_TOO_LONG");
      return (int)n;
    }
    if (n - off - h.header_len < h.len) break; /* payload incomplete */
    uint8_t *payload = p + off + h.header_len;
    size_t len = (size_t)h.len;
    ws_unmask(payload, len, h.mask, 0);
    off += h.header_len + len;
    switch (h.opcode) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
      if (c->frag_opcode) {
        conn_close(c, 1002, "expected a continuation frame");
        return (int)n;
      }
      if (h.fin) {
        if (deliver(c, h.opcode, payload, len) < 0) return (int)n;
      } else {
        c->frag_opcode = h.opcode;
        c->frag = xcalloc(1, sizeof *c->frag); /* only while a fragmented message arrives */
        buf_append(c->frag, payload, len);
      }
      break;
    case WS_OP_CONT:
      if (!c->frag) { /* no fragmented message under way (frag and frag_opcode go together) */
        conn_close(c, 1002, "unexpected continuation frame");
        return (int)n;
      }
      buf_append(c->frag, payload, len);
      if (h.fin) {
        int op = c->frag_opcode;
        buf_t msg = *c->frag;
        free(c->frag);
        c->frag = NULL;
        c->frag_opcode = 0;
        int rc = deliver(c, op, msg.data, msg.len);
        buf_free(&msg);
        if (rc < 0) return (int)n;
      }
      break;
    case WS_OP_PING: send_control(c, WS_OP_PONG, payload, len); break;
    case WS_OP_PONG: break;
    case WS_OP_CLOSE: {
      int code = len >= 2 ? (payload[0] << 8 | payload[1]) : 1005;
      /* echo the close and finish; im learns the code when the connection is reaped */
      if (!c->close_sent) {
        c->close_sent = 1;
        send_control(c, WS_OP_CLOSE, payload, len >= 2 ? 2 : 0);
      }
      c->close_code = code == 1005 ? 1000 : code;
      c->state = CONN_CLOSING;
      worker_schedule_flush(c->w, c);
      return (int)n;
    }
    }
  }
  return (int)off;
}
