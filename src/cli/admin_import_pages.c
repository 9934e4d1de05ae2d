/* admin_import_pages.c — what happens to a page of history between the source and the
 * batch: the files its typed messages refer to are rehosted first (--rehost-files:
 * downloaded without the app's keys, stored with PUT /1.2/import/files/{id}, the URL in the
 * content swapped for tern's), then its records go into the open body, followed by the
 * cursor that says they are done. Export writes pages and files to the directory instead.
 * Split from admin_import.c for size; the run's state is admin_import_run.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin_import_run.h"
#include "crypto.h"
#include "timeutil.h"

/* ---------------------------------------------------------------- files: rehosting */

typedef struct {
  imp_t *im;
  page_t *page;
  char *id, *url, *name, *mime, *created, *meta;
} rehost_t;

static void rehost_end(rehost_t *r);

static void rehost_put_done(imp_req_t *q, void *arg) {
  rehost_t *r = arg;
  imp_t *im = r->im;
  json_t *ans = q->json; /* IMP_JSON: parsed when 2xx */
  const char *nu = json_string_value(json_object_get(ans, "url"));
  if (nu) {
    json_t *d = json_pack("{s:{s:s}, s:{s:s}}", "files", r->id, nu, "urls", r->url, nu);
    if (d) imp_state_commit(im->st, d);
    im->files++;
  } else {
    imp_skip(im, "file", r->id,
             q->status == 404 ? "HTTP 404 (does this ternd have PUT /1.2/import/files/{objectId}?)"
             : q->err[0]      ? q->err
                              : "the target's answer has no url");
  }
  rehost_end(r);
}

static void rehost_got_bytes(imp_req_t *q, void *arg) {
  rehost_t *r = arg;
  imp_t *im = r->im;
  if (im->stop) {
    rehost_end(r);
    return;
  }
  if (q->status < 200 || q->status > 299) {
    char why[400];
    snprintf(why, sizeof why, "download of %s failed: %s", r->url, q->err[0] ? q->err : "no answer");
    imp_skip(im, "file", r->id, why);
    rehost_end(r);
    return;
  }
  if (im->mode == MODE_EXPORT) {
    buf_t p = BUF_INIT;
    buf_printf(&p, "%s/files/", im->out_dir);
    buf_append_pct(&p, r->id);
    FILE *f = fopen(buf_cstr(&p), "wb");
    if (!f || fwrite(q->body.data, 1, q->body.len, f) != q->body.len) imp_skip(im, "file", r->id, strerror(errno));
    else im->files++;
    if (f) fclose(f);
    buf_free(&p);
    rehost_end(r);
    return;
  }
  const char *mime = r->mime ? r->mime : q->content_type ? q->content_type : "application/octet-stream";
  buf_t u = BUF_INIT, h = BUF_INIT;
  buf_printf(&u, "%s/1.2/import/files/", im->target_base);
  buf_append_pct(&u, r->id);
  buf_printf(&h, "%sContent-Type: %s\r\nX-Tern-File-Name: ", im->target_headers, mime);
  buf_append_pct(&h, r->name ? r->name : r->id);
  buf_append_str(&h, "\r\n");
  if (r->created) buf_printf(&h, "X-Tern-Created-At: %s\r\n", r->created);
  if (r->meta) buf_printf(&h, "X-Tern-Meta: %s\r\n", r->meta);
  imp_net_request(im->net, "PUT", buf_cstr(&u), buf_cstr(&h), q->body.data, q->body.len, IMP_FILE | IMP_JSON,
                  rehost_put_done, r);
  buf_free(&u);
  buf_free(&h);
}

static void page_emit(page_t *p);

static void rehost_end(rehost_t *r) {
  page_t *p = r->page;
  free(r->id);
  free(r->url);
  free(r->name);
  free(r->mime);
  free(r->created);
  free(r->meta);
  free(r);
  if (p && --p->pending == 0) page_emit(p);
}

