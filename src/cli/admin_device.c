/* admin_device.c — `tern admin push …` and `tern admin file …`: the two storage-style
 * collections ternd keeps besides conversations.
 *
 * push: `_Installation` objects (/1.1/installations, push_registry.c). An installation is
 * a device — deviceType plus its token (deviceToken for iOS, registrationId or
 * installationId for Android) — and its `channels` are the client ids whose offline
 * pushes it receives; the flags build exactly that body, and --set passes any other field.
 * Channel edits use the storage operators (AddUnique, Remove) so a device's other
 * channels are left alone.
 *
 * file: /1.1/files (rest_files.c). Uploads send the raw bytes to /1.1/files/<name>;
 * downloads fetch the public /files/<id> URL, streamed to a file or stdout without being
 * held in memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"

/* ---------------------------------------------------------------- installations */

static char *install_path(const char *id) {
  buf_t p = BUF_INIT;
  buf_append_str(&p, "/1.1/installations");
  if (id) {
    buf_append_str(&p, "/");
    buf_append_pct(&p, id);
  }
  return buf_cstr(&p);
}

static json_t *channel_op(const char *op, const char *list) {
  char *words[1] = {(char *)list};
  return json_pack("{s:s, s:o}", "__op", op, "objects", admin_id_list(words, 1));
}

/* The body the device flags make, over --set's fields; NULL after a usage error. */
static json_t *install_body(admin_t *ad) {
  admin_args_t *a = &ad->a;
  json_t *body = a->set ? admin_json_arg(ad, "set", a->set, JSON_OBJECT) : json_object();
  if (!body) return NULL;
  struct {
    const char *key, *value;
  } strs[] = {{"deviceType", a->type},
              {"deviceToken", a->token},
              {"installationId", a->installation_id},
              {"registrationId", a->registration_id}};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (strs[i].value && json_object_set_new(body, strs[i].key, json_string(strs[i].value)) < 0) {
      json_decref(body);
      admin_usage_error(ad, "%s is not UTF-8", strs[i].key);
      return NULL;
    }
  if (a->channels) {
    char *words[1] = {(char *)a->channels};
    json_object_set_new(body, "channels", admin_id_list(words, 1));
  }
  if (a->has_badge) json_object_set_new(body, "badge", json_integer(a->badge));
  return body;
}

int admin_push_install(admin_t *ad) {
  admin_args_t *a = &ad->a;
  if (!a->type) return admin_usage_error(ad, "--type is required (ios, android, …)");
  if (!a->token && !a->installation_id && !a->registration_id)
    return admin_usage_error(ad, "the device: --token, --installation-id or --registration-id");
  json_t *body = install_body(ad), *res;
  if (!body) return 2;
  char *path = install_path(NULL);
  int rc = admin_call(ad, "POST", path, body, &res);
  free(path);
  json_decref(body);
  if (rc) return rc;
  if (a->json) return admin_print_json(res);
  /* one installation per device: registering a known token again updates it (200) */
  printf("%s installation %s\n", ad->status == 201 ? "created" : "updated",
         json_string_value(json_object_get(res, "objectId")));
  json_decref(res);
  return 0;
}

int admin_push_show(admin_t *ad) {
  char *path = install_path(ad->a.pos[0]);
  int rc = admin_show(ad, path);
  free(path);
  return rc;
}

int admin_push_update(admin_t *ad) {
  admin_args_t *a = &ad->a;
  /* One request, and a key holds one operator: adding and removing channels would take
   * two PUTs, which the caller can make. */
  if (!!a->channels + !!a->add_channels + !!a->remove_channels > 1)
    return admin_usage_error(ad, "one of --channels, --add-channels, --remove-channels per call");
  json_t *body = install_body(ad);
  if (!body) return 2;
  if (a->add_channels) json_object_set_new(body, "channels", channel_op("AddUnique", a->add_channels));
  if (a->remove_channels) json_object_set_new(body, "channels", channel_op("Remove", a->remove_channels));
  if (json_object_size(body) == 0) {
    json_decref(body);
    return admin_usage_error(ad, "nothing to update");
  }
  char *path = install_path(a->pos[0]);
  int rc = admin_act(ad, "PUT", path, body, "updated installation %s", a->pos[0]);
  free(path);
  json_decref(body);
  return rc;
}

int admin_push_delete(admin_t *ad) {
  char *path = install_path(ad->a.pos[0]);
  int rc = admin_act(ad, "DELETE", path, NULL, "deleted installation %s", ad->a.pos[0]);
  free(path);
  return rc;
}

