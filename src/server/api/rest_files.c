/* rest_files.c — the file endpoint (issue #7 §4): uploads, downloads with byte ranges,
 * metadata and deletion, over the local storage in files.c.
 *
 *   POST   /1.1/files/<name>        raw bytes, Content-Type kept as mime_type     app key
 *   POST   /1.1/files[/<name>]      JSON {"base64", "name", "mime_type"|"_ContentType",
 *                                   "metaData"} (the old JS SDK's AV.File upload)  app key
 *   POST   /1.1/files[/<name>]      JSON {"name", "url", "mime_type", "metaData": {"__source":
 *                                   "external", …}}: AV.File.withURL(…).save(), a file
 *                                   object pointing elsewhere; no bytes are kept     app key
 *   GET    /1.1/files/<objectId>    the metadata                                  app key
 *   DELETE /1.1/files/<objectId>    {}                                            master key
 *   GET    /files/<objectId>[/<name>]  the bytes, one Range allowed; HEAD too      none
 *   POST   /1.1/fileTokens          JSON {name, mime_type?, metaData?}: an objectId and an
 *                                   upload URL (AV.File.save() of leancloud-storage 4.x) app key
 *   PUT    /1.1/fileUploads/<id>?token=…  the bytes, to the URL fileTokens gave   the token
 *   POST   /1.1/fileCallback        {token, result}: result false deletes the file  app key
 * (/1.2/files/… alike.) Downloads need no key: their URLs are what image and file
 * messages carry (protocol.md §4 `_lcfile.url`), and a receiver just fetches them.
 *
 * The token flow is the cloud's, with tern as its storage provider: fileTokens answers
 * provider "s3", whose uploader in the SDKs is a plain PUT of the bytes to upload_url. The
 * token is stateless — the objectId, expiry, name, type and the client's metaData, signed
 * with HMAC-SHA256 under the master key — so any worker takes the PUT and nothing is kept
 * for an upload that never comes. files_put stores an id once, and never again once it was
 * deleted: a replayed PUT gets 409, also after fileCallback {result: false} removed what
 * the first one stored.
 *
 * Who may call what is the route table's (routes.c, checked from the request's head by
 * rest_auth.c); an upload also needs one of a limited number of upload slots
 * (rest_files_admit), held until its body is freed. The handlers below start the work.
 *
 * Nothing here blocks the worker's loop on the disk. Each request becomes a job on libuv's
 * thread pool — hashing and writing an upload, reading metadata, deleting, opening a
 * download — while the request is deferred (http_defer: pipelined requests wait behind
 * it). The job finds its connection again by handle when it is done, since the client may
 * have gone meanwhile. A download then streams from the open file in 64 KiB pieces read
 * with uv_fs_read, each one when the previous has been written out (a conn_source_t), so
 * neither memory nor the connection's output limit grows with the file. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base64.h"
#include "crypto.h"
#include "err.h"
#include "files.h"
#include "imgsize.h"
#include "jsonlim.h"
#include "log.h"
#include "rest.h"
#include "timeutil.h"
#include "worker.h"

#define STREAM_CHUNK (64 * 1024)
#define NAME_MAX_BYTES 1024
#define MIME_MAX_BYTES 127
#define JSON_SLACK (64 * 1024) /* room for name and metaData around a JSON upload's base64 */
#define EXTERNAL_URL_MAX 2048
#define EXTERNAL_META_MAX 4096

static const struct {
  const char *ext, *mime;
} MIMES[] = {
    {"png", "image/png"},   {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},     {"gif", "image/gif"},
    {"webp", "image/webp"}, {"bmp", "image/bmp"},         {"svg", "image/svg+xml"},   {"ico", "image/x-icon"},
    {"mp3", "audio/mpeg"},  {"m4a", "audio/mp4"},         {"aac", "audio/aac"},       {"wav", "audio/wav"},
    {"amr", "audio/amr"},   {"ogg", "audio/ogg"},         {"mp4", "video/mp4"},       {"mov", "video/quicktime"},
    {"webm", "video/webm"}, {"txt", "text/plain"},        {"html", "text/html"},      {"css", "text/css"},
    {"csv", "text/csv"},    {"json", "application/json"}, {"pdf", "application/pdf"}, {"zip", "application/zip"},
};

static const char *mime_guess(const char *name) {
  const char *dot = name ? strrchr(name, '.') : NULL;
  if (dot)
    for (size_t i = 0; i < sizeof MIMES / sizeof MIMES[0]; i++)
      if (strcasecmp(dot + 1, MIMES[i].ext) == 0) return MIMES[i].mime;
  return "application/octet-stream";
}