void imp_rehost_start(imp_t *im, page_t *p, const char *id, const char *url, const char *name, const char *mime,
                      const char *created, json_t *meta) {
  rehost_t *r = xcalloc(1, sizeof *r);
  r->im = im;
  r->page = p;
  r->id = xstrdup(id);
  r->url = xstrdup(url);
  r->name = name && !strpbrk(name, "\r\n") ? xstrdup(name) : NULL;
  r->mime = mime && !strpbrk(mime, "\r\n") ? xstrdup(mime) : NULL;
  r->created = created && !strpbrk(created, "\r\n") ? xstrdup(created) : NULL;
  r->meta = json_is_object(meta) ? json_dumps(meta, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
  if (p) p->pending++;
  imp_src_file_bytes(im->src, id, url, rehost_got_bytes, r);
}

/* The new URL of a rehosted file, or NULL. */
const char *imp_rehosted(imp_t *im, const char *objid, const char *url) {
  json_t *doc = imp_state_doc(im->st);
  const char *u = objid ? json_string_value(json_object_get(json_object_get(doc, "files"), objid)) : NULL;
  if (!u && url) u = json_string_value(json_object_get(json_object_get(doc, "urls"), url));
  return u;
}

/* A message file without a _File row: an id from its URL, the same on every run. */
static void url_id(const char *url, char out[25]) {
  uint8_t d[16];
  char hex[33];
  md5(url, strlen(url), d);
  hex_encode(d, 16, hex);
  memcpy(out, hex, 24);
  out[24] = 0;
}

/* ---------------------------------------------------------------- history pages */

static void page_emit(page_t *p) {
  imp_t *im = p->im;
  if (!im->stop && im->mode != MODE_EXPORT) {
    buf_t line = BUF_INIT;
    imp_room_for(im, (int)p->n);
    for (size_t i = 0; i < p->n; i++) {
      const imp_item_t *it = p->e[i].it;
      char *d = NULL;
      json_t *parsed;
      const char *url, *objid, *name;
      if (im->rehost && !it->bin && imp_msg_file(it->data.p, &parsed, &url, &objid, &name)) {
        const char *nu = imp_rehosted(im, objid, url);
        if (nu) d = imp_msg_rewrite_url(it->data.p, url, nu);
        json_decref(parsed);
      }
      const char *why = NULL;
      line.len = 0;
      if (imp_rec_message_line(&line, p->e[i].cid, it, d, d ? strlen(d) : 0, &why) == 0)
        imp_emit_message(im, p->e[i].cid, it->ts, (const char *)line.data, line.len);
      else imp_skip(im, "message", it->mid.p, why);
      free(d);
    }
    buf_free(&line);
  }
  /* after the records: the body that carries them carries their cursor */
  if (p->commit && !im->stop) imp_commit_later(im, IMP_MSG, json_incref(p->commit));
  json_decref(p->commit);
  p->done(p, p->arg);
  imp_items_free(p->src);
  free(p->e);
  free(p->cid);
  free(p);
}

page_t *imp_page_new(imp_t *im, imp_items_t *src, const char *cid) {
  page_t *p = xcalloc(1, sizeof *p);
  p->im = im;
  p->src = src;
  p->cid = cid ? xstrdup(cid) : NULL;
  return p;
}

void imp_page_add(page_t *p, const char *cid, const imp_item_t *it) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : (p->src && p->src->n ? p->src->n : 16);
    p->e = xrealloc(p->e, p->cap * sizeof *p->e);
  }
  p->e[p->n].cid = cid ? cid : p->cid;
  p->e[p->n].it = it;
  p->n++;
}

/* Emits a page's items after rehosting the files they refer to. */
void imp_page_start(page_t *p, json_t *commit, void (*done)(page_t *, void *), void *arg) {
  imp_t *im = p->im;
  p->commit = commit;
  p->done = done;
  p->arg = arg;
  p->pending = 1;
  if (im->rehost && im->mode != MODE_DRY) {
    json_t *seen = json_object();
    for (size_t i = 0; i < p->n; i++) {
      const imp_item_t *it = p->e[i].it;
      json_t *parsed;
      const char *url, *objid, *name;
      if (it->bin || !imp_msg_file(it->data.p, &parsed, &url, &objid, &name)) continue;
      char gen[25];
      if (!objid) url_id(url, gen);
      const char *id = objid ? objid : gen;
      int todo = im->mode == MODE_EXPORT ? !json_object_get(im->fetched, id) : !imp_rehosted(im, objid, url);
      if (!json_object_get(seen, url) && todo) {
        json_object_set_new(seen, url, json_true());
        if (im->mode == MODE_EXPORT) json_object_set_new(im->fetched, id, json_true());
        json_t *meta = json_object_get(json_object_get(parsed, "_lcfile"), "metaData");
        imp_rehost_start(im, p, id, url, name, NULL, NULL, meta);
      }
      json_decref(parsed);
    }
    json_decref(seen);
  }
  if (--p->pending == 0) page_emit(p);
}

/* ---------------------------------------------------------------- export files */

void imp_out_line(imp_t *im, FILE *f, json_t *obj) {
  char *s = json_dumps(obj, JSON_COMPACT);
  if (s && (fputs(s, f) < 0 || fputc('\n', f) < 0))
    imp_fail(im, "cannot write to %s: %s", im->out_dir, strerror(errno));
  free(s);
}

void imp_out_messages(imp_t *im, const char *cid, const imp_items_t *items) {
  buf_t p = BUF_INIT;
  buf_printf(&p, "%s/messages/", im->out_dir);
  buf_append_pct(&p, cid);
  buf_append_str(&p, ".jsonl");
  FILE *f = fopen(buf_cstr(&p), "a");
  if (!f) {
    imp_fail(im, "cannot write %s: %s", buf_cstr(&p), strerror(errno));
  } else {
    for (size_t i = 0; i < items->n; i++)
      if (items->v[i].obj) imp_out_line(im, f, items->v[i].obj); /* an export's source keeps the JSON */
    if (fclose(f) != 0) imp_fail(im, "cannot write %s: %s", buf_cstr(&p), strerror(errno));
  }
  im->msgs += (long)items->n;
  buf_free(&p);
}
