/* server.c — which worker the calling thread is (server.h): a thread-local every layer
 * asks (metrics pick their shard by it, im finds its worker's state by it) and only the
 * network layer's worker threads, and harnesses standing in for them, set. */
#include "server.h"

static __thread int current_worker = -1;

int worker_current(void) { return current_worker; }

void worker_set_current(int idx) { current_worker = idx; }
