/*
 * The web viewer (docs/viewer.md): which URL paths it answers and with what. A page path
 * (/, /logs/<id>, /search) is index.html, the application's routes being the browser's;
 * /assets/<name> is one of the built-in files (src/http/assets.h). Every answer carries the
 * viewer's security headers: a Content-Security-Policy with no inline script or style and
 * frame-ancestors 'none', nosniff, no referrer. No CORS header is ever sent: the JSON API
 * is same-origin only.
 */
#ifndef ANN_HTTP_VIEWER_H
#define ANN_HTTP_VIEWER_H

#include <microhttpd.h>

#include "http/assets.h"

/* The asset that answers a GET of path (without the query), or NULL. */
const ann_web_asset *ann_viewer_lookup(const char *path);

/* The viewer's security headers, added to r. */
void ann_viewer_headers(struct MHD_Response *r);

#define ANN_VIEWER_CSP                                                                             \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

#endif
