#include "domain/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "domain/limits.h"
#include "domain/text.h"

#define TOKEN_VERSION 1
#define MAC_LEN 16
#define BODY_LEN (1 + 8 + 8 + 8)

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static size_t put_str(uint8_t *p, const char *s, size_t n)
{
    put64(p, n);
    if (n)
        memcpy(p + 8, s, n);
    return 8 + n;
}

/* MAC over the token body and the scope, each field length-prefixed. */
static void mac(const uint8_t secret[32], const ann_page_scope *sc, const uint8_t body[BODY_LEN],
                uint8_t out[MAC_LEN])
{
    uint8_t msg[BODY_LEN + 4 * 8 + 64 + 64 + ANN_MAX_TEXT_FILTER_BYTES + 32];
    size_t n = 0;
    memcpy(msg, body, BODY_LEN);
    n += BODY_LEN;
    n += put_str(msg + n, sc->tenant_id, strnlen(sc->tenant_id, 64));
    n += put_str(msg + n, sc->log_id, strnlen(sc->log_id, 64));
    put64(msg + n, (uint64_t)sc->start_ns), n += 8;
    put64(msg + n, (uint64_t)sc->end_ns), n += 8;
    size_t tl = sc->text_len > ANN_MAX_TEXT_FILTER_BYTES ? ANN_MAX_TEXT_FILTER_BYTES : sc->text_len;
    n += put_str(msg + n, sc->text ? sc->text : "", sc->text ? tl : 0);
    put64(msg + n, (uint64_t)(int64_t)sc->min_severity), n += 8;
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned int fl = 0;
    HMAC(EVP_sha256(), secret, 32, msg, n, full, &fl);
    memcpy(out, full, MAC_LEN);
}

void ann_page_token_encode(const uint8_t secret[32], const ann_page_scope *scope,
                           const ann_page_cursor *cur, char out[ANN_PAGE_TOKEN_MAX])
{
    uint8_t raw[BODY_LEN + MAC_LEN];
    raw[0] = TOKEN_VERSION;
    put64(raw + 1, cur->max_id);
    put64(raw + 9, (uint64_t)cur->time_ns);
    put64(raw + 17, cur->entry_id);
    mac(secret, scope, raw, raw + BODY_LEN);
    ann_b64url_encode(raw, sizeof raw, out);
}

int ann_page_token_decode(const uint8_t secret[32], const ann_page_scope *scope, const char *tok,
                          size_t len, ann_page_cursor *out, ann_err *err)
{
    uint8_t raw[BODY_LEN + MAC_LEN + 3];
    long n = len < ANN_PAGE_TOKEN_MAX ? ann_b64url_decode(tok, len, raw, sizeof raw) : -1;
    if (n != BODY_LEN + MAC_LEN || raw[0] != TOKEN_VERSION)
        return ann_err_set(err, ANN_EINVAL, "page_token: not a valid page token");
    uint8_t want[MAC_LEN];
    mac(secret, scope, raw, want);
    if (CRYPTO_memcmp(want, raw + BODY_LEN, MAC_LEN) != 0)
        return ann_err_set(err, ANN_EINVAL,
                           "page_token: not a valid page token for this log and query");
    out->max_id = get64(raw + 1);
    out->time_ns = (int64_t)get64(raw + 9);
    out->entry_id = get64(raw + 17);
    return 0;
}

void ann_scope_begin(ann_scope_digest *d, uint8_t kind)
{
    d->ctx = EVP_MD_CTX_new();
    if (!d->ctx)
        abort();
    EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(d->ctx, &kind, 1);
}

void ann_scope_add(ann_scope_digest *d, const void *p, size_t n)
{
    uint8_t len[8];
    put64(len, n);
    EVP_DigestUpdate(d->ctx, len, sizeof len);
    if (n)
        EVP_DigestUpdate(d->ctx, p, n);
}

void ann_scope_add_i64(ann_scope_digest *d, int64_t v)
{
    uint8_t b[8];
    put64(b, (uint64_t)v);
    ann_scope_add(d, b, sizeof b);
}

void ann_scope_end(ann_scope_digest *d, uint8_t out[32])
{
    unsigned int n = 0;
    EVP_DigestFinal_ex(d->ctx, out, &n);
    EVP_MD_CTX_free(d->ctx);
    d->ctx = NULL;
}

static void sealed_mac(const uint8_t secret[32], const uint8_t scope[32], const uint8_t *raw,
                       size_t n, uint8_t out[MAC_LEN])
{
    uint8_t msg[2 + ANN_SEALED_PAYLOAD_MAX + 32];
    memcpy(msg, raw, n);
    memcpy(msg + n, scope, 32);
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned int fl = 0;
    HMAC(EVP_sha256(), secret, 32, msg, n + 32, full, &fl);
    memcpy(out, full, MAC_LEN);
}

void ann_token_seal(const uint8_t secret[32], uint8_t kind, const uint8_t scope[32],
                    const uint8_t *payload, size_t n, char out[ANN_SEALED_TOKEN_MAX])
{
    uint8_t raw[2 + ANN_SEALED_PAYLOAD_MAX + MAC_LEN];
    if (n > ANN_SEALED_PAYLOAD_MAX)
        abort(); /* a caller's bug */
    raw[0] = TOKEN_VERSION;
    raw[1] = kind;
    memcpy(raw + 2, payload, n);
    sealed_mac(secret, scope, raw, 2 + n, raw + 2 + n);
    ann_b64url_encode(raw, 2 + n + MAC_LEN, out);
}

int ann_token_open(const uint8_t secret[32], uint8_t kind, const uint8_t scope[32], const char *tok,
                   size_t len, uint8_t *payload, size_t n, ann_err *err)
{
    uint8_t raw[2 + ANN_SEALED_PAYLOAD_MAX + MAC_LEN + 3];
    long got = len < ANN_SEALED_TOKEN_MAX ? ann_b64url_decode(tok, len, raw, sizeof raw) : -1;
    if (n > ANN_SEALED_PAYLOAD_MAX || got != (long)(2 + n + MAC_LEN) || raw[0] != TOKEN_VERSION ||
        raw[1] != kind)
        return ann_err_set(err, ANN_EINVAL, "page_token: not a valid page token");
    uint8_t want[MAC_LEN];
    sealed_mac(secret, scope, raw, 2 + n, want);
    if (CRYPTO_memcmp(want, raw + 2 + n, MAC_LEN) != 0)
        return ann_err_set(err, ANN_EINVAL, "page_token: not a valid page token for this query");
    memcpy(payload, raw + 2, n);
    return 0;
}
