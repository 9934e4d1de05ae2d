/* admin_http.c — the HTTP client under `tern admin`: one blocking exchange per call, on
 * libcurl's easy interface.
 *
 * Why not libtern's: libtern moves HTTP bytes through its I/O adapter (tern_io_t.http), a
 * hook made for non-blocking uploads inside an event loop, and answers only the upload
 * it started; reaching it from here would mean a tern_t, a loop and new SDK API for what
 * a command-line tool does once and then exits. libcurl is what ternd (out/httpc.c) and the
 * importer (admin_import_net.c) already use: it brings HTTP/1.1 framing (lengths, chunks),
 * TLS with the certificate checked against the host name or IP, and timeouts, so this file
 * only turns the command's request into an easy handle and libcurl's failures into the
 * sentences `tern admin` has always printed. */
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"

#define BODY_MAX (512u << 20) /* kept in memory; downloads to a sink have no cap */

static int errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---------------------------------------------------------------- the server URL */

int ahttp_server_parse(ahttp_server_t *s, const char *url, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->timeout_ms = 30000;
  const char *p;
  if (strncasecmp(url, "http://", 7) == 0) {
    p = url + 7;
  } else if (strncasecmp(url, "https://", 8) == 0) {
    p = url + 8;
    s->tls = 1;
  } else {
    return errf(err, errlen, "--server must start with http:// or https:// (got %s)", url);
  }
  size_t alen = strcspn(p, "/?#");
  if (alen == 0) return errf(err, errlen, "--server %s has no host", url);
  s->authority = xstrndup(p, alen);
  const char *host = s->authority, *colon;
  size_t hlen;
  if (host[0] == '[') { /* [v6]:port */
    const char *close = strchr(host, ']');
    if (!close) goto bad;
    host++;
    hlen = (size_t)(close - host);
    colon = close[1] == ':' ? close + 1 : NULL;
    if (close[1] && !colon) goto bad;
  } else {
    colon = strchr(host, ':');
    hlen = colon ? (size_t)(colon - host) : strlen(host);
  }
  if (hlen == 0) goto bad;
  s->host = xstrndup(host, hlen);
  if (colon) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535) goto bad;
    s->port = xstrdup(colon + 1);
  } else {
    s->port = xstrdup(s->tls ? "443" : "80");
  }
  const char *path = p + alen;
  size_t plen = strcspn(path, "?#");
  while (plen && path[plen - 1] == '/') plen--;
  s->prefix = xstrndup(path, plen);
  return 0;
bad:
  ahttp_server_free(s);
  return errf(err, errlen, "--server %s: cannot read host and port", url);
}

void ahttp_server_free(ahttp_server_t *s) {
  free(s->host);
  free(s->port);
  free(s->authority);
  free(s->prefix);
  s->host = s->port = s->authority = s->prefix = NULL;
}

/* ---------------------------------------------------------------- one exchange */

typedef struct {
  CURL *easy;
  FILE *sink;      /* a 2xx body goes here, when set */
  buf_t *keep;     /* any other body is kept here */
  uint64_t total;  /* body bytes, wherever they went */
  int write_error; /* errno of a failed write to the sink; -1: the kept body passed BODY_MAX */
} xfer_t;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
  xfer_t *x = ud;
  size_t n = size * nmemb;
  long status = 0;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
  x->total += n;
  if (x->sink && status >= 200 && status < 300) {
    if (fwrite(p, 1, n, x->sink) != n) {
      x->write_error = errno ? errno : EIO;
      return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
    return n;
  }
  if (x->total > BODY_MAX) {
    x->write_error = -1;
    return 0;
  }
  buf_append(x->keep, p, n);
  return n;
}

/* libcurl's failure in the words `tern admin` uses (tests/integration/cli-admin.test.mjs
 * matches some of them). */
