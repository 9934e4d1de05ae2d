/* config.c — the loaders behind the option table in config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

enum { T_STR, T_INT, T_BOOL };

typedef struct {
  const char *name;
  int type;
  const char *def_str;
  long def_int;
  long min, max;
  const char *help;
  size_t offset;
} option_t;

#define DEF_STR_STR(d) d
#define DEF_STR_INT(d) NULL
#define DEF_STR_BOOL(d) NULL
#define DEF_INT_STR(d) 0
#define DEF_INT_INT(d) (long)(intptr_t)(d)
#define DEF_INT_BOOL(d) (long)(intptr_t)(d)

static const option_t options[] = {
#define X(name, type, def, min, max, help)                                                                             \
  {#name, T_##type, DEF_STR_##type(def), DEF_INT_##type(def), min, max, help, offsetof(tern_config_t, name)},
    TERN_OPTIONS(X)
#undef X
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static const option_t *find(const char *name) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (strcmp(options[i].name, name) == 0) return &options[i];
  return NULL;
}

/* The option a spelling names: case and '-' for '_' do not matter (--log-level, TERN_...). */
static const option_t *lookup(const char *name) {
  char norm[64];
  size_t n = strlen(name);
  if (n == 0 || n >= sizeof norm) return NULL;
  for (size_t i = 0; i <= n; i++) norm[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
  return find(norm);
}

/* What a running ternd applies on SIGHUP: options read where they are used, on the
 * workers' threads (which config_reload's caller holds still), never copied at start. The
 * rest (addresses, keys, storage, hooks, push) need a restart. */
static const char *const reloadable[] = {
    "log_level",     "log_file",        "log_frames",         "log_format",    "metrics_token",
    "max_conn_rate", "max_client_rate", "max_conns_per_ip",   "max_conns",     "max_sessions_per_conn",
    "output_limit",  "output_limit_ip", "output_limit_total", "max_frame",     "max_message",
    "max_file_size", "max_members",     "idle_timeout",       "login_timeout",
};

int config_reloadable(const char *name) {
  for (size_t i = 0; i < sizeof reloadable / sizeof reloadable[0]; i++)
    if (strcmp(reloadable[i], name) == 0) return 1;
  return 0;
}

void config_reload(tern_config_t *cur, const tern_config_t *next, config_change_cb changed, void *arg) {
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const option_t *o = &options[i];
    char *to = (char *)cur + o->offset;
    const char *from = (const char *)next + o->offset;
    int differs = o->type == T_STR   ? strcmp(*(char **)to, *(char *const *)from) != 0
                  : o->type == T_INT ? *(long *)to != *(const long *)from
                                     : *(int *)to != *(const int *)from;
    if (!differs) continue;
    int apply = config_reloadable(o->name);
    if (apply) {
      if (o->type == T_STR) {
        free(*(char **)to);
        *(char **)to = xstrdup(*(char *const *)from);
      } else if (o->type == T_INT) {
        *(long *)to = *(const long *)from;
      } else {
        *(int *)to = *(const int *)from;
      }
    }
    if (changed) changed(o->name, apply, arg);
  }
}

void config_defaults(tern_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const option_t *o = &options[i];
    char *field = (char *)cfg + o->offset;
    if (o->type == T_STR) *(char **)field = xstrdup(o->def_str);
    else if (o->type == T_INT) *(long *)field = o->def_int;
    else *(int *)field = (int)o->def_int;
  }
}

void config_files_dir(const tern_config_t *cfg, char *out, size_t outlen) {
  if (*cfg->files_dir) snprintf(out, outlen, "%s", cfg->files_dir);
  else snprintf(out, outlen, "%s/files", cfg->data_dir);
}

void config_free(tern_config_t *cfg) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (options[i].type == T_STR) {
      char **p = (char **)((char *)cfg + options[i].offset);
      free(*p);
      *p = NULL;
    }
}

int config_set(tern_config_t *cfg, const char *name, const char *value, char *err, size_t errlen) {
  const option_t *o = lookup(name);
  if (!o) goto unknown;
  char *field = (char *)cfg + o->offset;
  if (o->type == T_STR) {
    free(*(char **)field);
    *(char **)field = xstrdup(value);
    return 0;
  }
  if (o->type == T_BOOL) {
    if (!strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on")) {
      *(int *)field = 1;
    } else if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") ||
               !strcasecmp(value, "off")) {
      *(int *)field = 0;
    } else {
      snprintf(err, errlen, "%s: expected a boolean, got \"%.40s\"", o->name, value);
      return TERN_ECONFIG;
    }
    return 0;
  }
  errno = 0;
  char *end;
  long v = strtol(value, &end, 10);
  if (errno || end == value || *end) {
    snprintf(err, errlen, "%s: expected an integer, got \"%.40s\"", o->name, value);
    return TERN_ECONFIG;
  }
  if (v < o->min || v > o->max) {
    snprintf(err, errlen, "%s: %ld is outside %ld..%ld", o->name, v, o->min, o->max);
    return TERN_ECONFIG;
  }
  *(long *)field = v;
  return 0;
unknown:
  snprintf(err, errlen, "unknown option \"%.60s\"", name);
  return TERN_ECONFIG;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