/* A media type we are willing to store and send back in a header: printable ASCII with a
 * '/', trimmed, not too long. Returns a new string or NULL. */
static char *mime_clean(const char *s) {
  if (!s) return NULL;
  while (*s == ' ') s++;
  size_t n = strlen(s);
  while (n && s[n - 1] == ' ') n--;
  if (n == 0 || n > MIME_MAX_BYTES || !memchr(s, '/', n)) return NULL;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x20 || s[i] > 0x7e) return NULL;
  return xstrndup(s, n);
}

static int is_json_request(const http_req_t *r) {
  const char *ct = http_header(r, "Content-Type");
  return ct && strncasecmp(ct, "application/json", 16) == 0;
}

/* A file name: 1..NAME_MAX_BYTES bytes of UTF-8 without control characters. */
static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_BYTES) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
  json_t *probe = json_stringn(s, n); /* NULL when not UTF-8 */
  json_decref(probe);
  return probe != NULL;
}

/* The scheme and authority file URLs start with: public_http_url, else public_url's
 * with ws→http and wss→https. No trailing '/'. */
static void public_base(const server_t *srv, buf_t *b) {
  const char *u = srv->cfg->public_http_url;
  if (u && *u) {
    size_t n = strlen(u);
    while (n && u[n - 1] == '/') n--;
    buf_append(b, u, n);
    return;
  }
  u = srv->public_url ? srv->public_url : "";
  if (strncmp(u, "wss://", 6) == 0) {
    buf_append_str(b, "https://");
    u += 6;
  } else if (strncmp(u, "ws://", 5) == 0) {
    buf_append_str(b, "http://");
    u += 5;
  } else {
    buf_append_str(b, "http://");
    const char *sep = strstr(u, "://");
    if (sep) u = sep + 3;
  }
  buf_append(b, u, strcspn(u, "/?#"));
}

/* The download URL of file id named name. */
static json_t *file_url(const server_t *srv, const char *id, const char *name) {
  buf_t url = BUF_INIT;
  public_base(srv, &url);
  buf_printf(&url, "/files/%s/", id);
  buf_append_pct(&url, name ? name : "file");
  json_t *out = json_stringn((char *)url.data, url.len);
  buf_free(&url);
  return out;
}

/* The stored metadata plus the URL: what uploads and metadata reads answer. An external
 * file (AV.File.withURL, or an import that was not rehosted: rest_import.c) keeps the URL
 * it was saved with. */
static json_t *with_url(const server_t *srv, json_t *meta, const char *id) {
  json_t *out = json_copy(meta);
  if (!json_is_string(json_object_get(meta, "url")))
    json_object_set_new(out, "url", file_url(srv, id, json_string_value(json_object_get(meta, "name"))));
  return out;
}

json_t *rest_file_json(const server_t *srv, json_t *meta, const char *id) { return with_url(srv, meta, id); }

/* ---------------------------------------------------------------- jobs on the thread pool */

typedef enum { JOB_PUT, JOB_META, JOB_DELETE, JOB_OPEN } job_kind_t;

typedef struct {
  uv_work_t work; /* first: the callbacks get &work */
  job_kind_t kind;
  worker_t *w;
  uint64_t conn; /* the connection by handle: it may be gone when the job is done */
  const files_t *files;
  char id[FILES_ID_LEN + 1];
  /* JOB_PUT input: the body (owned), the name from the path, the Content-Type header;
   * from an upload token also the id (preset), the type and the client's metaData */
  buf_t data;
  char *name, *content_type;
  int json;
  size_t max;
  char *mime;
  json_t *client_meta;
  char *external; /* JOB_PUT of an external file: its URL (no bytes are kept) */
  void *slot;     /* the upload slot its body holds (http_take_slot), released with it */
  int callback;   /* JOB_DELETE for a failed upload's fileCallback: gone already is fine */
  /* results */
  int status, code;
  char error[160];
  json_t *meta; /* the stored metadata (PUT, META, OPEN) */
  int fd;       /* JOB_OPEN: the open file, handed to the download stream */
  int64_t size;
} job_t;

static void job_fail(job_t *j, int status, int code, const char *msg) {
  j->status = status;
  j->code = code;
  snprintf(j->error, sizeof j->error, "%s", msg);
}

/* An external file's URL: http or https with a host, no spaces or control characters (UTF-8
 * is allowed: JSON brought it, valid), not too long. */
