/* writer.h — what every backend's group-commit writer shares. For backends only.
 *
 * Document rewrites commit after the rest of their batch, in a transaction of their own:
 * one conversation update can rewrite a large document (max_conv_doc allows 16 MiB), and
 * the messages, acks and receipts gathered beside it must not wait for that. Nothing else
 * reads or writes a conversation's document, so the order between the two parts does not
 * matter. And at most one such round per STORE_DOCS_INTERVAL_US: updates that arrive sooner
 * wait for the next round and merge there, so a client hammering a large document costs the
 * writer one rewrite of it per round, not one per commit — a commit comes every few hundred
 * µs under load, and every client's acks wait for the writer (issue #11: a document at the
 * size cap updated ~1,000 times a second held bystanders' acks for up to 270 ms). An
 * update's ack waits for its round, at most STORE_DOCS_INTERVAL_US more. */
#ifndef TERN_STORE_WRITER_H
#define TERN_STORE_WRITER_H

#include "store.h"

#define STORE_DOCS_INTERVAL_US 10000

/* Moves batch's attribute updates (JOB_CONV_UPDATE) to the end of *docs_waiting; returns the
 * other jobs, in their order. */
store_job_t *store_split_docs(store_job_t *batch, store_job_t **docs_waiting);

/* Hands a committed batch back: one chain of completions per worker (one lock and one
 * wake-up per batch); a job with no worker is freed. */
void store_post_done(store_job_t *batch, void (*post)(void *arg, int worker, task_t *t), void *post_arg);

#endif