/* ---------------------------------------------------------------- files */

static char *file_path(const char *prefix, const char *id) {
  buf_t p = BUF_INIT;
  buf_append_str(&p, prefix);
  buf_append_pct(&p, id);
  return buf_cstr(&p);
}

int admin_file_upload(admin_t *ad) {
  admin_args_t *a = &ad->a;
  const char *local = a->pos[0];
  FILE *f = fopen(local, "rb");
  if (!f) {
    fprintf(stderr, "tern admin: %s: %s\n", local, strerror(errno));
    return 1;
  }
  buf_t data = BUF_INIT;
  char chunk[65536];
  size_t k;
  while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&data, chunk, k);
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    buf_free(&data);
    fprintf(stderr, "tern admin: reading %s failed\n", local);
    return 1;
  }
  const char *base = strrchr(local, '/');
  const char *name = a->name ? a->name : base ? base + 1 : local;
  if (!*name) {
    buf_free(&data);
    return admin_usage_error(ad, "the file needs a name: --name N");
  }
  if (a->mime && strpbrk(a->mime, "\r\n")) {
    buf_free(&data);
    return admin_usage_error(ad, "--mime is one line");
  }
  /* octet-stream lets ternd take the type from the name's extension */
  buf_t h = BUF_INIT;
  buf_printf(&h, "Content-Type: %s\r\n", a->mime ? a->mime : "application/octet-stream");
  char *path = file_path("/1.1/files/", name);
  ahttp_resp_t r;
  int rc = admin_call_raw(ad, "POST", path, buf_cstr(&h), data.data ? data.data : (uint8_t *)"", data.len, NULL, &r);
  free(path);
  buf_free(&h);
  buf_free(&data);
  if (rc) return rc;
  json_t *res = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
  ahttp_resp_free(&r);
  if (!res) {
    fprintf(stderr, "tern admin: the server's answer is not JSON\n");
    return 1;
  }
  if (a->json) return admin_print_json(res);
  printf("%s\t%s\n", json_string_value(json_object_get(res, "objectId")),
         json_string_value(json_object_get(res, "url")));
  json_decref(res);
  return 0;
}

int admin_file_info(admin_t *ad) {
  char *path = file_path("/1.1/files/", ad->a.pos[0]);
  int rc = admin_show(ad, path);
  free(path);
  return rc;
}

int admin_file_delete(admin_t *ad) {
  char *path = file_path("/1.1/files/", ad->a.pos[0]);
  int rc = admin_act(ad, "DELETE", path, NULL, "deleted file %s", ad->a.pos[0]);
  free(path);
  return rc;
}

int admin_file_download(admin_t *ad) {
  admin_args_t *a = &ad->a;
  int to_stdout = !a->out || strcmp(a->out, "-") == 0;
  if (to_stdout && a->json) return admin_usage_error(ad, "--json with the bytes on stdout: give -o OUT");
  /* into OUT.part, renamed when whole: a failed download leaves OUT as it was */
  buf_t part = BUF_INIT;
  if (!to_stdout) buf_printf(&part, "%s.part", a->out);
  FILE *f = to_stdout ? stdout : fopen(buf_cstr(&part), "wb");
  if (!f) {
    fprintf(stderr, "tern admin: %s: %s\n", buf_cstr(&part), strerror(errno));
    buf_free(&part);
    return 1;
  }
  char *path = file_path("/files/", a->pos[0]);
  ahttp_resp_t r;
  int rc = admin_call_raw(ad, "GET", path, NULL, NULL, 0, f, &r);
  free(path);
  if (!to_stdout) {
    if (fclose(f) != 0 && rc == 0) {
      fprintf(stderr, "tern admin: writing %s failed: %s\n", buf_cstr(&part), strerror(errno));
      rc = 1;
    }
    if (rc == 0 && rename(buf_cstr(&part), a->out) != 0) {
      fprintf(stderr, "tern admin: %s: %s\n", a->out, strerror(errno));
      rc = 1;
    }
    if (rc) unlink(buf_cstr(&part));
  }
  buf_free(&part);
  if (rc) return rc;
  uint64_t n = r.length;
  ahttp_resp_free(&r);
  if (a->json)
    return admin_print_json(json_pack("{s:s, s:I, s:s}", "objectId", a->pos[0], "size", (json_int_t)n, "out", a->out));
  if (!to_stdout) printf("saved %llu bytes to %s\n", (unsigned long long)n, a->out);
  return 0;
}
