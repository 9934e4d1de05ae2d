/* args.c — the command-line scanner of `tern` and `tern admin` (args.h). */
#include <string.h>

#include "args.h"

int args_next(args_t *it, arg_t *a) {
  memset(a, 0, sizeof *a);
  if (!it->rest && it->i < it->argc && strcmp(it->argv[it->i], "--") == 0) it->rest = ++it->i;
  if (it->i >= it->argc) return 0;
  a->s = it->argv[it->i++];
  a->rest = it->rest != 0;
  if ((a->opt = !a->rest && strncmp(a->s, "--", 2) == 0)) {
    a->name = a->s + 2;
    a->eq = strchr(a->name, '=');
    a->nlen = a->eq ? (size_t)(a->eq - a->name) : strlen(a->name);
  }
  return 1;
}

const char *args_value(args_t *it, const arg_t *a) {
  return a->eq ? a->eq + 1 : it->i < it->argc ? it->argv[it->i++] : NULL;
}

const void *args_find(const void *table, size_t n, size_t size, const char *name, size_t nlen) {
  for (const char *e = table; n--; e += size)
    if (strlen(*(const char *const *)e) == nlen && strncmp(*(const char *const *)e, name, nlen) == 0) return e;
  return NULL;
}

int args_takes(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; (p = strstr(p, name)); p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return 1;
  return 0;
}
