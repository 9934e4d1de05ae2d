/* proxies.c — trusted_proxies matching (proxies.h). */
#include "proxies.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

typedef struct {
  unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d */
  int bits;               /* prefix length over the 128 bits */
} block_t;

struct proxies {
  block_t *v;
  size_t n;
};

/* text → 16 bytes (IPv4 mapped); 1, or 0 when it is not an address. */
static int parse_addr(const char *s, unsigned char out[16], int *v4) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, s, &a4) == 1) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &a4, 4);
    *v4 = 1;
    return 1;
  }
  if (inet_pton(AF_INET6, s, &a6) == 1) {
    memcpy(out, &a6, 16);
    *v4 = 0;
    return 1;
  }
  return 0;
}

static int in_block(const block_t *b, const unsigned char a[16]) {
  int full = b->bits / 8, rest = b->bits % 8;
  if (memcmp(b->addr, a, (size_t)full) != 0) return 0;
  if (!rest) return 1;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (b->addr[full] & mask) == (a[full] & mask);
}

int proxies_parse(const char *list, proxies_t **out, char *err, size_t errlen) {
  *out = NULL;
  proxies_t *p = xcalloc(1, sizeof *p);
  const char *s = list ? list : "";
  while (*s) {
    while (*s == ',' || *s == ' ' || *s == '\t') s++;
    if (!*s) break;
    size_t len = strcspn(s, ", \t");
    char item[80];
    if (len >= sizeof item) {
      snprintf(err, errlen, "trusted_proxies: \"%.40s…\" is not an address or CIDR", s);
      proxies_free(p);
      return TERN_ECONFIG;
    }
    memcpy(item, s, len);
    item[len] = 0;
    s += len;
    char *slash = strchr(item, '/');
    int bits = -1; /* -1: no prefix length, -2: one that is not 1 to 3 digits */
    if (slash) {
      *slash = 0;
      size_t nd = strspn(slash + 1, "0123456789");
      bits = nd == 0 || nd > 3 || slash[1 + nd] ? -2 : atoi(slash + 1);
    }
    block_t blk;
    int v4;
    if (!parse_addr(item, blk.addr, &v4) || bits == -2 || bits > (v4 ? 32 : 128)) {
      if (slash) *slash = '/';
      snprintf(err, errlen, "trusted_proxies: \"%s\" is not an address or CIDR", item);
      proxies_free(p);
      return TERN_ECONFIG;
    }
    blk.bits = bits < 0 ? 128 : v4 ? 96 + bits : bits;
    p->v = xrealloc(p->v, (p->n + 1) * sizeof *p->v);
    p->v[p->n++] = blk;
  }
  if (!p->n) {
    proxies_free(p);
    return 0;
  }
  *out = p;
  return 0;
}

void proxies_free(proxies_t *p) {
  if (!p) return;
  free(p->v);
  free(p);
}

static int match_bin(const proxies_t *p, const unsigned char a[16]) {
  for (size_t i = 0; i < p->n; i++)
    if (in_block(&p->v[i], a)) return 1;
  return 0;
}

int proxies_match(const proxies_t *p, const char *ip) {
  unsigned char a[16];
  int v4;
  return p && parse_addr(ip, a, &v4) && match_bin(p, a);
}

int proxies_client(const proxies_t *p, const char *xff, char *out, size_t outlen) {
  if (!p || !xff) return 0;
  const char *end = xff + strlen(xff);
  while (end > xff) {
    const char *start = end;
    while (start > xff && start[-1] != ',') start--;
    const char *a = start, *b = end;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    char item[64];
    size_t len = (size_t)(b - a);
    if (len == 0 || len >= sizeof item) return 0;
    memcpy(item, a, len);
    item[len] = 0;
    unsigned char bin[16];
    int v4;
    if (!parse_addr(item, bin, &v4)) return 0; /* a name, a port, garbage: believe nothing */
    if (!match_bin(p, bin)) {
      /* normalised as the accept path writes addresses */
      if (v4) inet_ntop(AF_INET, bin + 12, out, (socklen_t)outlen);
      else inet_ntop(AF_INET6, bin, out, (socklen_t)outlen);
      return 1;
    }
    end = start > xff ? start - 1 : xff;
  }
  return 0;
}
