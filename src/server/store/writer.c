/* writer.c — what every backend's group-commit writer shares (writer.h). */
#include "writer.h"

store_job_t *store_split_docs(store_job_t *batch, store_job_t **docs_waiting) {
  store_job_t *rest = NULL, **rt = &rest, **dt = docs_waiting;
  while (*dt) dt = &(*dt)->next;
  for (store_job_t *j = batch, *next; j; j = next) {
    next = j->next;
    j->next = NULL;
    if (j->type == JOB_CONV_UPDATE) *dt = j, dt = &j->next;
    else *rt = j, rt = &j->next;
  }
  return rest;
}

void store_post_done(store_job_t *batch, void (*post)(void *arg, int worker, task_t *t), void *post_arg) {
  task_t *head[MAX_WORKERS] = {0}, *tail[MAX_WORKERS] = {0};
  while (batch) {
    store_job_t *j = batch;
    batch = batch->next;
    if (j->worker >= 0 && j->worker < MAX_WORKERS) {
      j->task.next = NULL;
      if (tail[j->worker]) tail[j->worker]->next = &j->task;
      else head[j->worker] = &j->task;
      tail[j->worker] = &j->task;
    } else if (j->free_fn) {
      j->free_fn(j);
    }
  }
  for (int w = 0; w < MAX_WORKERS; w++)
    if (head[w]) post(post_arg, w, head[w]);
}
