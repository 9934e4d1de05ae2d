/* replay_main.c — runs fuzz targets without libFuzzer: a main() that feeds every file
 * named on the command line (directories: every regular file in them, in name order) to
 * LLVMFuzzerTestOneInput once. The gcc sanitizer build links each target with this, so
 * `make test` replays the committed corpora (seeds and regression inputs) under
 * ASan/UBSan; a crash or a sanitizer report fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_target.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0, n;
  uint8_t *data = malloc(cap);
  while ((n = fread(data + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) data = realloc(data, cap *= 2);
  }
  fclose(f);
  /* an exact-size copy, so ASan sees reads past the input as it would under libFuzzer */
  uint8_t *exact = malloc(len ? len : 1);
  memcpy(exact, data, len);
  free(data);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  int files = 0, errors = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      errors++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      errors += run_file(argv[i]) < 0;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) {
      perror(argv[i]);
      errors++;
      continue;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      if (n == cap) names = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
      names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (size_t k = 0; k < n; k++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
      if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        errors += run_file(path) < 0;
        files++;
      }
      free(names[k]);
    }
    free(names);
  }
  printf("replayed %d inputs, %d unreadable\n", files, errors);
  return errors || files == 0 ? 1 : 0;
}