static int external_url_ok(const char *u) {
  if (!u) return 0;
  size_t n = strlen(u);
  if (n > EXTERNAL_URL_MAX || (strncasecmp(u, "https://", 8) != 0 && strncasecmp(u, "http://", 7) != 0)) return 0;
  size_t host = strncasecmp(u, "https://", 8) == 0 ? 8 : 7;
  if (n == host || u[host] == '/') return 0; /* a host is needed */
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f) return 0;
  return 1;
}

/* AV.File.withURL(name, url).save() (leancloud-storage): {"name", "url", "mime_type"?,
 * "metaData": {"__source": "external", "size": 0, …}} — to POST /1.1/files, or to a named
 * path: there it needs the __source mark, since any other JSON is a file to store as is.
 * Fills the job as a file object of no bytes that points at url (j->external); returns 1
 * when the body is that, 0 when not, -1 after job_fail. */
static int put_external(job_t *j, json_t *body, char **name, char **mime, json_t **client_meta) {
  json_t *url = json_object_get(body, "url"), *md = json_object_get(body, "metaData");
  const char *src = json_string_value(json_object_get(md, "__source"));
  if (!json_is_string(url) || json_object_get(body, "base64") || (j->name && !(src && !strcmp(src, "external"))))
    return 0;
  if (!external_url_ok(json_string_value(url))) {
    job_fail(j, 400, 107, "an external file's url must be an http:// or https:// URL of at most 2048 characters");
    return -1;
  }
  if (md && !json_is_object(md)) {
    job_fail(j, 400, 107, "metaData must be an object");
    return -1;
  }
  char *text = md ? json_dumps(md, JSON_COMPACT) : NULL;
  size_t len = text ? strlen(text) : 0;
  free(text);
  if (len > EXTERNAL_META_MAX) {
    job_fail(j, 400, 107, "an external file's metaData is at most 4096 bytes of JSON");
    return -1;
  }
  const char *jn = json_string_value(json_object_get(body, "name"));
  if (jn && !*name) *name = xstrdup(jn);
  *mime = mime_clean(json_string_value(json_object_get(body, "mime_type")));
  *client_meta = md ? json_deep_copy(md) : json_object();
  j->external = xstrdup(json_string_value(url));
  buf_free(&j->data);
  return 1;
}

/* JSON uploads: {"base64": "...", "name"?, "mime_type"? | "_ContentType"?, "metaData"?}.
 * Swaps j->data for the decoded bytes; returns 1 when the body is that shape (or an
 * external file's, put_external), 0 when it is not (then, with a name in the path, it is a
 * JSON file uploaded as is), -1 after job_fail. */
static int put_decode_json(job_t *j, char **name, char **mime, json_t **client_meta) {
  json_t *body = json_loadb_capped((const char *)j->data.data, j->data.len, 0, NULL);
  json_t *b64 = json_object_get(body, "base64");
  if (!json_is_string(b64)) {
    int ext = json_is_object(body) ? put_external(j, body, name, mime, client_meta) : 0;
    json_decref(body);
    if (ext) return ext;
    if (j->name) return 0;
    job_fail(j, 400, 107,
             "a JSON upload is {\"base64\": \"...\", \"name\": \"...\"}, or {\"name\", \"url\"} for an external file");
    return -1;
  }
  const char *s = json_string_value(b64);
  size_t n = json_string_length(b64);
  /* base64 wrapped in lines (MIME style) is still base64: drop the whitespace first */
  char *clean = xmalloc(n + 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] != '\r' && s[i] != '\n' && s[i] != ' ' && s[i] != '\t') clean[k++] = s[i];
  int rc = 0;
  if (k / 4 * 3 > j->max + 3) {
    job_fail(j, 413, 413, "file too large");
    rc = -1;
    goto out;
  }
  uint8_t *raw = xmalloc(k / 4 * 3 + 3);
  long len = base64_decode(clean, k, raw);
  if (len < 0) {
    free(raw);
    job_fail(j, 400, 107, "base64 is not valid");
    rc = -1;
    goto out;
  }
  buf_free(&j->data);
  j->data = (buf_t){raw, (size_t)len, (size_t)k / 4 * 3 + 3};
  const char *jn = json_string_value(json_object_get(body, "name"));
  if (jn && !*name) *name = xstrdup(jn);
  json_t *mt = json_object_get(body, "mime_type");
  if (!json_is_string(mt)) mt = json_object_get(body, "_ContentType");
  *mime = mime_clean(json_string_value(mt));
  json_t *md = json_object_get(body, "metaData");
  if (json_is_object(md)) *client_meta = json_deep_copy(md);
  rc = 1;
