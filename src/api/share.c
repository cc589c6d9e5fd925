/*
 * Share links (docs/viewer.md, "Share links"): CreateShareLink makes a read-only
 * capability for one log and an entry id range that expires; the service takes it in place
 * of a key (`Authorization: Bearer annals-share.<token>`, or the viewer's ?share=).
 *
 * The token is a sealed token of src/domain/token.h (kind ANN_TOKEN_SHARE: HMAC-SHA256
 * under the deployment secret, so every API server of the deployment accepts it and an
 * altered byte fails) over 56 bytes: tenant id (16), log id (16), first and last entry id
 * (u64 each, big-endian), expiry (i64 ns). Nothing is stored: a link lives until it
 * expires (at most ANN_SHARE_TTL_MAX_S); it does not die with the key that made it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/service_internal.h"
#include "api/wire.h"
#include "domain/text.h"
#include "domain/token.h"

#define SHARE_PREFIX "annals-share."
#define SHARE_PAYLOAD 56

static void scope_of(uint8_t out[32])
{
    ann_scope_digest d;
    ann_scope_begin(&d, ANN_TOKEN_SHARE);
    ann_scope_add(&d, "share-link", 10);
    ann_scope_end(&d, out);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

bool ann_share_token_is(const char *tok, size_t len)
{
    return len > sizeof SHARE_PREFIX - 1 && memcmp(tok, SHARE_PREFIX, sizeof SHARE_PREFIX - 1) == 0;
}

int ann_share_auth(ann_service *svc, const char *tok, size_t len, ann_tenant *out, ann_err *err)
{
    uint8_t scope[32], p[SHARE_PAYLOAD];
    scope_of(scope);
    ann_err ignored = {0};
    size_t skip = sizeof SHARE_PREFIX - 1;
    if (ann_token_open(svc->secret, ANN_TOKEN_SHARE, scope, tok + skip, len - skip, p, sizeof p,
                       &ignored) != 0)
        return ann_err_set(err, ANN_EUNAUTH, "authorization: unknown key");
    int64_t expire = (int64_t)get_u64(p + 48);
    if (svc_now_ns() >= expire)
        return ann_err_set(err, ANN_EUNAUTH, "authorization: unknown key");
    memset(out, 0, sizeof *out);
    ann_uuid_format(p, out->id);
    ann_uuid_format(p + 16, out->share_log);
    out->share_first = get_u64(p + 32);
    out->share_last = get_u64(p + 40);
    out->expire_ns = expire;
    out->roles = ANN_ROLE_READER;
    snprintf(out->key_name, sizeof out->key_name, "share-link");
    return 0;
}

int ann_share_recheck(const ann_tenant *t, ann_err *err)
{
    if (svc_now_ns() >= t->expire_ns)
        return ann_err_set(err, ANN_EUNAUTH, "authorization: unknown key");
    return 0;
}

int svc_share_log_check(const ann_tenant *t, const char *log_id, ann_err *err)
{
    if (t->share_log[0] && strcmp(t->share_log, log_id) != 0)
        return ann_err_set(err, ANN_ENOTFOUND, "log %.64s not found", log_id);
    return 0;
}

bool svc_share_covers(const ann_tenant *t, uint64_t entry_id)
{
    return !t->share_log[0] || (entry_id >= t->share_first && entry_id <= t->share_last);
}

static int parse_id(const ProtobufCBinaryData *f, const char *field, uint64_t dflt, uint64_t *out,
                    ann_err *err)
{
    *out = dflt;
    if (f->len && ann_entry_id_parse((const char *)f->data, f->len, false, out) != 0)
        return ann_err_set(err, ANN_EINVAL, "%s: not an entry id (a decimal 1, 2, ...)", field);
    return 0;
}

int svc_do_share(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                 ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1];
    ann_log_meta m = {0};
    Annals__Wire__V1__CreateShareLinkRequest *r =
        (Annals__Wire__V1__CreateShareLinkRequest *)svc_decode(
            &annals__wire__v1__create_share_link_request__descriptor, req, len, err);
    if (!r)
        return -1;
    uint64_t first, last;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0 ||
        parse_id(&r->first_entry_id, "first_entry_id", 1, &first, err) != 0 ||
        parse_id(&r->last_entry_id, "last_entry_id", UINT64_MAX, &last, err) != 0)
        goto done;
    if (last < first) {
        ann_err_set(err, ANN_EINVAL, "last_entry_id: %" PRIu64 " is before first_entry_id %" PRIu64,
                    last, first);
        goto done;
    }
    int64_t ttl = r->ttl_seconds ? r->ttl_seconds : ANN_SHARE_TTL_DEFAULT_S;
    if (ttl < 1 || ttl > ANN_SHARE_TTL_MAX_S) {
        ann_err_set(err, ANN_EINVAL, "ttl_seconds: %" PRId64 " is not within 1..%d", ttl,
                    ANN_SHARE_TTL_MAX_S);
        goto done;
    }
    if (svc_share_log_check(t, log_id, err) != 0 ||
        ann_store_log_get(svc->store, t->id, log_id, &m, err) != 0)
        goto done;
    int64_t expire = svc_now_ns() + ttl * 1000000000LL;
    uint8_t p[SHARE_PAYLOAD], scope[32];
    if (ann_uuid_parse(t->id, strlen(t->id), p) != 0 ||
        ann_uuid_parse(log_id, strlen(log_id), p + 16) != 0) {
        ann_err_set(err, ANN_EINTERNAL, "share: an id is not a UUID");
        goto done;
    }
    put_u64(p + 32, first);
    put_u64(p + 40, last);
    put_u64(p + 48, (uint64_t)expire);
    scope_of(scope);
    char tok[sizeof SHARE_PREFIX + ANN_SEALED_TOKEN_MAX];
    memcpy(tok, SHARE_PREFIX, sizeof SHARE_PREFIX - 1);
    ann_token_seal(svc->secret, ANN_TOKEN_SHARE, scope, p, sizeof p, tok + sizeof SHARE_PREFIX - 1);
    ann_buf_add_len_field(resp, 1, tok, strlen(tok));
    ann_wire_add_ts(resp, 2, expire);
    rc = 0;
done:
    ann_log_meta_release(&m);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}
