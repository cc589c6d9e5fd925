/*
 * Writes the seed corpus of fuzz_block: a few valid blocks (one entry; labels, JSON,
 * redacted, NUL bytes, extreme times; 40 log lines; a dead block), the same blocks with
 * their sections stored uncompressed in their zstd frames (raw blocks: the fuzzer then
 * mutates varints and lengths directly), and inputs for the encode mode ('E').
 * Usage: make_block_seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "blk_reseal.h"
#include "store/embedded/block.h"
#include "store/embedded/hash.h"

static int put(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* p[0..n) as one zstd frame of raw (stored) blocks (RFC 8878: single segment, no checksum). */
static void stored_frame(ann_buf *out, const uint8_t *p, size_t n)
{
    static const uint8_t magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    ann_buf_add(out, magic, 4);
    uint8_t fcs[4];
    if (n < 256) {
        ann_buf_add_byte(out, 0x20);
        ann_buf_add_byte(out, (uint8_t)n);
    } else if (n < 65792) {
        ann_buf_add_byte(out, 0x60);
        ann_le16_put(fcs, (uint16_t)(n - 256));
        ann_buf_add(out, fcs, 2);
    } else {
        ann_buf_add_byte(out, 0xA0);
        ann_le32_put(fcs, (uint32_t)n);
        ann_buf_add(out, fcs, 4);
    }
    do {
        size_t k = n < (128u << 10) ? n : (128u << 10);
        uint32_t bh = (uint32_t)(k << 3) | (k == n); /* type 0: raw; bit 0: last block */
        uint8_t b3[3] = {(uint8_t)bh, (uint8_t)(bh >> 8), (uint8_t)(bh >> 16)};
        ann_buf_add(out, b3, 3);
        ann_buf_add(out, p, k);
        p += k;
        n -= k;
    } while (n);
}

/* The block at b (header h) with its three sections re-stored as raw zstd blocks. */
static int restore_stored(const ann_buf *b, const ann_blk_header *h, ann_buf *out)
{
    uint32_t zlen[3] = {h->meta_zlen, h->iid_zlen, h->body_zlen},
             raw[3] = {h->meta_raw, h->iid_raw, h->body_raw};
    const uint8_t *src = b->data + ANN_BLK_HDR_LEN;
    out->len = 0;
    ann_buf_add(out, b->data, ANN_BLK_HDR_LEN);
    for (int i = 0; i < 3; i++) {
        uint8_t *plain = malloc(raw[i]);
        size_t got = ZSTD_decompress(plain, raw[i], src, zlen[i]);
        if (got != raw[i]) {
            free(plain);
            return -1;
        }
        size_t at = out->len;
        stored_frame(out, plain, raw[i]);
        ann_le32_put(out->data + 72 + 8 * i, (uint32_t)(out->len - at));
        free(plain);
        src += zlen[i];
    }
    ann_buf_add(out, src, h->salt_len + h->filter_len);
    ann_le32_put(out->data + 100, (uint32_t)out->len);
    blk_reseal(out->data, out->len);
    ann_blk_header x;
    ann_blk_view v;
    ann_err err;
    if (ann_blk_header_decode(out->data, out->len, &x, &err) != 0 ||
        ann_blk_check(out->data, out->len, &x, &err) != 0 ||
        ann_blk_view_open(out->data, out->len, &x, &v, &err) != 0) {
        fprintf(stderr, "stored copy: %s\n", err.msg);
        return -1;
    }
    ann_blk_view_release(&v);
    return 0;
}

