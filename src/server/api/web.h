/* web.h — the web console (/console) and the browser chat (/chat): static assets.
 *
 * The assets are built by `make` from web/ (esbuild, pinned npm packages) into
 * <build>/web/ and read once at start-up from web_root into memory: a request never
 * touches the disk, so it never blocks a loop, and only files that were listed at start
 * can be served. A request path is looked up as it was sent; one that is not plain (a
 * '%', a '\', an empty, "." or ".." segment) is 404 before any lookup, so no path can
 * leave the directory. Symbolic links and dotfiles are not loaded.
 *
 * Every answer carries a strict Content-Security-Policy (scripts, styles and fonts only
 * from the page's origin, no inline script, connections only to the page's own origin
 * and its WebSocket), nosniff, no framing and no referrer; an ETag with Cache-Control
 * no-cache, so a browser revalidates (304) instead of running stale code after an
 * upgrade. */
#ifndef TERN_WEB_H
#define TERN_WEB_H

#include "http.h"

#define WEB_MAX_FILES 512
#define WEB_MAX_BYTES (64 * 1024 * 1024)

typedef struct web web_t;

/* Loads every regular file under dir (at most WEB_MAX_FILES files and WEB_MAX_BYTES in
 * all). dir NULL or "": the default places (web/ beside the running binary, then
 * ../share/tern/web); none there leaves *out NULL and returns 0 (pages answer 404).
 * "off": *out NULL. A named directory that cannot be read, or too much in it:
 * TERN_ECONFIG with the reason logged. */
int web_open(const char *dir, web_t **out);
void web_free(web_t *web);
/* Files loaded (tests, start-up log). */
size_t web_count(const web_t *web);
const char *web_dir(const web_t *web);

/* GET and HEAD of /console, /console/, /console/<file>, /chat… (routes.c). */
void web_serve(conn_t *c, const http_req_t *r);

#endif
