/* store.c — what the store interface (store.h) gives every backend and every caller
 * alike: the destructors of the rows it hands out and of the jobs callers fill in. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

void conv_row_free(conv_row_t *r) {
  free(r->cid);
  free(r->creator);
  free(r->unique_id);
  for (size_t i = 0; i < r->nmembers; i++) free(r->members[i]);
  free(r->members);
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < r->nsets[k]; i++) free(r->sets[k][i]);
    free(r->sets[k]);
  }
  memset(r, 0, sizeof *r);
}

void installation_row_free(installation_row_t *r) {
  free(r->id);
  free(r->device_type);
  free(r->token);
  free(r->body);
  memset(r, 0, sizeof *r);
}

void doc_changes_free(doc_change_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].path);
    free(v[i].value);
  }
  free(v);
}

void job_device_free(store_job_t *j) {
  job_device_t *d = (job_device_t *)j;
  free(d->client);
  free(d->token);
  free(d->type);
  free(d);
}
