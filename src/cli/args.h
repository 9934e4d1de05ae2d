/* args.h — the one scanner of the command lines of `tern` (main.c) and `tern admin`
 * (admin.c): words, options as "--name value" or "--name=value", and "--", after which
 * every argument is a positional word even when it starts with '-' (ids can). Each command
 * line keeps its own option table, short options and messages. */
#ifndef TERN_CLI_ARGS_H
#define TERN_CLI_ARGS_H

#include <stddef.h>

typedef struct {
  int argc;
  char **argv;
  int i;    /* the next argument */
  int rest; /* past "--" */
} args_t;

typedef struct {
  char *s;          /* the argument as given */
  int rest;         /* 1: a word after "--" (positional, whatever it looks like) */
  int opt;          /* 1: "--name" or "--name=value"; 0: a word (short options are words) */
  const char *name; /* opt: what follows "--", nlen bytes up to '=' or the end */
  size_t nlen;
  const char *eq; /* opt: the '=' before an inline value, or NULL */
} arg_t;

/* Scans argv[1] onwards. */
void args_init(args_t *it, int argc, char **argv);
/* The next argument into *a (a lone "--" is consumed, not returned); 0 at the end. */
int args_next(args_t *it, arg_t *a);
/* Option a's value: the text after '=', else the next argument (consumed); NULL when
 * there is none. */
const char *args_value(args_t *it, const arg_t *a);
/* The entry of a table of n entries `size` bytes apart, each starting with its name (a
 * const char *, without "--"), whose name is name[0..nlen); NULL when none is. */
const void *args_find(const void *table, size_t n, size_t size, const char *name, size_t nlen);
/* Whether name is one of the space-separated words of list. */
int args_takes(const char *list, const char *name);

#endif
