/* fuzz_config.c — the config loaders: config-file text and command-line flags.
 *
 * Input:  file-text [ NUL arg NUL arg ... ]
 *   file-text  parsed by config_parse_text over the defaults (what --config=FILE reads)
 *   args       if present, also run as argv through config_load (flags, --name value
 *              pairs, booleans without a value); arguments naming a config file are
 *              dropped, since config_load would open them
 *
 * Checks, besides the sanitizers: whatever is accepted leaves every integer option inside
 * its declared range and every boolean 0 or 1 (the option table's promise); a rejection
 * comes with a message; config_free releases everything (LeakSanitizer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_target.h"

static void fail(const char *what, const uint8_t *in, size_t n) {
  fprintf(stderr, "FUZZ CHECK FAILED: %s\n  input: %.*s\n", what, (int)n, (const char *)in);
  abort();
}

static void check_bounds(const tern_config_t *cfg, const uint8_t *in, size_t n) {
#define CHECK_STR(name, min, max)                                                                                      \
  if (!cfg->name) fail(#name " is NULL", in, n);
#define CHECK_INT(name, min, max)                                                                                      \
  if (cfg->name < (long)(min) || cfg->name > (long)(max)) fail(#name " outside its range", in, n);
#define CHECK_BOOL(name, min, max)                                                                                     \
  if (cfg->name != 0 && cfg->name != 1) fail(#name " is not 0 or 1", in, n);
#define X(name, type, def, min, max, help) CHECK_##type(name, min, max)
  TERN_OPTIONS(X)
#undef X
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int quiet;
  if (!quiet) { /* --help and --options-markdown print; errors go to stderr */
    quiet = 1;
    unsetenv("TERN_CONFIG"); /* config_load would read that file */
    if (!getenv("TERN_FUZZ_LOG")) {
      if (!freopen("/dev/null", "w", stdout)) abort();
    }
  }
  char *copy = malloc(size + 1);
  memcpy(copy, data, size);
  copy[size] = 0;
  size_t tlen = strlen(copy);

  tern_config_t cfg;
  char err[256] = "";
  config_defaults(&cfg);
  int rc = config_parse_text(&cfg, copy, err, sizeof err);
  if (rc == 0) check_bounds(&cfg, data, size);
  else if (!err[0]) fail("config_parse_text failed without a message", data, size);
  config_free(&cfg);

  if (tlen < size) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = "ternd";
    for (char *a = copy + tlen + 1; a <= copy + size && argc < 63; a += strlen(a) + 1)
      if (strncmp(a, "--config", 8) != 0) argv[argc++] = a;
    argv[argc] = NULL;
    rc = config_load(&cfg, argc, argv);
    if (rc == 0) check_bounds(&cfg, data, size);
    config_free(&cfg);
  }
  free(copy);
  return 0;
}
