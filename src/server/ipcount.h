/* ipcount.h — per peer address, across all workers: open connections (max_conns_per_ip)
 * and the bytes queued to them (output_limit_ip). A mutex-guarded hash touched once at
 * accept and once at close; the byte count is an atomic in the address's entry, which a
 * connection holds from its ipcount_add to its ipcount_del, so it is adjusted without the
 * lock. */
#ifndef TERN_IPCOUNT_H
#define TERN_IPCOUNT_H

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

#endif