/* Writes the block of e[0..n) as `name`, and as `name`-stored unless dead. */
static int block(const char *dir, const char *name, const ann_entry *e, size_t n, bool dead)
{
    ann_buf out = ANN_BUF_INIT, st = ANN_BUF_INIT;
    ann_blk_header h;
    ann_err err;
    if (ann_blk_encode(e, n, 1, 0, 0, 3, &out, &err) != 0 ||
        ann_blk_header_decode(out.data, out.len, &h, &err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return -1;
    }
    int rc = 0;
    if (dead) {
        ann_blk_zero(out.data, &h);
    } else {
        char sname[256];
        snprintf(sname, sizeof sname, "%s-stored", name);
        rc = restore_stored(&out, &h, &st);
        if (rc == 0)
            rc = put(dir, sname, st.data, st.len);
    }
    if (rc == 0)
        rc = put(dir, name, out.data, out.len);
    ann_buf_release(&out);
    ann_buf_release(&st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_block_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    ann_buf b[6] = {ANN_BUF_INIT, ANN_BUF_INIT, ANN_BUF_INIT,
                    ANN_BUF_INIT, ANN_BUF_INIT, ANN_BUF_INIT};
    ann_buf tmp = ANN_BUF_INIT, st = ANN_BUF_INIT;
    ann_buf_add_len_field(&b[0], 30, "hello world", 11);
    /* Label { key: "stream", value: "stderr" } and a text with NUL bytes */
    ann_buf_add_len_field(&tmp, 1, "stream", 6);
    ann_buf_add_len_field(&tmp, 2, "stderr", 6);
    ann_buf_add_len_field(&b[1], 23, tmp.data, tmp.len);
    ann_buf_add_len_field(&b[1], 30, "a\0b\0c FAILED", 12);
    /* {"msg": "deploy \xF0\x9F\x9A\x80"}: Struct { FieldsEntry { key, Value { string } } } */
    tmp.len = 0;
    ann_buf_add_len_field(&tmp, 3, "deploy \xF0\x9F\x9A\x80", 11);
    ann_buf_add_len_field(&st, 1, "msg", 3);
    ann_buf_add_len_field(&st, 2, tmp.data, tmp.len);
    tmp.len = 0;
    ann_buf_add_len_field(&tmp, 1, st.data, st.len);
    ann_buf_add_len_field(&b[2], 31, tmp.data, tmp.len);
    ann_buf_add_len_field(&b[3], 30, "revoked secret", 14);
    ann_entry e[6] = {
        {.time_ns = 1, .insert_time_ns = 2, .insert_id = "job-1:1", .insert_id_len = 7},
        {.time_ns = INT64_MIN,
         .insert_time_ns = INT64_MAX,
         .severity = 900,
         .insert_id = "a\0b",
         .insert_id_len = 3},
        {.time_ns = INT64_MAX,
         .insert_time_ns = 0,
         .severity = -1,
         .insert_id = "\xF0\x9F\x9A\x80",
         .insert_id_len = 4},
        {.time_ns = 0, .flags = ANN_ENTRY_REDACTED, .insert_id = "r", .insert_id_len = 1},
        {.time_ns = -5, .insert_id = "empty", .insert_id_len = 5},
        {.time_ns = 7, .severity = 300, .insert_id = "job-1:6", .insert_id_len = 7},
    };
    for (int i = 0; i < 6; i++)
        e[i].body = b[i].data, e[i].body_len = b[i].len;
    int rc = block(dir, "one", e, 1, false) | block(dir, "mixed", e, 6, false) |
             block(dir, "dead", e, 6, true);

    /* 40 log lines */
    ann_entry lines[40];
    ann_buf lb[40];
    char iids[40][16];
    for (int i = 0; i < 40; i++) {
        char text[128];
        int n = snprintf(text, sizeof text,
                         "[%d/40] Building C object src/store/CMakeFiles/x.dir/f%d.c.o %s", i + 1,
                         i, i % 7 ? "" : "warning: unused variable 'tmp' [-Wunused-variable]");
        lb[i] = (ann_buf)ANN_BUF_INIT;
        ann_buf_add_len_field(&lb[i], 30, text, (size_t)n);
        snprintf(iids[i], sizeof iids[i], "job-42:%d", i + 1);
        lines[i] = (ann_entry){.time_ns = 1795000000000000000 + i * 1000003,
                               .insert_time_ns = 1795000000000000000 + (i / 10) * 1000000000,
                               .insert_id = iids[i],
                               .insert_id_len = strlen(iids[i]),
                               .body = lb[i].data,
                               .body_len = lb[i].len};
    }
    rc |= block(dir, "lines", lines, 40, false);
    for (int i = 0; i < 40; i++)
        ann_buf_release(&lb[i]);

    static const char enc1[] = "E\x05hello\x0bHello World\x03\x00\x01\x02\x10"
                               "FAILED tests/api/test_x.py";
    static const char enc2[] = "E\x07\xff\xfe\xfd\xf0\x9f\x9a\x80\x3f"
                               "abcABCabcABC0123456789-_.:/\\ \t\r\n\x01\x02\x03\x04";
    rc |= put(dir, "encode-1", enc1, sizeof enc1 - 1) | put(dir, "encode-2", enc2, sizeof enc2 - 1);
    for (int i = 0; i < 6; i++)
        ann_buf_release(&b[i]);
    ann_buf_release(&tmp);
    ann_buf_release(&st);
    return rc ? 1 : 0;
}
