/*
 * The web viewer's files (web/: index.html, app.js, render.js, app.css, and ansi_up from
 * web/node_modules), built into annalsd by src/http/assets.cmake so that the binary
 * serves them with nothing beside it. Read-only, no state.
 */
#ifndef ANN_HTTP_ASSETS_H
#define ANN_HTTP_ASSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ann_web_asset {
    const char *path; /* the URL path, e.g. "/assets/app.js" */
    const char *type; /* Content-Type */
    const uint8_t *data;
    size_t len;
} ann_web_asset;

extern const ann_web_asset ann_web_assets[];
extern const size_t ann_web_assets_count;

#endif
