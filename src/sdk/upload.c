/* upload.c — file messages from a local path: read the file, learn its metadata (name,
 * format, size, and width/height for PNG, GIF and JPEG images), upload it through the
 * server's file endpoint and fill in url and objId (the guide's "scene one").
 *
 * The endpoint is `POST /1.1/files/<name>` answering {objectId, url, name, size, mime_type,
 * metaData} (tern issue #7). The core only builds the request bytes and parses the reply;
 * the adapter's `http` hook moves the bytes, so uploads never block the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define UPLOAD_MAX (64u << 20)

struct upload {
  upload_t *next;
  uint64_t id;
  tern_msg_t *m;
  upload_done_fn done;
  void *ctx;
};

static const struct {
  const char *ext, *mime;
} MIMES[] = {{"png", "image/png"},       {"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"},     {"gif", "image/gif"},
             {"webp", "image/webp"},     {"mp3", "audio/mpeg"},       {"m4a", "audio/mp4"},       {"wav", "audio/wav"},
             {"amr", "audio/amr"},       {"mp4", "video/mp4"},        {"mov", "video/quicktime"}, {"txt", "text/plain"},
             {"pdf", "application/pdf"}, {"json", "application/json"}};

static const char *mime_of(const char *format) {
  if (format)
    for (size_t i = 0; i < sizeof MIMES / sizeof MIMES[0]; i++)
      if (strcasecmp(format, MIMES[i].ext) == 0) return MIMES[i].mime;
  return "application/octet-stream";
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int image_size(const uint8_t *p, size_t n, int *w, int *h) {
  if (n >= 24 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(p + 12, "IHDR", 4) == 0) {
    *w = (int)be32(p + 16);
    *h = (int)be32(p + 20);
    return 0;
  }
  if (n >= 10 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) {
    *w = p[6] | p[7] << 8;
    *h = p[8] | p[9] << 8;
    return 0;
  }
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) { /* JPEG: walk segments to a SOFn */
    size_t i = 2;
    while (i + 9 < n) {
      if (p[i] != 0xFF) return TERN_EINVAL;
      uint8_t mk = p[i + 1];
      size_t len = (size_t)(p[i + 2] << 8 | p[i + 3]);
      if (mk >= 0xC0 && mk <= 0xCF && mk != 0xC4 && mk != 0xC8 && mk != 0xCC) {
        *h = p[i + 5] << 8 | p[i + 6];
        *w = p[i + 7] << 8 | p[i + 8];
        return 0;
      }
      i += 2 + len;
    }
  }
  return TERN_EINVAL;
}

static int read_file(const char *path, uint8_t **out, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return TERN_ENOENT;
  sbuf_t b = SBUF_INIT;
  uint8_t chunk[65536];
  size_t k;
  int rc = 0;
  while (rc == 0 && (k = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + k > UPLOAD_MAX) rc = TERN_E2BIG;
    else rc = sbuf_append(&b, chunk, k);
  }
  if (rc == 0 && ferror(f)) rc = TERN_EIO;
  fclose(f);
  if (rc < 0) {
    sbuf_free(&b);
    return rc;
  }
  *out = b.data;
  *n = b.len;
  return 0;
}

static int url_encode(sbuf_t *b, const char *s) {
  int rc = 0;
  for (; *s && rc == 0; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-_.~", ch))
      rc = sbuf_append(b, s, 1);
    else rc = sbuf_printf(b, "%%%02X", ch);
  }
  return rc;
}

int upload_start(tern_t *t, tern_msg_t *m, upload_done_fn done, void *ctx) {
  if (!t->io.http) return TERN_ECONFIG;
  uint8_t *data = NULL;
  size_t n = 0;
  int rc = read_file(m->file_path, &data, &n);
  if (rc < 0) return rc;
  m->file_size = (int64_t)n;
  int w, h;
  if (m->type == TERN_MSG_IMAGE && image_size(data, n, &w, &h) == 0) {
    m->file_width = w;
    m->file_height = h;
  }
  upload_t *u = calloc(1, sizeof *u);
  if (!u) {
    free(data);
    return TERN_ENOMEM;
  }
  u->id = ++t->next_http_id;
  u->m = m;
  u->done = done;
  u->ctx = ctx;
  sbuf_t req = SBUF_INIT;
  rc = sbuf_append_str(&req, "POST /1.1/files/");
  if (rc == 0) rc = url_encode(&req, m->file_name ? m->file_name : "file");
  if (rc == 0)
    rc = sbuf_printf(&req, " HTTP/1.1\r\nHost: %s:%d\r\nX-LC-Id: %s\r\n", t->http_host, t->http_port, t->app_id);
  if (rc == 0 && t->app_key) rc = sbuf_printf(&req, "X-LC-Key: %s\r\n", t->app_key);
  if (rc == 0)
    rc = sbuf_printf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     mime_of(m->file_format), n);
  if (rc == 0) rc = sbuf_append(&req, data, n);
  free(data);
  if (rc < 0) {
    sbuf_free(&req);
    free(u);
    return rc;
  }
  u->next = t->uploads;
  t->uploads = u;
  tlog(t, TERN_LOG_INFO, "uploading %s (%zu bytes)", m->file_name ? m->file_name : "file", n);
  t->io.http(t->io.data, u->id, t->http_host, t->http_port, req.data, req.len);
  sbuf_free(&req);
  return 0;
}

/* Returns the body of a complete HTTP response (Content-Length or until EOF), or NULL. */
static const char *http_body(const char *resp, size_t n, int *status, size_t *blen) {
  if (n < 12 || strncmp(resp, "HTTP/1.", 7) != 0) return NULL;
  *status = (int)strtol(resp + 9, NULL, 10); /* "HTTP/1.x NNN": 0 when not a number */
  const char *end = NULL;
  for (size_t i = 0; i + 3 < n; i++)
    if (memcmp(resp + i, "\r\n\r\n", 4) == 0) {
      end = resp + i + 4;
      break;
    }
  if (!end) return NULL;
  *blen = n - (size_t)(end - resp);
  return end;
}

void upload_on_http_done(tern_t *t, uint64_t id, int status, const void *resp, size_t n) {
  upload_t **pp = &t->uploads;
  while (*pp && (*pp)->id != id) pp = &(*pp)->next;
  if (!*pp) return;
  upload_t *u = *pp;
  *pp = u->next;
  int rc = status;
  if (rc == 0) {
    char *text = malloc(n + 1);
    if (!text) rc = TERN_ENOMEM;
    else {
      memcpy(text, resp, n);
      text[n] = 0;
      int http = 0;
      size_t blen = 0;
      const char *body = http_body(text, n, &http, &blen);
      json_t *j = body && http >= 200 && http < 300 ? json_loadb(body, blen, 0, NULL) : NULL;
      const char *url = json_string_value(json_object_get(j, "url"));
      if (!url) {
        tlog(t, TERN_LOG_WARN, "upload failed: HTTP %d", http);
        rc = TERN_EUPLOAD;
      } else {
        msg_set_str(&u->m->file_url, url);
        msg_set_str(&u->m->file_obj_id, json_string_value(json_object_get(j, "objectId")));
      }
      json_decref(j);
      free(text);
    }
  }
  u->done(t, u->ctx, rc);
  free(u);
}

void upload_cancel_all(tern_t *t) {
  while (t->uploads) {
    upload_t *u = t->uploads;
    t->uploads = u->next;
    u->done(t, u->ctx, TERN_ECANCELED);
    free(u);
  }
}
