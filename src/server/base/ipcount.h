/* ipcount.h — per peer address, across all workers: open connections (max_conns_per_ip)
 * and the bytes queued to them (output_limit_ip). A mutex-guarded hash touched once at
 * accept and once at close; the byte count is an atomic in the address's entry, which a
 * connection holds from its ipcount_add to its ipcount_del, so it is adjusted without the
 * lock. */
#ifndef TERN_IPCOUNT_H
#define TERN_IPCOUNT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ipcount ipcount_t;
typedef struct ipcount_entry ipcount_entry_t;

ipcount_t *ipcount_new(void);
void ipcount_free(ipcount_t *t);
/* Counts one more connection from ip and returns the address's entry, valid until the
 * matching ipcount_del; NULL (and counts nothing) past limit (0: no limit). */
ipcount_entry_t *ipcount_add(ipcount_t *t, const char *ip, long limit);
void ipcount_del(ipcount_t *t, ipcount_entry_t *e);
/* The bytes queued to the address's connections: adds delta, returns the new sum. */
int64_t ipcount_out_add(ipcount_entry_t *e, int64_t delta);
int64_t ipcount_out(const ipcount_entry_t *e);
/* Takes n bytes off the sum only while it is over cap, in one step: 1 if taken, 0 if the sum
 * is at or under cap (then nothing changes). Two workers that both saw the address over its
 * cap thus drop a queue each only when one drop is not enough. */
int ipcount_out_shed(ipcount_entry_t *e, int64_t cap, int64_t n);
/* The address's largest single queue as last reported, and the worker holding it, so the
 * worker that finds the address over output_limit_ip can leave the drop to the worker with
 * the largest queue. A worker reports each change of one of its queues from `was` to `now`
 * bytes: a queue larger than the record becomes the record; the record's own queue
 * shrinking (or going, now 0) updates or clears it. *worker is -1 when none is known. */
void ipcount_top_update(ipcount_entry_t *e, size_t was, size_t now, int worker);
void ipcount_top(const ipcount_entry_t *e, size_t *bytes, int *worker);

#endif
