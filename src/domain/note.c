#include "domain/note.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "domain/text.h"

#define ALG_ED25519 0x01
#define SIG_LEN 64
static const char em_dash[] = "\xe2\x80\x94"; /* U+2014 */

/* ---- base64 ------------------------------------------------------------------------------- */

void ann_base64_encode(const uint8_t *in, size_t n, ann_buf *out)
{
    size_t m = 4 * ((n + 2) / 3);
    ann_buf_reserve(out, m + 1);
    EVP_EncodeBlock(out->data + out->len, in, (int)n);
    out->len += m;
}

static bool b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

long ann_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n == 0)
        return 0;
    if (n % 4 != 0 || n > (size_t)ANN_NOTE_MAX_BYTES)
        return -1;
    size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64_char((unsigned char)in[i]))
            return -1;
    size_t len = n / 4 * 3 - pad;
    if (len > cap)
        return -1;
    uint8_t *tmp = ann_xmalloc(n / 4 * 3 + n + 1);
    char *back = (char *)tmp + n / 4 * 3;
    long rc = -1;
    if (EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n) < 0)
        goto done;
    /* Canonical only: the unused low bits of the last character must be zero, which holds
     * exactly when encoding the result gives the input back. */
    EVP_EncodeBlock((unsigned char *)back, tmp, (int)len);
    if (memcmp(back, in, n) != 0)
        goto done;
    memcpy(out, tmp, len);
    rc = (long)len;
done:
    OPENSSL_cleanse(tmp, n / 4 * 3);
    free(tmp);
    return rc;
}

/* ---- keys --------------------------------------------------------------------------------- */

bool ann_note_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > ANN_NOTE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || c == '+')
            return false;
    }
    return true;
}

static uint32_t key_id(const char *name, const uint8_t pub[32])
{
    uint8_t in[ANN_NOTE_NAME_MAX + 2 + 32], h[32];
    size_t n = strlen(name);
    memcpy(in, name, n);
    in[n] = 0x0a;
    in[n + 1] = ALG_ED25519;
    memcpy(in + n + 2, pub, 32);
    SHA256(in, n + 2 + 32, h);
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

int ann_note_signer_init(ann_note_signer *s, const char *name, const uint8_t seed[32], ann_err *err)
{
    memset(s, 0, sizeof *s);
    if (!ann_note_name_valid(name, strlen(name)))
        return ann_err_set(err, ANN_EINVAL,
                           "key name: 1..%d printable ASCII characters, no space and no '+'",
                           ANN_NOTE_NAME_MAX);
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    size_t pl = 32;
    if (!k || EVP_PKEY_get_raw_public_key(k, s->pub, &pl) != 1 || pl != 32) {
        EVP_PKEY_free(k);
        return ann_err_set(err, ANN_EINTERNAL, "Ed25519 key: OpenSSL refused the seed");
    }
    EVP_PKEY_free(k);
    memcpy(s->seed, seed, 32);
    memcpy(s->name, name, strlen(name) + 1);
    s->key_id = key_id(s->name, s->pub);
    return 0;
}

void ann_note_signer_release(ann_note_signer *s)
{
    OPENSSL_cleanse(s, sizeof *s);
}

static void add_str(ann_buf *b, const char *s)
{
    ann_buf_add(b, s, strlen(s));
}

static void add_key(ann_buf *out, const char *name, uint32_t id, const uint8_t key[32])
{
    char hex[9];
    uint8_t k[33];
    snprintf(hex, sizeof hex, "%08x", id);
    add_str(out, name);
    ann_buf_add_byte(out, '+');
    ann_buf_add(out, hex, 8);
    ann_buf_add_byte(out, '+');
    k[0] = ALG_ED25519;
    memcpy(k + 1, key, 32);
    ann_base64_encode(k, sizeof k, out);
    OPENSSL_cleanse(k, sizeof k);
}

void ann_note_signer_format(const ann_note_signer *s, ann_buf *out)
{
    add_str(out, "PRIVATE+KEY+");
    add_key(out, s->name, s->key_id, s->seed);
}

void ann_note_verifier_of(const ann_note_signer *s, ann_note_verifier *v)
{
    memset(v, 0, sizeof *v);
    memcpy(v->name, s->name, sizeof v->name);
    v->key_id = s->key_id;
    memcpy(v->pub, s->pub, 32);
}

void ann_note_verifier_format(const ann_note_verifier *v, ann_buf *out)
{
    add_key(out, v->name, v->key_id, v->pub);
}

static void trim(const char **p, size_t *n)
{
    while (*n && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
        (*p)++, (*n)--;
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t' || (*p)[*n - 1] == '\n' ||
                  (*p)[*n - 1] == '\r'))
        (*n)--;
}