out:
  free(clean);
  json_decref(body);
  return rc;
}

static void put_work(job_t *j) {
  char *name = j->name ? xstrdup(j->name) : NULL, *mime = j->mime ? xstrdup(j->mime) : NULL;
  json_t *meta = j->client_meta ? json_deep_copy(j->client_meta) : NULL;
  int shaped = j->json ? put_decode_json(j, &name, &mime, &meta) : 0;
  if (shaped < 0) goto out;
  if (!name) {
    job_fail(j, 400, 400, "the file needs a name: POST /1.1/files/<name>");
    goto out;
  }
  if (!name_ok(name)) {
    job_fail(j, 400, 400, "the file name must be 1 to 1024 bytes of UTF-8 without control characters");
    goto out;
  }
  if (j->data.len > j->max) {
    job_fail(j, 413, 413, "file too large");
    goto out;
  }
  /* the Content-Type of a raw upload, unless it is only a client's default for bodies */
  if (!mime && !shaped) mime = mime_clean(j->content_type);
  if (mime && (strncasecmp(mime, "application/octet-stream", 24) == 0 ||
               strncasecmp(mime, "application/x-www-form-urlencoded", 33) == 0)) {
    free(mime);
    mime = NULL;
  }
  if (!mime) mime = xstrdup(mime_guess(name));

  if (!meta) meta = json_object();
  if (!j->external) { /* what the bytes say; an external file's metaData is the client's */
    uint8_t d[16];
    char md5hex[33];
    md5(j->data.data ? j->data.data : (const uint8_t *)"", j->data.len, d);
    hex_encode(d, 16, md5hex);
    json_object_set_new(meta, "size", json_integer((json_int_t)j->data.len));
    json_object_set_new(meta, "_checksum", json_string(md5hex));
  }
  if (!json_object_get(meta, "owner")) json_object_set_new(meta, "owner", json_string("unknown"));
  imgsize_t im;
  if (!j->external && imgsize_parse(j->data.data, j->data.len, &im) == 0) {
    json_object_set_new(meta, "width", json_integer(im.width));
    json_object_set_new(meta, "height", json_integer(im.height));
    json_object_set_new(meta, "format", json_string(im.format));
  }
  char created[ISO_LEN + 1];
  iso_format(now_ms(), created);
  if (!j->id[0]) files_new_id(j->id);
  j->meta = json_pack("{s:s, s:s, s:I, s:s, s:O, s:s}", "objectId", j->id, "name", name, "size",
                      (json_int_t)j->data.len, "mime_type", mime, "metaData", meta, "createdAt", created);
  if (!j->meta) {
    job_fail(j, 400, 400, "metaData could not be stored");
    goto out;
  }
  if (j->external) json_object_set_new(j->meta, "url", json_string(j->external)); /* kept as given */
  int rc = files_put(j->files, j->id, j->data.data, j->data.len, j->meta);
  if (rc < 0) {
    json_decref(j->meta);
    j->meta = NULL;
    if (rc == TERN_EEXIST) job_fail(j, 409, 137, "this upload token was used already");
    else job_fail(j, 500, 1, "the file could not be stored");
    goto out;
  }
  j->status = j->client_meta && !j->external ? 200 : 201; /* a PUT to an upload URL answers as S3 would */
out:
  buf_free(&j->data);          /* up to max_file_size: do not keep it until the answer */
  files_slot_release(j->slot); /* nor its slot, which counts that memory */
  j->slot = NULL;
  json_decref(meta);
  free(name);
  free(mime);
}

static void job_work(uv_work_t *wk) {
  job_t *j = (job_t *)wk;
  int rc = TERN_EINVAL; /* every kind sets it; the compiler cannot see the switch is complete */
  switch (j->kind) {
  case JOB_PUT: put_work(j); return;
  case JOB_META: rc = files_get_meta(j->files, j->id, &j->meta); break;
  case JOB_DELETE: rc = files_delete(j->files, j->id); break;
  case JOB_OPEN:
    rc = files_get_meta(j->files, j->id, &j->meta);
    if (rc == 0 && json_is_string(json_object_get(j->meta, "url"))) {
      /* an external file: its bytes are at its url, and this origin does not redirect to
       * a URL anyone with the app key chose */
      job_fail(j, 404, 404, "this file is an external link: fetch it from its url (GET /1.1/files/<objectId>)");
      return;
    }
    if (rc == 0) rc = files_open_data(j->files, j->id, &j->fd, &j->size);
    break;
  }
  if (rc == TERN_ENOENT && !j->callback) job_fail(j, 404, 404, "file not found");
  else if (rc < 0 && rc != TERN_ENOENT) job_fail(j, 500, 1, "file storage failed");
  else j->status = 200; /* found, or not there when a callback does the answering */
}

