#include "domain/body.h"

#include <string.h>

#include "domain/pbread.h"
#include "domain/text.h"

#define MAX_DEPTH 70 /* the API refuses JSON nested deeper than 64 */

static int value_strings(const uint8_t *buf, size_t len, int depth, ann_body_str_fn fn, void *ud);

/* Struct { repeated FieldsEntry fields = 1; } FieldsEntry { key = 1; Value value = 2; } */
static int struct_strings(const uint8_t *buf, size_t len, int depth, ann_body_str_fn fn, void *ud)
{
    size_t pos = 0;
    ann_pb_field f, g;
    if (depth > MAX_DEPTH)
        return 0;
    while (pos < len && ann_pb_next(buf, len, &pos, &f)) {
        if (f.num != 1 || f.wt != 2)
            continue;
        size_t ep = 0;
        while (ep < f.n && ann_pb_next(f.p, f.n, &ep, &g)) {
            if (g.num == 2 && g.wt == 2) {
                int r = value_strings(g.p, g.n, depth + 1, fn, ud);
                if (r)
                    return r;
            }
        }
    }
    return 0;
}

/* Value { string_value = 3; Struct struct_value = 5; ListValue list_value = 6; ... }
 * ListValue { repeated Value values = 1; } */
static int value_strings(const uint8_t *buf, size_t len, int depth, ann_body_str_fn fn, void *ud)
{
    size_t pos = 0;
    ann_pb_field f, g;
    if (depth > MAX_DEPTH)
        return 0;
    while (pos < len && ann_pb_next(buf, len, &pos, &f)) {
        if (f.wt != 2)
            continue;
        int r = 0;
        if (f.num == 3) {
            r = fn(ANN_BODY_JSON_STRING, f.p, f.n, ud);
        } else if (f.num == 5) {
            r = struct_strings(f.p, f.n, depth + 1, fn, ud);
        } else if (f.num == 6) {
            size_t lp = 0;
            while (!r && lp < f.n && ann_pb_next(f.p, f.n, &lp, &g))
                if (g.num == 1 && g.wt == 2)
                    r = value_strings(g.p, g.n, depth + 1, fn, ud);
        }
        if (r)
            return r;
    }
    return 0;
}

/* One Label { bytes key = 1; bytes value = 2; }. */
static void label_kv(const uint8_t *p, size_t n, const uint8_t **k, size_t *kn, const uint8_t **v,
                     size_t *vn)
{
    size_t pos = 0;
    ann_pb_field g;
    *k = *v = (const uint8_t *)"";
    *kn = *vn = 0;
    while (pos < n && ann_pb_next(p, n, &pos, &g)) {
        if (g.wt != 2)
            continue;
        if (g.num == 1)
            *k = g.p, *kn = g.n;
        else if (g.num == 2)
            *v = g.p, *vn = g.n;
    }
}

int ann_labels_each(const uint8_t *buf, size_t len, uint32_t field, ann_label_fn fn, void *ud)
{
    size_t pos = 0;
    ann_pb_field f;
    while (pos < len && ann_pb_next(buf, len, &pos, &f)) {
        if (f.num != field || f.wt != 2)
            continue;
        const uint8_t *k, *v;
        size_t kn, vn;
        label_kv(f.p, f.n, &k, &kn, &v, &vn);
        int r = fn(k, kn, v, vn, ud);
        if (r)
            return r;
    }
    return 0;
}

int ann_body_strings(const uint8_t *body, size_t len, ann_body_str_fn fn, void *ud)
{
    size_t pos = 0;
    ann_pb_field f;
    while (pos < len && ann_pb_next(body, len, &pos, &f)) {
        if (f.wt != 2)
            continue;
        int r = 0;
        if (f.num == 23) {
            const uint8_t *k, *v;
            size_t kn, vn;
            label_kv(f.p, f.n, &k, &kn, &v, &vn);
            r = fn(ANN_BODY_LABEL_VALUE, v, vn, ud);
        } else if (f.num == 30) {
            r = fn(ANN_BODY_TEXT, f.p, f.n, ud);
        } else if (f.num == 31) {
            r = struct_strings(f.p, f.n, 0, fn, ud);
        }
        if (r)
            return r;
    }
    return 0;
}