/* "<name>+<8 hex>+<base64(0x01 || 32 bytes)>": the name, the id and the 32 bytes. */
static int parse_key(const char *p, size_t n, const char *what, char name[ANN_NOTE_NAME_MAX + 1],
                     uint32_t *id, uint8_t key[32], ann_err *err)
{
    const char *plus = memchr(p, '+', n);
    if (!plus || !ann_note_name_valid(p, (size_t)(plus - p)))
        return ann_err_set(err, ANN_EINVAL, "%s: expected <name>+<key id>+<key>", what);
    size_t nl = (size_t)(plus - p);
    const char *h = plus + 1;
    size_t rest = n - nl - 1;
    if (rest < 10 || h[8] != '+')
        return ann_err_set(err, ANN_EINVAL, "%s: the key id is not 8 hex digits", what);
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = h[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return ann_err_set(err, ANN_EINVAL, "%s: the key id is not 8 hex digits", what);
        v = v << 4 | d;
    }
    uint8_t k[33];
    long kl = ann_base64_decode(h + 9, rest - 9, k, sizeof k);
    if (kl != 33 || k[0] != ALG_ED25519) {
        OPENSSL_cleanse(k, sizeof k);
        return ann_err_set(err, ANN_EINVAL, "%s: not an Ed25519 key (base64 of 0x01 and 32 bytes)",
                           what);
    }
    memcpy(name, p, nl);
    name[nl] = 0;
    *id = v;
    memcpy(key, k + 1, 32);
    OPENSSL_cleanse(k, sizeof k);
    return 0;
}

int ann_note_verifier_parse(ann_note_verifier *v, const char *text, size_t len, ann_err *err)
{
    memset(v, 0, sizeof *v);
    trim(&text, &len);
    if (parse_key(text, len, "verifier key", v->name, &v->key_id, v->pub, err) != 0)
        return -1;
    if (key_id(v->name, v->pub) != v->key_id)
        return ann_err_set(err, ANN_EINVAL, "verifier key: the key id does not match the key");
    return 0;
}

int ann_note_signer_parse(ann_note_signer *s, const char *text, size_t len, ann_err *err)
{
    static const char prefix[] = "PRIVATE+KEY+";
    char name[ANN_NOTE_NAME_MAX + 1];
    uint32_t id;
    uint8_t seed[32];
    memset(s, 0, sizeof *s);
    trim(&text, &len);
    if (len < sizeof prefix - 1 || memcmp(text, prefix, sizeof prefix - 1) != 0)
        return ann_err_set(err, ANN_EINVAL, "signing key: expected PRIVATE+KEY+<name>+<id>+<key>");
    if (parse_key(text + sizeof prefix - 1, len - (sizeof prefix - 1), "signing key", name, &id,
                  seed, err) != 0)
        return -1;
    int rc = ann_note_signer_init(s, name, seed, err);
    OPENSSL_cleanse(seed, sizeof seed);
    if (rc != 0)
        return -1;
    if (s->key_id != id) {
        ann_note_signer_release(s);
        return ann_err_set(err, ANN_EINVAL, "signing key: the key id does not match the key");
    }
    return 0;
}

/* ---- notes -------------------------------------------------------------------------------- */

/* UTF-8 with no control character but newline. */
static bool note_chars_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 && p[i] != '\n')
            return false;
    return ann_utf8_valid(p, n);
}

