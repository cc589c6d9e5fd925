#include "http/viewer.h"

#include <string.h>

static const ann_web_asset *find(const char *path)
{
    for (size_t i = 0; i < ann_web_assets_count; i++)
        if (strcmp(ann_web_assets[i].path, path) == 0)
            return &ann_web_assets[i];
    return NULL;
}

/* /logs/<one segment, not empty> */
static int is_log_page(const char *path)
{
    static const char prefix[] = "/logs/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return 0;
    const char *rest = path + sizeof prefix - 1;
    return *rest != '\0' && strchr(rest, '/') == NULL;
}

const ann_web_asset *ann_viewer_lookup(const char *path)
{
    if (strcmp(path, "/") == 0 || strcmp(path, "/search") == 0 || is_log_page(path))
        return find("/index.html");
    if (strncmp(path, "/assets/", 8) == 0)
        return find(path);
    return NULL;
}

void ann_viewer_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy", ANN_VIEWER_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
}
