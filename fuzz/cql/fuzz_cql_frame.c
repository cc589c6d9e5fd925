/*
 * libFuzzer entry for the CQL v4 response decoder. The input is read twice:
 * as one whole frame (ann_cql_frame_decode), and as a byte stream cut into
 * frames the way the connection's reader thread does it. Every decoded
 * result is then walked with every accessor, so a bad pointer left in a
 * result would be found too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cql/cql_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void walk(const ann_cql_result *r)
{
    ann_err err;
    bool b;
    int64_t i64;
    int32_t i32;
    uint8_t u[16];
    const char *s;
    const uint8_t *p;
    size_t n;
    for (uint16_t i = 0; i < r->nopts; i++) {
        sink += (size_t)r->opt_keys[i].len;
        for (uint16_t j = 0; j < r->opt_count[i]; j++)
            sink += (size_t)r->opt_vals[r->opt_first[i] + j].len;
    }
    for (uint16_t i = 0; i < r->nwarnings; i++)
        sink += (size_t)r->warnings[i].len;
    for (int32_t i = 0; r->bind && i < r->nbind; i++)
        sink += r->bind[i].name.len;
    for (int32_t i = 0; r->pk_index && i < r->npk; i++)
        sink += r->pk_index[i];
    for (int32_t row = 0; row < r->nrows; row++)
        for (int32_t col = 0; col < r->ncols; col++) {
            const ann_cql_bytes *c = ann_cql_cell(r, row, col);
            if (!c)
                abort(); /* every (row, col) in range must exist */
            if (c->len > 0)
                sink += c->p[0] + c->p[c->len - 1];
            (void)ann_cql_get_text(r, row, col, &s, &n, &err);
            (void)ann_cql_get_blob(r, row, col, &p, &n, &err);
            (void)ann_cql_get_bigint(r, row, col, &i64, &err);
            (void)ann_cql_get_int(r, row, col, &i32, &err);
            (void)ann_cql_get_bool(r, row, col, &b, &err);
            (void)ann_cql_get_uuid(r, row, col, u, &err);
            ann_cql_map_iter it;
            ann_cql_bytes k, v;
            if (ann_cql_map_iter_init(&it, c) == 0)
                while (ann_cql_map_next(&it, &k, &v) > 0)
                    sink += (size_t)k.len + (size_t)v.len;
        }
    (void)ann_cql_applied(r, &b, &err);
    if (r->cols)
        (void)ann_cql_column_index(r, "[applied]");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ann_cql_result r;
    ann_err err;
    if (ann_cql_frame_decode(data, size, &r, &err) == 0)
        walk(&r);
    ann_cql_result_release(&r);

    /* As a stream of frames. */
    size_t off = 0;
    while (size - off >= ANN_CQL_HEADER_LEN) {
        ann_cql_header h;
        if (ann_cql_header_decode(data + off, 1u << 20, &h, &err) < 0)
            break;
        off += ANN_CQL_HEADER_LEN;
        if (h.length > size - off)
            break;
        /* A private copy, so ASan sees reads past the body exactly. */
        uint8_t *body = malloc(h.length ? h.length : 1);
        if (!body)
            break;
        memcpy(body, data + off, h.length);
        if (ann_cql_response_decode(&h, body, h.length, &r, &err) == 0) {
            r.buf = body; /* the result owns it now */
            walk(&r);
            ann_cql_result_release(&r);
        } else {
            free(body);
        }
        off += h.length;
    }
    return 0;
}
