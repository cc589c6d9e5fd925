/*
 * Writes the seed corpus of fuzz_block: a few valid blocks (one entry; labels, JSON,
 * redacted, NUL bytes, extreme times; 40 log lines; a dead block) and inputs for the
 * encode mode ('E'). Usage: make_block_seeds DIR
 */
#include <stdio.h>
#include <string.h>

#include "store/embedded/block.h"

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

static int block(const char *dir, const char *name, const ann_entry *e, size_t n, bool dead)
{
    ann_buf out = ANN_BUF_INIT;
    ann_blk_header h;
    ann_err err;
    if (ann_blk_encode(e, n, 1, 0, 0, 3, &out, &err) != 0 ||
        ann_blk_header_decode(out.data, out.len, &h, &err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return -1;
    }
    if (dead)
        ann_blk_zero(out.data, &h);
    int rc = put(dir, name, out.data, out.len);
    ann_buf_release(&out);
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