int config_parse_text(tern_config_t *cfg, const char *text, char *err, size_t errlen) {
  char *copy = xstrdup(text), *save = NULL;
  int lineno = 0, rc = 0;
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *l = trim(line);
    if (!*l) continue;
    char *eq = strchr(l, '=');
    if (!eq) {
      snprintf(err, errlen, "line %d: expected name = value", lineno);
      rc = TERN_ECONFIG;
      break;
    }
    *eq = 0;
    char *name = trim(l), *value = trim(eq + 1);
    size_t vl = strlen(value);
    if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
      value[vl - 1] = 0;
      value++;
    }
    char sub[200];
    if (config_set(cfg, name, value, sub, sizeof sub) < 0) {
      snprintf(err, errlen, "line %d: %s", lineno, sub);
      rc = TERN_ECONFIG;
      break;
    }
  }
  free(copy);
  return rc;
}

static int load_file(tern_config_t *cfg, const char *path, FILE *errs) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(errs, "ternd: cannot open config file %s: %s\n", path, strerror(errno));
    return TERN_ECONFIG;
  }
  buf_t b = BUF_INIT;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, n);
  fclose(f);
  char err[256];
  int rc = config_parse_text(cfg, buf_cstr(&b), err, sizeof err);
  if (rc < 0) fprintf(errs, "ternd: %s: %s\n", path, err);
  buf_free(&b);
  return rc;
}

static void env_name(const char *name, char *out, size_t outlen) {
  size_t o = (size_t)snprintf(out, outlen, "TERN_");
  for (size_t i = 0; name[i] && o + 1 < outlen; i++) out[o++] = (char)toupper((unsigned char)name[i]);
  out[o] = 0;
}

int config_load(tern_config_t *cfg, int argc, char **argv) { return config_load_to(cfg, argc, argv, stderr); }

int config_load_to(tern_config_t *cfg, int argc, char **argv, FILE *errs) {
  char err[256];
  config_defaults(cfg);
  /* the config file name may come from the environment or a flag; find it first */
  const char *file = getenv("TERN_CONFIG");
  for (int i = 1; i < argc; i++) {
    if (!strncmp(argv[i], "--config=", 9)) file = argv[i] + 9;
    else if (!strcmp(argv[i], "--config") && i + 1 < argc) file = argv[i + 1];
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      config_help(stdout);
      return 1;
    } else if (!strcmp(argv[i], "--options-markdown")) { /* regenerates docs/options.md */
      config_markdown(stdout);
      return 1;
    }
  }
  if (file && *file && load_file(cfg, file, errs) < 0) return TERN_ECONFIG;
  for (size_t i = 0; i < N_OPTIONS; i++) {
    char env[80];
    env_name(options[i].name, env, sizeof env);
    const char *v = getenv(env);
    if (v && config_set(cfg, options[i].name, v, err, sizeof err) < 0) {
      fprintf(errs, "ternd: %s: %s\n", env, err);
      return TERN_ECONFIG;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || !a[2]) {
      fprintf(errs, "ternd: unexpected argument \"%.200s\" (options are --name=value; see --help)\n", a);
      return TERN_ECONFIG;
    }
    a += 2;
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a) : strlen(a);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name ? nl : sizeof name - 1), a);
    /* An unknown flag is reported as such, before anything else is made of it (a
     * misspelt boolean must not swallow the next argument as its value). */
    const option_t *o = nl < sizeof name ? lookup(name) : NULL;
    if (!o) {
      fprintf(errs, "ternd: unknown option --%.*s (see --help)\n", (int)(nl < 200 ? nl : 200), a);
      return TERN_ECONFIG;
    }
    const char *value;
    if (eq) value = eq + 1;
    else if (o->type == T_BOOL) value = "1";
    else if (i + 1 < argc) value = argv[++i];
    else {
      fprintf(errs, "ternd: --%s needs a value\n", o->name);
      return TERN_ECONFIG;
    }
    if (config_set(cfg, o->name, value, err, sizeof err) < 0) {
      fprintf(errs, "ternd: --%s\n", err);
      return TERN_ECONFIG;
    }
  }
  return 0;
}

static void default_text(const option_t *o, char *out, size_t n) {
  if (o->type == T_STR) snprintf(out, n, "\"%s\"", o->def_str);
  else if (o->type == T_BOOL) snprintf(out, n, "%s", o->def_int ? "true" : "false");
  else snprintf(out, n, "%ld", o->def_int);
}

void config_help(FILE *out) {
  fprintf(out, "usage: ternd [--option=value ...] | --restore=DIR [--option=value ...] | --version | --help\n\n"
               "--restore=DIR copies a backup (tern admin backup) into the data directory, which must hold no "
               "database, and exits.\n\nEvery option may also be set as TERN_<OPTION> in the "
               "environment or as `option = value` in the --config file.\n\n");
  for (size_t i = 0; i < N_OPTIONS; i++) {
    char def[96], env[80];
    default_text(&options[i], def, sizeof def);
    env_name(options[i].name, env, sizeof env);
    fprintf(out, "  --%-22s %s\n  %-24s default %s, env %s%s\n", options[i].name, options[i].help, "", def, env,
            config_reloadable(options[i].name) ? ", reloaded on SIGHUP" : "");
  }
}

void config_markdown(FILE *out) {
  fprintf(out, "| option | environment | default | range | on SIGHUP | meaning |\n|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < N_OPTIONS; i++) {
    char def[96], env[80], range[64] = "";
    default_text(&options[i], def, sizeof def);
    env_name(options[i].name, env, sizeof env);
    if (options[i].type == T_INT) snprintf(range, sizeof range, "%ld–%ld", options[i].min, options[i].max);
    fprintf(out, "| `%s` | `%s` | `%s` | %s | %s | %s |\n", options[i].name, env, def, range,
            config_reloadable(options[i].name) ? "reloaded" : "", options[i].help);
  }
}