static void describe(const ahttp_server_t *s, CURL *e, CURLcode rc, const char *cerr, const xfer_t *x, char *err,
                     size_t errlen) {
  const char *why = *cerr ? cerr : curl_easy_strerror(rc);
  long os_errno = 0;
  curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST: errf(err, errlen, "cannot resolve %s: %s", s->host, why); break;
  case CURLE_COULDNT_CONNECT:
    errf(err, errlen, "cannot connect to %s:%s: %s", s->host, s->port, os_errno ? strerror((int)os_errno) : why);
    break;
  case CURLE_OPERATION_TIMEDOUT: errf(err, errlen, "talking to %s:%s timed out (%s)", s->host, s->port, why); break;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE: {
    /* libcurl checks the name itself and says so at length; OpenSSL's short name for it */
    int name = strstr(why, "subject name") || strstr(why, "host name") || strstr(why, "hostname");
    errf(err, errlen, "TLS with %s:%s failed: %s%s%s", s->host, s->port, name ? "hostname mismatch: " : "", why,
         s->insecure ? "" : " (--cacert FILE trusts a private CA; --insecure skips the check)");
    break;
  }
  case CURLE_GOT_NOTHING: errf(err, errlen, "the server closed the connection without an answer"); break;
  case CURLE_PARTIAL_FILE:
  case CURLE_RECV_ERROR:
    errf(err, errlen, "the server closed the connection in the middle of the answer (%s)", why);
    break;
  case CURLE_SEND_ERROR: errf(err, errlen, "sending the request failed: %s", why); break;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_UNSUPPORTED_PROTOCOL: errf(err, errlen, "the server did not answer in HTTP (%s)", why); break;
  case CURLE_WRITE_ERROR:
    if (x->write_error == -1) errf(err, errlen, "the answer is larger than %u bytes", BODY_MAX);
    else errf(err, errlen, "writing the body failed: %s", strerror(x->write_error ? x->write_error : EIO));
    break;
  default: errf(err, errlen, "the request to %s:%s failed: %s", s->host, s->port, why); break;
  }
}

int ahttp_request(const ahttp_server_t *s, const char *method, const char *path, const char *headers, const void *body,
                  size_t len, FILE *sink, ahttp_resp_t *out, char *err, size_t errlen) {
  static int curl_ready;
  memset(out, 0, sizeof *out);
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return errf(err, errlen, "libcurl could not start");
    curl_ready = 1;
  }
  CURL *e = curl_easy_init();
  if (!e) return errf(err, errlen, "libcurl could not start");
  buf_t url = BUF_INIT;
  buf_printf(&url, "%s://%s%s%s", s->tls ? "https" : "http", s->authority, s->prefix, path);
  /* the caller's "Name: value\r\n" lines, then ours; "Expect:" turns off 100-continue */
  struct curl_slist *hdrs = NULL;
  for (const char *h = headers; h && *h;) {
    size_t n = strcspn(h, "\r\n");
    if (n) {
      char *line = xstrndup(h, n);
      hdrs = curl_slist_append(hdrs, line);
      free(line);
    }
    h += n;
    h += strspn(h, "\r\n");
  }
  hdrs = curl_slist_append(hdrs, "Accept: application/json");
  hdrs = curl_slist_append(hdrs, "Expect:");
  xfer_t x = {.easy = e, .sink = sink, .keep = &out->body};
  char cerr[CURL_ERROR_SIZE] = "";
  long secs = (s->timeout_ms + 999) / 1000;
  curl_easy_setopt(e, CURLOPT_URL, buf_cstr(&url));
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_USERAGENT, "tern-admin");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L); /* one exchange per connection, as before */
  /* --timeout: to connect, and the longest the answer may stall (a download may be long) */
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->timeout_ms);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, secs > 0 ? secs : 1L);
  if (s->tls) {
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (s->insecure) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (s->cacert) {
      curl_easy_setopt(e, CURLOPT_CAINFO, s->cacert);
    }
  }
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
    /* a body, or an empty one with Content-Length: 0 for POST and PUT */
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  CURLcode rc = curl_easy_perform(e);
  int ret = 0;
  if (rc != CURLE_OK) {
    describe(s, e, rc, cerr, &x, err, errlen);
    ret = -1;
  } else {
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    out->status = (int)status;
    out->length = x.total;
    if (sink && status >= 200 && status < 300 && fflush(sink) != 0)
      ret = errf(err, errlen, "writing the body failed: %s", strerror(errno));
  }
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(e);
  buf_free(&url);
  if (ret < 0) ahttp_resp_free(out);
  return ret;
}

void ahttp_resp_free(ahttp_resp_t *r) { buf_free(&r->body); }
