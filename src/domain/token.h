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

/*
 * Sealed tokens for the other walks (ListLogs, SearchLogEntries): a kind byte and a
 * payload of at most ANN_SEALED_PAYLOAD_MAX bytes, MAC'd (HMAC-SHA256 under the secret)
 * together with a digest of the query that made them, so a token only continues the walk
 * of the very query it came from.
 */
#define ANN_SEALED_PAYLOAD_MAX 64
#define ANN_SEALED_TOKEN_MAX 128 /* buffer size for an encoded sealed token, NUL included */

enum { ANN_TOKEN_LIST_LOGS = 2, ANN_TOKEN_SEARCH = 3, ANN_TOKEN_SHARE = 4 };

/* A digest of a query: fields added in a fixed order, each length-prefixed. */
typedef struct ann_scope_digest {
    void *ctx; /* EVP_MD_CTX */
} ann_scope_digest;
void ann_scope_begin(ann_scope_digest *d, uint8_t kind);
void ann_scope_add(ann_scope_digest *d, const void *p, size_t n);
void ann_scope_add_i64(ann_scope_digest *d, int64_t v);
void ann_scope_end(ann_scope_digest *d, uint8_t out[32]);

void ann_token_seal(const uint8_t secret[32], uint8_t kind, const uint8_t scope[32],
                    const uint8_t *payload, size_t n, char out[ANN_SEALED_TOKEN_MAX]);
/* ANN_EINVAL naming page_token unless `tok` is a token of this kind and scope carrying
 * exactly n payload bytes. */
int ann_token_open(const uint8_t secret[32], uint8_t kind, const uint8_t scope[32], const char *tok,
                   size_t len, uint8_t *payload, size_t n, ann_err *err);