/* ---------------------------------------------------------------- downloads */

typedef struct {
  conn_source_t src; /* first: the connection holds &src */
  conn_t *c;         /* NULL once the connection is gone */
  uv_loop_t *loop;
  uv_fs_t req;
  int fd, reading;
  int64_t off, left;
  uint8_t buf[STREAM_CHUNK];
} stream_t;

static void stream_free(stream_t *s) {
  close(s->fd);
  free(s);
}

static void stream_on_read(uv_fs_t *req) {
  stream_t *s = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->reading = 0;
  conn_t *c = s->c;
  if (!c) {
    stream_free(s);
    return;
  }
  if (n <= 0) {
    /* the file failed or shrank under us: the promised Content-Length cannot be kept,
     * and only a cut connection tells the client so */
    log_at(LOG_WARN, "file download: read failed (%s)", n < 0 ? uv_strerror((int)n) : "end of file");
    c->source = NULL;
    stream_free(s);
    conn_abort(c, 1006);
    return;
  }
  if (n > s->left) n = (ssize_t)s->left;
  s->off += n;
  s->left -= n;
  int done = s->left == 0;
  if (done) c->source = NULL;
  conn_write(c, s->buf, (size_t)n);
  if (done) {
    stream_free(s);
    http_resume(c);
  }
}

static void stream_drained(conn_t *c, conn_source_t *src) {
  stream_t *s = (stream_t *)src;
  if (s->reading) return;
  uv_buf_t b = uv_buf_init((char *)s->buf, (unsigned)(s->left < STREAM_CHUNK ? s->left : STREAM_CHUNK));
  s->req.data = s;
  s->reading = 1;
  if (uv_fs_read(s->loop, &s->req, s->fd, &b, 1, s->off, stream_on_read) < 0) {
    uv_fs_req_cleanup(&s->req);
    c->source = NULL;
    stream_free(s);
    conn_abort(c, 1006);
  }
}

static void stream_gone(conn_source_t *src) {
  stream_t *s = (stream_t *)src;
  s->c = NULL;
  if (!s->reading) stream_free(s); /* else stream_on_read frees it */
}

/* The head of a download, then its body through a stream (GET) or nothing (HEAD). */
static void answer_download(conn_t *c, const http_req_t *r, job_t *j) {
  const char *mime_s = json_string_value(json_object_get(j->meta, "mime_type"));
  char *mime = mime_clean(mime_s);
  json_t *md = json_object_get(j->meta, "metaData");
  const char *sum = json_string_value(json_object_get(md, "_checksum"));
  const char *name = json_string_value(json_object_get(j->meta, "name"));
  int64_t first = 0, last = j->size - 1;
  int ranged = http_parse_range(http_header(r, "Range"), j->size, &first, &last);
  if (ranged < 0) {
    char extra[64], body[96];
    snprintf(extra, sizeof extra, "Content-Range: bytes */%lld\r\n", (long long)j->size);
    int n = snprintf(body, sizeof body, "{\"code\":416,\"error\":\"range not satisfiable\"}");
    http_respond(c, r, 416, "application/json; charset=utf-8", body, (size_t)n, extra);
    free(mime);
    http_resume(c);
    return;
  }
  int64_t len = j->size ? last - first + 1 : 0;
  buf_t h = BUF_INIT;
  int status = ranged ? 206 : 200;
  http_note_status(c, status);
  buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %lld\r\nAccept-Ranges: bytes\r\n", status,
             http_status_text(status), mime ? mime : "application/octet-stream", (long long)len);
  if (ranged)
    buf_printf(&h, "Content-Range: bytes %lld-%lld/%lld\r\n", (long long)first, (long long)last, (long long)j->size);
  if (sum && strlen(sum) == 32 && strspn(sum, "0123456789abcdef") == 32) buf_printf(&h, "ETag: \"%s\"\r\n", sum);
  if (name) {
    buf_append_str(&h, "Content-Disposition: inline; filename*=UTF-8''");
    buf_append_pct(&h, name);
    buf_append_str(&h, "\r\n");
  }
  /* An object never changes under its id. Uploads are anyone's content served from the
   * API's origin: no sniffing, and no scripts should one be HTML or SVG. */
  buf_printf(&h,
             "Cache-Control: public, max-age=31536000, immutable\r\nX-Content-Type-Options: nosniff\r\n"
             "Content-Security-Policy: sandbox\r\nAccess-Control-Allow-Origin: *\r\n"
             "Access-Control-Expose-Headers: Content-Length, Content-Range, Accept-Ranges, ETag\r\n"
             "Connection: %s\r\n\r\n",
             r->keep_alive ? "keep-alive" : "close");
  conn_write(c, h.data, h.len);
  buf_free(&h);
  free(mime);
  if (r->method == HTTP_HEAD || len == 0) {
    http_resume(c);
    return;
  }
  stream_t *s = xcalloc(1, sizeof *s);
  s->src.drained = stream_drained;
  s->src.gone = stream_gone;
  s->c = c;
  s->loop = &c->w->loop;
  s->fd = j->fd;
  j->fd = -1;
  s->off = first;
  s->left = len;
  c->source = &s->src; /* the first piece is read once the head is written */
}

