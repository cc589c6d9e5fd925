#include "domain/integrity.h"

#include <string.h>

#include "domain/merkle.h"
#include "domain/pbread.h"
#include "domain/text.h"

void ann_integrity_field(ann_integrity_kind kind, const uint8_t v[32],
                         uint8_t out[ANN_INTEGRITY_FIELD_LEN])
{
    out[0] = (uint8_t)(((ANN_INTEGRITY_FIELD << 3) | 2) & 0x7f) | 0x80; /* 0xda */
    out[1] = (uint8_t)(((ANN_INTEGRITY_FIELD << 3) | 2) >> 7);          /* 0x02 */
    out[2] = 34;
    out[3] = (uint8_t)(((unsigned)kind << 3) | 2);
    out[4] = 32;
    memcpy(out + 5, v, 32);
}

/* The kind of a field that is exactly ANN_INTEGRITY_FIELD_LEN bytes of the form we write. */
static ann_integrity_kind field_kind(const uint8_t *f)
{
    if (f[0] != 0xda || f[1] != 0x02 || f[2] != 34 || f[4] != 32)
        return ANN_INTEGRITY_NONE;
    return f[3] == 0x0a   ? ANN_INTEGRITY_SALT
           : f[3] == 0x12 ? ANN_INTEGRITY_HASH
                          : ANN_INTEGRITY_NONE;
}

size_t ann_integrity_strip(const uint8_t *body, size_t len)
{
    if (len >= ANN_INTEGRITY_FIELD_LEN &&
        field_kind(body + len - ANN_INTEGRITY_FIELD_LEN) != ANN_INTEGRITY_NONE)
        return len - ANN_INTEGRITY_FIELD_LEN;
    return len;
}

ann_integrity_kind ann_integrity_find(const uint8_t *body, size_t len, uint8_t out[32])
{
    /* Stores append the field last: found there without parsing the rest. */
    if (len >= ANN_INTEGRITY_FIELD_LEN) {
        const uint8_t *f = body + len - ANN_INTEGRITY_FIELD_LEN;
        ann_integrity_kind k = field_kind(f);
        if (k != ANN_INTEGRITY_NONE) {
            memcpy(out, f + 5, 32);
            return k;
        }
    }
    ann_integrity_kind kind = ANN_INTEGRITY_NONE;
    size_t pos = 0;
    ann_pb_field f;
    while (pos < len) {
        if (!ann_pb_next(body, len, &pos, &f))
            return ANN_INTEGRITY_NONE;
        if (f.num != ANN_INTEGRITY_FIELD || f.wt != 2)
            continue;
        size_t ip = 0;
        ann_pb_field g;
        while (ip < f.n) {
            if (!ann_pb_next(f.p, f.n, &ip, &g))
                return ANN_INTEGRITY_NONE;
            if (g.wt == 2 && g.n == 32 && (g.num == 1 || g.num == 2)) {
                kind = g.num == 1 ? ANN_INTEGRITY_SALT : ANN_INTEGRITY_HASH;
                memcpy(out, g.p, 32);
            }
        }
    }
    return kind;
}

bool ann_integrity_is_hash_field(const uint8_t *b, size_t len)
{
    uint8_t v[32], f[ANN_INTEGRITY_FIELD_LEN];
    if (len != ANN_INTEGRITY_FIELD_LEN || ann_integrity_find(b, len, v) != ANN_INTEGRITY_HASH)
        return false;
    ann_integrity_field(ANN_INTEGRITY_HASH, v, f);
    return memcmp(f, b, len) == 0;
}

int ann_integrity_body_hash(const uint8_t *body, size_t len, uint8_t out[32], ann_err *err)
{
    uint8_t v[32];
    switch (ann_integrity_find(body, len, v)) {
    case ANN_INTEGRITY_SALT:
        return ann_entry_body_hash(v, body, len, out, err);
    case ANN_INTEGRITY_HASH:
        memcpy(out, v, 32);
        return 0;
    case ANN_INTEGRITY_NONE:
        break;
    }
    return ann_err_set(err, ANN_ECORRUPT,
                       "entry body: no integrity field (log predates integrity)");
}