int ann_note_sign(const ann_note_signer *s, const char *text, size_t len, ann_buf *out,
                  ann_err *err)
{
    if (len == 0 || text[len - 1] != '\n' || !note_chars_ok(text, len) || len > ANN_NOTE_MAX_BYTES)
        return ann_err_set(err, ANN_EINVAL,
                           "note text: must end in a newline, be UTF-8 and hold no control "
                           "character but newline");
    uint8_t sig[4 + SIG_LEN];
    size_t sl = SIG_LEN;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, s->seed, 32);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = k && c && EVP_DigestSignInit(c, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestSign(c, sig + 4, &sl, (const unsigned char *)text, len) == 1 &&
             sl == SIG_LEN;
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    if (!ok)
        return ann_err_set(err, ANN_EINTERNAL, "Ed25519 signing failed in OpenSSL");
    sig[0] = (uint8_t)(s->key_id >> 24);
    sig[1] = (uint8_t)(s->key_id >> 16);
    sig[2] = (uint8_t)(s->key_id >> 8);
    sig[3] = (uint8_t)s->key_id;
    ann_buf_add(out, text, len);
    ann_buf_add_byte(out, '\n');
    add_str(out, em_dash);
    ann_buf_add_byte(out, ' ');
    add_str(out, s->name);
    ann_buf_add_byte(out, ' ');
    ann_base64_encode(sig, sizeof sig, out);
    ann_buf_add_byte(out, '\n');
    return 0;
}

static bool ed25519_verify(const uint8_t pub[32], const uint8_t *sig, const char *msg, size_t n)
{
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = k && c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(c, sig, SIG_LEN, (const unsigned char *)msg, n) == 1;
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    return ok;
}

