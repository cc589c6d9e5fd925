/*
 * Page tokens: opaque to clients, forge-proof, bound to the query that made them.
 *
 * A token carries the walk's snapshot (the highest entry id when the first page was
 * read, so entries written during the walk are left out and none is seen twice) and the
 * cursor (time, id) of the last entry returned. It is authenticated with HMAC-SHA256
 * under the deployment's secret over the cursor AND the query's scope (tenant, log,
 * window, filters): a token altered, invented, or replayed on another query is refused.
 */
#ifndef ANN_DOMAIN_TOKEN_H
#define ANN_DOMAIN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ANN_PAGE_TOKEN_MAX 64 /* buffer size for an encoded token, NUL included */

typedef struct ann_page_scope {
    const char *tenant_id;
    const char *log_id;
    int64_t start_ns;
    int64_t end_ns;
    const char *text; /* text filter, may be NULL */
    size_t text_len;
    int32_t min_severity;
} ann_page_scope;

typedef struct ann_page_cursor {
    uint64_t max_id;
    int64_t time_ns;
    uint64_t entry_id;
} ann_page_cursor;

/* Writes a NUL-terminated token into out[ANN_PAGE_TOKEN_MAX]. */
void ann_page_token_encode(const uint8_t secret[32], const ann_page_scope *scope,
                           const ann_page_cursor *cur, char out[ANN_PAGE_TOKEN_MAX]);

/* Checks and decodes a token; ANN_EINVAL naming page_token when it is not one of ours
 * for this scope. */
int ann_page_token_decode(const uint8_t secret[32], const ann_page_scope *scope, const char *tok,
                          size_t len, ann_page_cursor *out, ann_err *err);

#endif