static void job_after(uv_work_t *wk, int status) {
  job_t *j = (job_t *)wk;
  conn_t *c;
  const http_req_t *r = http_deferred_find(j->w, j->conn, &c);
  if (r) {
    const server_t *srv = c->w->srv;
    if (j->status >= 400) {
      http_respond_error(c, r, j->status, j->code, j->error);
      http_resume(c);
    } else if (j->kind == JOB_OPEN) {
      answer_download(c, r, j);
    } else {
      json_t *out = j->kind == JOB_DELETE ? json_object() : with_url(srv, j->meta, j->id);
      if (j->kind == JOB_META) json_object_set(out, "updatedAt", json_object_get(j->meta, "createdAt"));
      http_respond_json(c, r, j->status, out);
      http_resume(c);
    }
  }
  if (j->fd >= 0) close(j->fd);
  buf_free(&j->data);
  files_slot_release(j->slot);
  free(j->external);
  free(j->name);
  free(j->content_type);
  free(j->mime);
  json_decref(j->client_meta);
  json_decref(j->meta);
  free(j);
}

static job_t *job_new(conn_t *c, job_kind_t kind) {
  job_t *j = xcalloc(1, sizeof *j);
  j->kind = kind;
  j->w = c->w;
  j->conn = c->id;
  j->files = c->w->srv->files;
  j->fd = -1;
  return j;
}

static void job_submit(conn_t *c, job_t *j) {
  http_defer(c);
  uv_queue_work(&c->w->loop, &j->work, job_work, job_after);
}

/* ---------------------------------------------------------------- handlers */

/* File storage is off only where no server set it up (the fuzz harness). */
static int files_on(conn_t *c, const http_req_t *r) {
  if (c->w->srv->files) return 1;
  http_respond_error(c, r, 404, 404, "file storage is not configured");
  return 0;
}

size_t rest_files_body_limit(conn_t *c, const http_req_t *r) {
  size_t max = (size_t)c->w->srv->cfg->max_file_size;
  return is_json_request(r) && r->method == HTTP_POST ? max / 3 * 4 + 4 + JSON_SLACK : max;
}

int rest_files_admit(conn_t *c, http_req_t *r) {
  server_t *srv = c->w->srv;
  if (!srv->files || r->key == REST_KEY_MASTER) return 0; /* no storage: 404 in turn; the back end is trusted */
  files_slot_t *slot;
  int rc = files_slot_take(srv->files, c->ip, srv->cfg->max_uploads_per_ip, srv->cfg->max_uploads, &slot);
  if (rc == TERN_EAGAIN) {
    r->deny_status = 429;
    r->deny_code = 429;
    r->deny_msg = "Too many uploads in flight from this address (max_uploads_per_ip): retry when one has finished.";
    return -1;
  }
  if (rc < 0) {
    r->deny_status = 503;
    r->deny_code = 503;
    r->deny_msg = "Too many uploads in flight on this server (max_uploads): retry later.";
    return -1;
  }
  r->slot = slot;
  r->slot_free = files_slot_release;
  return 0;
}

void rest_files_metrics(server_t *srv, buf_t *out) {
  if (!srv->files) return;
  long in_use, refused;
  files_slot_stats(srv->files, &in_use, &refused);
  buf_printf(out,
             "# HELP tern_uploads_in_flight File uploads whose bodies are held in memory now.\n"
             "# TYPE tern_uploads_in_flight gauge\ntern_uploads_in_flight %ld\n"
             "# HELP tern_uploads_refused_total Uploads refused for want of a slot (429, 503).\n"
             "# TYPE tern_uploads_refused_total counter\ntern_uploads_refused_total %ld\n",
             in_use, refused);
}

