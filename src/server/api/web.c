/* web.c — static assets of the console and the chat, held in memory (see web.h). */
#include "web.h"

#include <dirent.h>
#include <errno.h>
#include <http_parser.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "worker.h"

typedef struct {
  char *path; /* "/console/index.html": '/' then the path under the root */
  const char *type;
  uint8_t *data;
  size_t len;
  char etag[20]; /* "\"" + 16 hex + "\"" */
} asset_t;

struct web {
  char *dir;
  asset_t *v;
  size_t n, cap, bytes;
};

static const struct {
  const char *ext, *type;
} TYPES[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"txt", "text/plain; charset=utf-8"},
    {"webmanifest", "application/manifest+json"},
};

static const char *type_of(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot)
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
      if (strcasecmp(dot + 1, TYPES[i].ext) == 0) return TYPES[i].type;
  return "application/octet-stream";
}

/* Reads one regular file whole. */
static int read_all(const char *path, size_t size, uint8_t **out) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  uint8_t *d = xmalloc(size ? size : 1);
  size_t got = fread(d, 1, size, f);
  fclose(f);
  if (got != size) {
    free(d);
    return -1;
  }
  *out = d;
  return 0;
}

/* Walks dir (its path under the root is rel, "" at the top), loading regular files. */
static int load_dir(web_t *web, const char *dir, const char *rel, int depth) {
  if (depth > 8) {
    log_at(LOG_ERROR, "web_root: %s is nested more than 8 deep", dir);
    return TERN_ECONFIG;
  }
  DIR *d = opendir(dir);
  if (!d) {
    log_at(LOG_ERROR, "web_root: cannot read %s: %s", dir, strerror(errno));
    return TERN_ECONFIG;
  }
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue; /* ".", "..", dotfiles */
    char full[PATH_MAX], sub[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= sizeof full ||
        (size_t)snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name) >= sizeof sub)
      continue;
    struct stat st;
    if (lstat(full, &st) < 0) continue;
    if (S_ISDIR(st.st_mode)) {
      rc = load_dir(web, full, sub, depth + 1);
    } else if (S_ISREG(st.st_mode)) { /* symbolic links are neither: not served */
      if (web->n == WEB_MAX_FILES || web->bytes + (size_t)st.st_size > WEB_MAX_BYTES) {
        log_at(LOG_ERROR, "web_root: more than %d files or %d MiB under %s", WEB_MAX_FILES, WEB_MAX_BYTES >> 20,
               web->dir);
        rc = TERN_ECONFIG;
        break;
      }
      asset_t a = {.type = type_of(e->d_name), .len = (size_t)st.st_size};
      if (read_all(full, a.len, &a.data) < 0) {
        log_at(LOG_ERROR, "web_root: cannot read %s", full);
        rc = TERN_ECONFIG;
        break;
      }
      uint8_t h[20];
      sha1(a.data, a.len, h);
      a.etag[0] = '"';
      hex_encode(h, 8, a.etag + 1); /* 16 hex digits */
      a.etag[17] = '"';
      a.etag[18] = 0;
      a.path = xstrdup(sub);
      if (web->n == web->cap) {
        web->cap = web->cap ? web->cap * 2 : 32;
        web->v = xrealloc(web->v, web->cap * sizeof *web->v);
      }
      web->v[web->n++] = a;
      web->bytes += a.len;
    }
  }
  closedir(d);
  return rc;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int web_open(const char *dir, web_t **out) {
  *out = NULL;
  char found[PATH_MAX + 32];
  if (dir && strcmp(dir, "off") == 0) return 0;
  if (!dir || !*dir) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = 0;
    snprintf(found, sizeof found, "%s/web", exe);
    if (!is_dir(found)) snprintf(found, sizeof found, "%s/../share/tern/web", exe);
    if (!is_dir(found)) {
      log_at(LOG_INFO, "no web assets beside ternd (build them with make): /console and /chat answer 404");
      return 0;
    }
    dir = found;
  }
  web_t *web = xcalloc(1, sizeof *web);
  web->dir = xstrdup(dir);
  int rc = load_dir(web, dir, "", 0);
  if (rc < 0) {
    web_free(web);
    return rc;
  }
  log_at(LOG_INFO, "web console and chat: %zu files (%zu KiB) from %s", web->n, web->bytes >> 10, dir);
  *out = web;
  return 0;
}

