/* wire.h — how the layers are put together into one ternd.
 *
 * Each layer sees only those below it (README, "Architecture tour"); where a lower layer
 * must reach a higher one it owns a small table of callbacks, and this is where they are
 * filled in: the network layer's (net.h) point at the IM layer's link and worker entry
 * points (im.h), the outgoing layer's per-worker start and stop (out.h) and the REST API's
 * route table (rest.h). main.c uses it, and so do the harnesses that drive the server
 * without sockets (tests/fuzz), so that they run the wiring ternd runs. im's own table
 * (im_out.h: hooks and offline push) is out's, attached with out_attach. */
#ifndef TERN_WIRE_H
#define TERN_WIRE_H

#include "net.h"

extern const net_app_t wire_net_app;

#endif