void rest_file_upload(conn_t *c, const http_req_t *r) {
  if (!files_on(c, r)) return;
  job_t *j = job_new(c, JOB_PUT);
  const char *name = http_path_param(r, "name"), *ct = http_header(r, "Content-Type");
  j->name = name ? xstrdup(name) : NULL;
  j->content_type = ct ? xstrdup(ct) : NULL;
  j->json = is_json_request(r);
  j->max = (size_t)c->w->srv->cfg->max_file_size;
  http_take_body(c, &j->data);
  j->slot = http_take_slot(c);
  job_submit(c, j);
}

/* The :id of the route, or a 404 when it cannot name a file. */
static int take_id(conn_t *c, const http_req_t *r, job_t *j) {
  const char *id = http_path_param(r, "id");
  if (!id || !files_valid_id(id)) {
    http_respond_error(c, r, 404, 404, "file not found");
    return -1;
  }
  memcpy(j->id, id, FILES_ID_LEN + 1);
  return 0;
}

static void submit_by_id(conn_t *c, const http_req_t *r, job_kind_t kind) {
  job_t *j = job_new(c, kind);
  if (take_id(c, r, j) < 0) {
    free(j);
    return;
  }
  job_submit(c, j);
}

void rest_file_meta(conn_t *c, const http_req_t *r) {
  if (files_on(c, r)) submit_by_id(c, r, JOB_META);
}

void rest_file_delete(conn_t *c, const http_req_t *r) {
  if (files_on(c, r)) submit_by_id(c, r, JOB_DELETE);
}

void rest_file_download(conn_t *c, const http_req_t *r) {
  if (files_on(c, r)) submit_by_id(c, r, JOB_OPEN);
}

/* ---------------------------------------------------------------- upload tokens */

#define TOKEN_TTL_MS (3600 * 1000) /* an upload URL works for an hour */
#define TOKEN_META_MAX 2048        /* bytes of the client's metaData carried in the URL */
#define TOKEN_MAX 8192             /* the longest a name and metaData can make one, with room */

/* hex HMAC-SHA256 of the token's payload under the master key */
static void token_mac(const server_t *srv, const char *payload, size_t n, char hex[65]) {
  static const char domain[] = "tern file upload token\n"; /* no other HMAC under this key matches */
  buf_t m = BUF_INIT;
  buf_append(&m, domain, sizeof domain - 1);
  buf_append(&m, payload, n);
  uint8_t mac[32];
  hmac_sha256(srv->master_key, strlen(srv->master_key), m.data, m.len, mac);
  hex_encode(mac, sizeof mac, hex);
  buf_free(&m);
}

/* base64url(JSON claims) "." hex MAC; a new string. */
static char *token_make(const server_t *srv, const json_t *claims) {
  char *text = json_dumps(claims, JSON_COMPACT);
  size_t n = strlen(text);
  char *tok = xmalloc(n / 3 * 4 + 4 + 1 + 64 + 1);
  size_t len = base64url_encode((const uint8_t *)text, n, tok);
  tok[len] = '.';
  token_mac(srv, tok, len, tok + len + 1);
  free(text);
  return tok;
}

/* The claims of a token this server made that has not expired (new reference), or NULL. */
static json_t *token_open(const server_t *srv, const char *tok) {
  const char *dot = tok ? strchr(tok, '.') : NULL;
  if (!dot || strlen(tok) > TOKEN_MAX) return NULL;
  char mac[65];
  token_mac(srv, tok, (size_t)(dot - tok), mac);
  if (!ct_equal(mac, 64, dot + 1, strlen(dot + 1))) return NULL;
  uint8_t *raw = xmalloc((size_t)(dot - tok) / 4 * 3 + 3);
  long n = base64_decode(tok, (size_t)(dot - tok), raw);
  json_t *claims = n < 0 ? NULL : json_loadb((const char *)raw, (size_t)n, 0, NULL);
  free(raw);
  json_t *id = json_object_get(claims, "id"), *exp = json_object_get(claims, "exp");
  if (!json_is_string(id) || !files_valid_id(json_string_value(id)) || !json_is_integer(exp) ||
      json_integer_value(exp) < now_ms()) {
    json_decref(claims);
    return NULL;
  }
  return claims;
}

int rest_files_token_ok(conn_t *c, const http_req_t *r) {
  char *tok = http_query_param(r, "token");
  json_t *claims = token_open(c->w->srv, tok);
  free(tok);
  const char *id = http_path_param(r, "id");
  int ok = claims && id && strcmp(id, json_string_value(json_object_get(claims, "id"))) == 0;
  json_decref(claims);
  return ok;
}