void web_free(web_t *web) {
  if (!web) return;
  for (size_t i = 0; i < web->n; i++) {
    free(web->v[i].path);
    free(web->v[i].data);
  }
  free(web->v);
  free(web->dir);
  free(web);
}

size_t web_count(const web_t *web) { return web ? web->n : 0; }
const char *web_dir(const web_t *web) { return web ? web->dir : NULL; }

/* ---------------------------------------------------------------- requests */

/* A path as sent is served only when plain: unreserved characters and '/', no empty,
 * "." or ".." segment. Nothing is decoded, so nothing can decode into a way out. */
static int plain_path(const char *p) {
  if (*p != '/') return 0;
  for (const char *s = p; *s; s++) {
    char ch = *s;
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
             ch == '_' || ch == '.' || ch == '~' || ch == '/';
    if (!ok) return 0;
  }
  for (const char *seg = p + 1;;) {
    size_t n = strcspn(seg, "/");
    if ((n == 0 && seg[n]) || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) return 0;
    if (!seg[n]) break;
    seg += n + 1;
  }
  return 1;
}

static const asset_t *find(const web_t *web, const char *path) {
  for (size_t i = 0; i < web->n; i++)
    if (strcmp(web->v[i].path, path) == 0) return &web->v[i];
  return NULL;
}

/* host[:port] as the browser sent it, if it is only that; else NULL. */
static const char *plain_host(const http_req_t *r) {
  const char *h = http_header(r, "Host");
  if (!h || !*h || strlen(h) > 255) return NULL;
  for (const char *s = h; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' ||
          *s == ':' || *s == '[' || *s == ']'))
      return NULL;
  return h;
}

static void respond_asset(conn_t *c, const http_req_t *r, const asset_t *a) {
  const char *inm = http_header(r, "If-None-Match");
  int fresh = inm && strstr(inm, a->etag) != NULL;
  const char *host = plain_host(r);
  buf_t h = BUF_INIT;
  int status = fresh ? 304 : 200;
  size_t len = fresh ? 0 : a->len;
  http_note_status(c, status);
  buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nETag: %s\r\nCache-Control: no-cache\r\n",
             status, http_status_text(status), a->type, len, a->etag);
  /* The page talks to its own origin only: REST and uploads over 'self', the chat's
   * WebSocket to the same host (ws: or wss: as the page was loaded). */
  buf_append_str(&h, "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
                     "img-src 'self' data: blob:; font-src 'self'; manifest-src 'self'; connect-src 'self'");
  if (host) buf_printf(&h, " ws://%s wss://%s", host, host);
  buf_append_str(&h, "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
                     "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
                     "Cross-Origin-Opener-Policy: same-origin\r\n");
  buf_printf(&h, "Connection: %s\r\n\r\n", r->keep_alive ? "keep-alive" : "close");
  conn_write(c, h.data, h.len);
  buf_free(&h);
  if (len && r->method != HTTP_HEAD) conn_write(c, a->data, a->len);
  if (!r->keep_alive) conn_close(c, 0, NULL);
}

void web_serve(conn_t *c, const http_req_t *r) {
  const web_t *web = c->w->srv->web;
  if (!web) {
    http_respond_error(c, r, 404, 404, "the web console is not installed (web_root)");
    return;
  }
  const char *p = r->raw_path;
  char path[512];
  size_t n = strlen(p);
  if (n >= sizeof path - 16 || !plain_path(p)) {
    http_respond_error(c, r, 404, 404, "not found");
    return;
  }
  /* /console and /console/ are the page; anything else is a file under it */
  if (p[n - 1] == '/') snprintf(path, sizeof path, "%sindex.html", p);
  else if (!strchr(p + 1, '/')) snprintf(path, sizeof path, "%s/index.html", p);
  else snprintf(path, sizeof path, "%s", p);
  const asset_t *a = find(web, path);
  if (!a) {
    http_respond_error(c, r, 404, 404, "not found");
    return;
  }
  respond_asset(c, r, a);
}
