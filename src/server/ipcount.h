/* ipcount.h — open connections per peer address, across all workers, for the
 * max_conns_per_ip limit. A mutex-guarded hash: touched once at accept and once at close. */
#ifndef TERN_IPCOUNT_H
#define TERN_IPCOUNT_H

typedef struct ipcount ipcount_t;

ipcount_t *ipcount_new(void);
void ipcount_free(ipcount_t *t);
/* Counts one more connection from ip; returns 0, or -1 (and counts nothing) past limit. */
int ipcount_add(ipcount_t *t, const char *ip, long limit);
void ipcount_del(ipcount_t *t, const char *ip);

#endif