void rest_file_token(conn_t *c, const http_req_t *r) {
  if (!files_on(c, r)) return;
  const server_t *srv = c->w->srv;
  json_t *body = json_loadb_capped((const char *)r->body.data, r->body.len, 0, NULL);
  const char *name = json_string_value(json_object_get(body, "name"));
  json_t *md = json_object_get(body, "metaData");
  char *meta_text = json_is_object(md) ? json_dumps(md, JSON_COMPACT) : NULL;
  if (!json_is_object(body) || !name || !name_ok(name)) {
    http_respond_error(c, r, 400, 107,
                       "fileTokens takes {\"name\": 1 to 1024 bytes of UTF-8, \"mime_type\"?, \"metaData\"?}");
  } else if (md && !json_is_null(md) && (!meta_text || strlen(meta_text) > TOKEN_META_MAX)) {
    http_respond_error(c, r, 400, 107, "metaData must be an object of at most 2048 bytes of JSON");
  } else {
    char *mime = mime_clean(json_string_value(json_object_get(body, "mime_type")));
    if (!mime) mime = xstrdup(mime_guess(name));
    char id[FILES_ID_LEN + 1], created[ISO_LEN + 1];
    files_new_id(id);
    int64_t now = now_ms();
    iso_format(now, created);
    json_t *claims =
        json_pack("{s:s, s:I, s:s, s:s}", "id", id, "exp", (json_int_t)now + TOKEN_TTL_MS, "name", name, "mime", mime);
    if (meta_text) json_object_set(claims, "meta", md);
    char *tok = token_make(srv, claims);
    buf_t up = BUF_INIT;
    public_base(srv, &up);
    buf_printf(&up, "/1.1/fileUploads/%s?token=%s", id, tok);
    json_t *out = json_pack("{s:s, s:s, s:s, s:o, s:s%, s:s, s:s, s:s, s:s}", "objectId", id, "createdAt", created,
                            "token", tok, "url", file_url(srv, id, name), "upload_url", (char *)up.data, up.len,
                            "provider", "s3", "bucket", "files", "key", id, "mime_type", mime);
    http_respond_json(c, r, 200, out);
    buf_free(&up);
    free(tok);
    json_decref(claims);
    free(mime);
  }
  free(meta_text);
  json_decref(body);
}

void rest_file_token_upload(conn_t *c, const http_req_t *r) {
  if (!files_on(c, r)) return;
  char *tok = http_query_param(r, "token");
  json_t *claims = token_open(c->w->srv, tok);
  free(tok);
  const char *id = http_path_param(r, "id");
  if (!claims || !id || strcmp(id, json_string_value(json_object_get(claims, "id"))) != 0) {
    http_respond_error(c, r, 403, 403, "the upload token is not valid for this file, or it has expired");
    json_decref(claims);
    return;
  }
  job_t *j = job_new(c, JOB_PUT);
  memcpy(j->id, id, FILES_ID_LEN + 1);
  j->name = xstrdup(json_string_value(json_object_get(claims, "name")));
  j->mime = xstrdup(json_string_value(json_object_get(claims, "mime")));
  json_t *meta = json_object_get(claims, "meta");
  j->client_meta = json_is_object(meta) ? json_incref(meta) : json_object();
  j->max = (size_t)c->w->srv->cfg->max_file_size;
  json_decref(claims);
  http_take_body(c, &j->data);
  j->slot = http_take_slot(c);
  job_submit(c, j);
}

void rest_file_callback(conn_t *c, const http_req_t *r) {
  if (!files_on(c, r)) return;
  json_t *body = json_loadb_capped((const char *)r->body.data, r->body.len, 0, NULL);
  json_t *claims = token_open(c->w->srv, json_string_value(json_object_get(body, "token")));
  json_t *result = json_object_get(body, "result");
  if (!claims || !json_is_boolean(result)) {
    http_respond_error(c, r, 400, 107, "fileCallback takes {\"token\": a valid upload token, \"result\": true|false}");
  } else if (json_is_true(result)) {
    http_respond_json(c, r, 200, json_object()); /* the PUT stored it already */
  } else {                                       /* the client gave up: whatever arrived goes */
    job_t *j = job_new(c, JOB_DELETE);
    memcpy(j->id, json_string_value(json_object_get(claims, "id")), FILES_ID_LEN + 1);
    j->callback = 1;
    job_submit(c, j);
  }
  json_decref(claims);
  json_decref(body);
}