typedef struct filter_ctx {
    const ann_label_pair *want;
    bool found;
} filter_ctx;

static int find_pair(const uint8_t *k, size_t kn, const uint8_t *v, size_t vn, void *ud)
{
    filter_ctx *c = ud;
    if (kn == c->want->key_len && vn == c->want->value_len && memcmp(k, c->want->key, kn) == 0 &&
        memcmp(v, c->want->value, vn) == 0) {
        c->found = true;
        return 1;
    }
    return 0;
}

bool ann_labels_match(const uint8_t *buf, size_t len, uint32_t field, const ann_label_pair *filter,
                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        filter_ctx c = {&filter[i], false};
        ann_labels_each(buf, len, field, find_pair, &c);
        if (!c.found)
            return false;
    }
    return true;
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

void ann_matcher_init(ann_matcher *m, const uint8_t *q, size_t n, bool icase)
{
    if (n > ANN_QUERY_MAX)
        n = ANN_QUERY_MAX;
    m->n = n;
    m->icase = icase;
    for (size_t i = 0; i < n; i++)
        m->q[i] = icase ? lower(q[i]) : q[i];
}

bool ann_matcher_find(const ann_matcher *m, const uint8_t *p, size_t n)
{
    if (m->n == 0)
        return true;
    if (n < m->n)
        return false;
    if (!m->icase)
        return memmem(p, n, m->q, m->n) != NULL;
    uint8_t first = m->q[0],
            first_up = first >= 'a' && first <= 'z' ? (uint8_t)(first - 32) : first;
    for (size_t i = 0; i + m->n <= n; i++) {
        if (p[i] != first && p[i] != first_up)
            continue;
        size_t j = 1;
        while (j < m->n && lower(p[i + j]) == m->q[j])
            j++;
        if (j == m->n)
            return true;
    }
    return false;
}

static int match_str(ann_body_kind kind, const uint8_t *p, size_t n, void *ud)
{
    (void)kind;
    return ann_matcher_find(ud, p, n) ? 1 : 0;
}

bool ann_body_matches(const ann_matcher *m, const uint8_t *body, size_t len)
{
    return ann_body_strings(body, len, match_str, (void *)m) != 0;
}

/* ---- the search projection's doc and pattern ---- */

/* The length of the well-formed UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t k = c < 0x80                 ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (k == 0 || k > n)
        return 0;
    return ann_utf8_valid((const char *)p, k) ? k : 0;
}

static const uint8_t REPLACEMENT[3] = {0xef, 0xbf, 0xbd}; /* U+FFFD */

/* Maps p[0..n) character by character; with `like`, escapes % _ \ for LIKE. */
static void map_text(ann_buf *out, const uint8_t *p, size_t n, bool like)
{
    size_t i = 0;
    while (i < n) {
        size_t k = p[i] == 0 ? 0 : utf8_seq(p + i, n - i);
        if (k == 0) {
            ann_buf_add(out, REPLACEMENT, sizeof REPLACEMENT);
            i++;
            continue;
        }
        if (like && k == 1 && (p[i] == '%' || p[i] == '_' || p[i] == '\\'))
            ann_buf_add_byte(out, '\\');
        ann_buf_add(out, p + i, k);
        i += k;
    }
}

typedef struct doc_ctx {
    ann_buf *out;
    bool first;
} doc_ctx;

static int doc_str(ann_body_kind kind, const uint8_t *p, size_t n, void *ud)
{
    (void)kind;
    doc_ctx *x = ud;
    if (!x->first)
        ann_buf_add_byte(x->out, '\n');
    x->first = false;
    map_text(x->out, p, n, false);
    return 0;
}

void ann_body_search_doc(const uint8_t *body, size_t len, ann_buf *out)
{
    doc_ctx x = {out, true};
    ann_body_strings(body, len, doc_str, &x);
}

void ann_search_like_pattern(const uint8_t *q, size_t n, ann_buf *out)
{
    out->len = 0;
    ann_buf_add_byte(out, '%');
    map_text(out, q, n, true);
    ann_buf_add(out, "%", 2);
}
