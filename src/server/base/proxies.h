/* proxies.h — trusted_proxies: which peers may say who the client is (X-Forwarded-For).
 *
 * A list of addresses and CIDR blocks, IPv4 and IPv6 (an IPv4 peer that arrives as
 * ::ffff:a.b.c.d matches its IPv4 entries). Parsed once at start; read-only after, so any
 * thread may match against it. */
#ifndef TERN_PROXIES_H
#define TERN_PROXIES_H

#include <stddef.h>

typedef struct proxies proxies_t;

/* Parses "10.0.0.0/8, 192.168.1.5, ::1, fd00::/8" (commas or spaces). An empty list gives
 * *out NULL. 0, or TERN_ECONFIG with the offending entry in err. */
int proxies_parse(const char *list, proxies_t **out, char *err, size_t errlen);
void proxies_free(proxies_t *p);
/* 1 when the address (text, as uv_ip*_name writes it) is in the list; NULL list: 0. */
int proxies_match(const proxies_t *p, const char *ip);
/* The client an X-Forwarded-For value names, as seen from a trusted proxy: the rightmost
 * entry that is not itself a trusted proxy (entries to its left were written by the client
 * and prove nothing). Copied into out (normalised) and 1, or 0 when there is none or it
 * is not an IP address. */
int proxies_client(const proxies_t *p, const char *xff, char *out, size_t outlen);

#endif