static int64_t wire_ts(const uint8_t *p, size_t n)
{
    size_t pos = 0;
    ann_pb_field f;
    int64_t sec = 0, nanos = 0;
    while (pos < n && ann_pb_next(p, n, &pos, &f))
        if (f.wt == 0 && f.num == 1)
            sec = (int64_t)f.v;
        else if (f.wt == 0 && f.num == 2)
            nanos = (int64_t)f.v;
    return sec * 1000000000 + nanos;
}

int ann_integrity_wire_leaf(const uint8_t *p, size_t n, uint64_t *entry_id, bool *redacted,
                            uint8_t leaf[32], const char **why)
{
    ann_entry e = {0};
    ann_pb_field f;
    size_t pos = 0;
    bool have_id = false;
    const uint8_t *salt = NULL, *hash = NULL;
    *redacted = false;
    while (pos < n) {
        if (!ann_pb_next(p, n, &pos, &f)) {
            *why = "malformed on the wire";
            return -1;
        }
        if (f.num == 2 && f.wt == 2) {
            e.insert_id = (const char *)f.p, e.insert_id_len = f.n;
        } else if (f.num == 20 && f.wt == 2) {
            have_id = ann_entry_id_parse((const char *)f.p, f.n, false, &e.entry_id) == 0;
        } else if (f.num == 21 && f.wt == 2) {
            e.time_ns = wire_ts(f.p, f.n);
        } else if (f.num == 22 && f.wt == 2) {
            e.insert_time_ns = wire_ts(f.p, f.n);
        } else if (f.num == 40 && f.wt == 0) {
            *redacted = f.v != 0;
        } else if (f.num == 41 && f.wt == 0) {
            e.severity = (int32_t)f.v;
        } else if (f.num == ANN_INTEGRITY_FIELD && f.wt == 2) {
            size_t ip = 0;
            ann_pb_field g;
            while (ip < f.n && ann_pb_next(f.p, f.n, &ip, &g))
                if (g.wt == 2 && g.n == 32 && g.num == 1)
                    salt = g.p;
                else if (g.wt == 2 && g.n == 32 && g.num == 2)
                    hash = g.p;
        }
    }
    if (!have_id) {
        *why = "no entry_id";
        return -1;
    }
    *entry_id = e.entry_id;
    uint8_t bh[32];
    if (*redacted) {
        if (salt) {
            *why = "redacted, but its salt is returned";
            return -1;
        }
        if (!hash) {
            *why = "redacted, with no body_hash";
            return -1;
        }
        memcpy(bh, hash, 32);
    } else {
        if (!salt) {
            *why = "no body_salt (a log from before integrity?)";
            return -1;
        }
        /* The LogEntry's own bytes serve as the body: only fields 23, 30 and 31 count. */
        if (ann_entry_body_hash(salt, p, n, bh, NULL) != 0) {
            *why = "its labels or payload are malformed";
            return -1;
        }
        if (hash && memcmp(hash, bh, 32) != 0) {
            *why = "body_hash does not match its body";
            return -1;
        }
    }
    ann_entry_leaf_hash(&e, bh, leaf);
    return 0;
}

int ann_integrity_entry_leaf(uint64_t entry_id, int64_t time_ns, int64_t insert_time_ns,
                             int32_t severity, const void *insert_id, size_t insert_id_len,
                             const uint8_t *body, size_t body_len, uint8_t body_hash[32],
                             uint8_t leaf[32])
{
    if (ann_integrity_body_hash(body, body_len, body_hash, NULL) != 0)
        return -1;
    ann_entry e = {.entry_id = entry_id,
                   .time_ns = time_ns,
                   .insert_time_ns = insert_time_ns,
                   .severity = severity,
                   .insert_id = insert_id,
                   .insert_id_len = insert_id_len};
    ann_entry_leaf_hash(&e, body_hash, leaf);
    return 0;
}