int ann_note_open(const ann_note_verifier *v, const char *note, size_t len, size_t *text_len,
                  ann_err *err)
{
    *text_len = 0;
    if (len > ANN_NOTE_MAX_BYTES)
        return ann_err_set(err, ANN_EINVAL, "malformed note: over %d bytes", ANN_NOTE_MAX_BYTES);
    if (len == 0 || note[len - 1] != '\n')
        return ann_err_set(err, ANN_EINVAL, "malformed note: it does not end in a newline");
    if (!note_chars_ok(note, len))
        return ann_err_set(err, ANN_EINVAL,
                           "malformed note: not UTF-8, or a control character other than newline");
    /* The text ends at the last blank line. */
    size_t split = len;
    for (size_t i = len - 1; i > 0; i--)
        if (note[i] == '\n' && note[i - 1] == '\n') {
            split = i - 1;
            break;
        }
    if (split == len)
        return ann_err_set(err, ANN_EINVAL, "malformed note: no blank line before the signatures");
    size_t tl = split + 1; /* the text keeps its final newline */
    size_t pos = tl + 1, nsigs = 0, verified = 0;
    if (pos >= len)
        return ann_err_set(err, ANN_EINVAL, "malformed note: no signature lines");
    while (pos < len) {
        const char *line = note + pos;
        const char *eol = memchr(line, '\n', len - pos);
        size_t ll = (size_t)(eol - line);
        pos += ll + 1;
        if (++nsigs > ANN_NOTE_MAX_SIGNATURES)
            return ann_err_set(err, ANN_EINVAL, "malformed note: over %d signatures",
                               ANN_NOTE_MAX_SIGNATURES);
        if (ll < 4 || memcmp(line, em_dash, 3) != 0 || line[3] != ' ')
            return ann_err_set(err, ANN_EINVAL,
                               "malformed note: signature line %zu does not start with U+2014 "
                               "and a space",
                               nsigs);
        const char *name = line + 4;
        const char *sp = memchr(name, ' ', ll - 4);
        if (!sp || sp == name || memchr(name, '+', (size_t)(sp - name)))
            return ann_err_set(err, ANN_EINVAL,
                               "malformed note: signature line %zu has no key name", nsigs);
        size_t nl = (size_t)(sp - name);
        const char *b64 = sp + 1;
        size_t bl = ll - 4 - nl - 1;
        uint8_t *sig = ann_xmalloc(bl / 4 * 3 + 4);
        long sn = ann_base64_decode(b64, bl, sig, bl / 4 * 3 + 4);
        int bad = 0;
        if (sn < 5) {
            free(sig);
            return ann_err_set(err, ANN_EINVAL,
                               "malformed note: signature line %zu is not base64 of a key id "
                               "and a signature",
                               nsigs);
        }
        uint32_t id =
            (uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 | sig[3];
        /* Another key's signature (another name or key id) is ignored, as the spec says. */
        if (nl == strlen(v->name) && memcmp(name, v->name, nl) == 0 && id == v->key_id) {
            bad = sn != 4 + SIG_LEN || !ed25519_verify(v->pub, sig + 4, note, tl);
            verified++;
        }
        free(sig);
        if (bad)
            return ann_err_set(err, ANN_EINVAL, "invalid signature for key %s+%08x", v->name,
                               v->key_id);
    }
    if (verified == 0)
        return ann_err_set(err, ANN_EINVAL, "no signature by key %s+%08x", v->name, v->key_id);
    *text_len = tl;
    return 0;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

void ann_checkpoint_text(const char *log_id, uint64_t size, const uint8_t root[ANN_HASH_LEN],
                         ann_buf *out)
{
    char n[24];
    add_str(out, ANN_CHECKPOINT_ORIGIN_PREFIX);
    add_str(out, log_id);
    ann_buf_add_byte(out, '\n');
    snprintf(n, sizeof n, "%llu\n", (unsigned long long)size);
    add_str(out, n);
    ann_base64_encode(root, ANN_HASH_LEN, out);
    ann_buf_add_byte(out, '\n');
}

int ann_checkpoint_sign(const ann_note_signer *s, const char *log_id, uint64_t size,
                        const uint8_t root[ANN_HASH_LEN], ann_buf *out, ann_err *err)
{
    ann_buf text = ANN_BUF_INIT;
    ann_checkpoint_text(log_id, size, root, &text);
    int rc = ann_note_sign(s, (const char *)text.data, text.len, out, err);
    ann_buf_release(&text);
    return rc;
}

int ann_checkpoint_open(const ann_note_verifier *v, const char *note, size_t len,
                        const char *log_id, ann_checkpoint *out, ann_err *err)
{
    size_t tl;
    memset(out, 0, sizeof *out);
    if (ann_note_open(v, note, len, &tl, err) != 0)
        return -1;
    const char *line[3];
    size_t ll[3], pos = 0;
    for (int i = 0; i < 3; i++) {
        if (pos >= tl)
            return ann_err_set(err, ANN_EINVAL, "checkpoint: fewer than 3 lines");
        line[i] = note + pos;
        ll[i] = (size_t)((const char *)memchr(line[i], '\n', tl - pos) - line[i]);
        pos += ll[i] + 1;
    }
    while (pos < tl) { /* extension lines: opaque, non-empty */
        const char *l = note + pos;
        size_t n = (size_t)((const char *)memchr(l, '\n', tl - pos) - l);
        if (n == 0)
            return ann_err_set(err, ANN_EINVAL, "checkpoint: an empty extension line");
        pos += n + 1;
    }
    if (ll[0] == 0 || ll[0] > ANN_NOTE_NAME_MAX)
        return ann_err_set(err, ANN_EINVAL, "checkpoint: origin empty or over %d bytes",
                           ANN_NOTE_NAME_MAX);
    memcpy(out->origin, line[0], ll[0]);
    out->origin[ll[0]] = 0;
    if (log_id) {
        size_t pl = sizeof ANN_CHECKPOINT_ORIGIN_PREFIX - 1, il = strlen(log_id);
        if (ll[0] != pl + il || memcmp(line[0], ANN_CHECKPOINT_ORIGIN_PREFIX, pl) != 0 ||
            memcmp(line[0] + pl, log_id, il) != 0)
            return ann_err_set(err, ANN_EINVAL, "checkpoint: origin %s is not %s%s", out->origin,
                               ANN_CHECKPOINT_ORIGIN_PREFIX, log_id);
    }
    uint64_t size = 0;
    if (ll[1] == 0 || ll[1] > 20 || (ll[1] > 1 && line[1][0] == '0'))
        return ann_err_set(err, ANN_EINVAL, "checkpoint: tree size is not a decimal number");
    for (size_t i = 0; i < ll[1]; i++) {
        char c = line[1][i];
        if (c < '0' || c > '9' || size > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
            return ann_err_set(err, ANN_EINVAL, "checkpoint: tree size is not a decimal number");
        size = size * 10 + (uint64_t)(c - '0');
    }
    if (ann_base64_decode(line[2], ll[2], out->root, ANN_HASH_LEN) != ANN_HASH_LEN)
        return ann_err_set(err, ANN_EINVAL, "checkpoint: root hash is not base64 of 32 bytes");
    out->size = size;
    return 0;
}
