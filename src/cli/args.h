/* args.h — the one scanner of `tern`'s (main.c) and `tern admin`'s (admin.c) command
 * lines: words, options "--name value" / "--name=value", and "--" before positional words
 * that may start with '-' (ids can). Each keeps its own table, short options and messages. */
#ifndef TERN_CLI_ARGS_H
#define TERN_CLI_ARGS_H

#include <stddef.h>

typedef struct {
  int argc, i, rest; /* i: the next argument; rest: past "--" */
  char **argv;
} args_t;
#define ARGS_INIT(argc, argv)                                                                                          \
  { (argc), 1, 0, (argv) }

typedef struct {
  char *s;               /* as given */
  int rest, opt;         /* a word after "--"; an option "--name[=value]" (else a word) */
  const char *name, *eq; /* opt: after "--", nlen bytes; the '=' of an inline value, or NULL */
  size_t nlen;
} arg_t;

/* The next argument into *a ("--" itself is consumed); 0 at the end. */
int args_next(args_t *it, arg_t *a);
/* Option a's value: after its '=', else the next argument (consumed); NULL when none. */
const char *args_value(args_t *it, const arg_t *a);
/* The entry named name[0..nlen) of a table of n entries `size` bytes apart, each starting
 * with its name (const char *, without "--"); NULL when none is. */
const void *args_find(const void *table, size_t n, size_t size, const char *name, size_t nlen);
/* Whether name is one of the space-separated words of list. */
int args_takes(const char *list, const char *name);

#endif
