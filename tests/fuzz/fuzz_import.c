/* fuzz_import.c — the import API's NDJSON records (rest_import.c, store_sqlite_import.c)
 * and the reads that follow an import, driven with a well-formed request around any body.
 *
 * fuzz_http reaches POST /1.2/import/records too, but a mutation inside a body rarely keeps
 * its Content-Length right, so most of its mutants never reach the record parser. Here the
 * harness writes the request head (master key, the body's exact length) and the input is
 * the body alone.
 *
 * Input:  mode:u8  body...
 *   mode bit 0  first a live conversation ($c0: "live", members Tom and Jerry) with one
 *               message, created and sent over REST, so it is cached: records that name
 *               $c0$$$… (fuzz_im.h) reach the paths for conversations in use (message keys
 *               from the cache's counter, cached members and sets refreshed)
 *   mode bit 1  the same body is posted a second time (a replay: "unchanged")
 *   mode bit 2  afterwards the reads an importer or an app makes: the _Conversation,
 *               _Installation and _File class reads, the history of the first conversation
 *               the answers named ($c0), paged from the first message id ($m0), an edit
 *               and a recall over REST, and updates of $c0's document (an imported one
 *               larger than max_conv_doc takes only Deletes)
 *   body        NDJSON, one record a line (docs/migrate-api.md); placeholders are replaced
 *
 * Checks, besides the sanitizers and fuzz_conn.h's output checks: the import answers 200
 * with {applied, unchanged, skipped} whose counts add up to the body's non-blank lines
 * (every line is accounted for), or 413 for more than 20,000 records; and what is stored
 * afterwards keeps security.md's promises (fz_end: documents at most 64 levels deep,
 * client ids valid). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "fuzz_conn.h"
#include "fuzz_im.h"
#include "fuzz_target.h"

#define MASTER_HEAD "X-LC-Id: " FZ_APP_ID "\r\nX-LC-Key: fuzz-master-key-0123456789abcdef,master\r\n"

/* One request on c, answered before this returns (fz_conn_feed, chunk 0). Returns the
 * status of its response (0: none). */
static int request(conn_t *c, const char *method, const char *path, const char *type, const uint8_t *body, size_t len) {
  buf_t b = BUF_INIT;
  buf_printf(&b, "%s %s HTTP/1.1\r\nHost: x\r\n" MASTER_HEAD, method, path);
  if (body) buf_printf(&b, "Content-Type: %s\r\nContent-Length: %zu\r\n", type, len);
  buf_append_str(&b, "\r\n");
  if (body) buf_append(&b, body, len);
  fz_conn_feed(c, b.data, b.len, 0);
  buf_free(&b);
  const char *rb;
  size_t rl;
  return fz_conn_last_response(c, &rb, &rl);
}

static int json_request(conn_t *c, const char *method, const char *path, const char *json) {
  return request(c, method, path, "application/json", (const uint8_t *)json, strlen(json));
}

/* Non-blank lines: what the import must account for, one way or another. */
static size_t count_lines(const uint8_t *p, size_t n) {
  size_t lines = 0;
  int blank = 1;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || p[i] == '\n') {
      lines += !blank;
      blank = 1;
    } else if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
      blank = 0;
    }
  }
  return lines;
}

static void import(conn_t *c, const uint8_t *body, size_t n, size_t lines, const uint8_t *in, size_t insize) {
  int status = request(c, "POST", "/1.2/import/records", "application/x-ndjson", body, n);
  if (c->state == CONN_CLOSING || c->reaping) fz_fail("the import closed the connection", in, insize);
  const char *rb;
  size_t rl;
  fz_conn_last_response(c, &rb, &rl);
  if (status == 413 && lines > 20000) return;
  if (status != 200) fz_fail("the import did not answer 200", (const uint8_t *)rb, rl);
  json_t *j = json_loadb(rb, rl, 0, NULL);
  json_t *a = json_object_get(j, "applied"), *u = json_object_get(j, "unchanged"), *s = json_object_get(j, "skipped");
  if (!json_is_integer(a) || !json_is_integer(u) || !json_is_array(s))
    fz_fail("the import's answer is not {applied, unchanged, skipped}", (const uint8_t *)rb, rl);
  size_t total = (size_t)json_integer_value(a) + (size_t)json_integer_value(u) + json_array_size(s);
  json_decref(j);
  if (total != lines) {
    fprintf(stderr, "lines %zu, accounted for %zu\n", lines, total);
    fz_fail("applied + unchanged + skipped is not the number of records", (const uint8_t *)rb, rl);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0];
  const uint8_t *body = data + 1;
  size_t n = size - 1, lines = count_lines(body, n);
  fz_begin();
  /* An answer names every skipped line: thousands of them pass the 64 KiB output_limit the
   * harness sets for fuzz_http's sake, and the connection would be dropped as a slow
   * reader (docs/security.md "Sizing output_limit"). Here the default holds. */
  fz_server()->cfg->output_limit = 8 << 20;
  conn_t *c = fz_conn_new("127.0.0.1");
  if (mode & 1) {
    json_request(c, "POST", "/1.2/rtm/conversations", "{\"name\":\"live\",\"m\":[\"Tom\",\"Jerry\"]}");
    json_request(c, "POST", "/1.2/rtm/conversations/$c0$$$$$$$$$$$$$$$$$$$$$/messages",
                 "{\"from_client\":\"Tom\",\"message\":\"live\"}");
  }
  import(c, body, n, lines, data, size);
  if (mode & 2) import(c, body, n, lines, data, size);
  if (mode & 4) {
    request(c, "GET", "/1.1/classes/_Conversation?count=1&limit=1000&order=-updatedAt,objectId", NULL, NULL, 0);
    request(c, "GET", "/1.1/classes/_Installation?count=1&limit=1000&order=createdAt", NULL, NULL, 0);
    request(c, "GET", "/1.1/classes/_File?count=1&order=-createdAt", NULL, NULL, 0);
    request(c, "GET", "/1.2/rtm/conversations/$c0$$$$$$$$$$$$$$$$$$$$$/messages?limit=100", NULL, NULL, 0);
    request(c, "GET", "/1.2/rtm/conversations/$c0$$$$$$$$$$$$$$$$$$$$$/messages?limit=2&msgid=$m0$$$$$$$$$$$$$$$$$$$",
            NULL, NULL, 0);
    json_request(c, "PUT", "/1.2/rtm/conversations/$c0$$$$$$$$$$$$$$$$$$$$$/messages/$m0$$$$$$$$$$$$$$$$$$$",
                 "{\"from_client\":\"Tom\",\"message\":\"edited\"}");
    json_request(c, "PUT", "/1.2/rtm/conversations/$c0$$$$$$$$$$$$$$$$$$$$$/messages/$m1$$$$$$$$$$$$$$$$$$$/recall",
                 "{\"from_client\":\"Tom\"}");
    request(c, "GET", "/1.2/rtm/clients/Tom/messages?limit=10", NULL, NULL, 0);
    /* a document the import made larger than max_conv_doc takes only Deletes */
    json_request(c, "PUT", "/1.2/rtm/conversations/$c0$$$$$$$$$$$$$$$$$$$$$", "{\"x\":1}");
    json_request(c, "PUT", "/1.2/rtm/conversations/$c0$$$$$$$$$$$$$$$$$$$$$", "{\"big\":{\"__op\":\"Delete\"}}");
    json_request(c, "PUT", "/1.2/rtm/conversations/$c0$$$$$$$$$$$$$$$$$$$$$", "{\"x\":1}");
  }
  fz_conn_free(c);
  fz_end();
  return 0;
}
