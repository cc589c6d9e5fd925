/* Writes fuzz/note's seed corpus: make_note_seeds DIR (run by hand). */
#include <stdio.h>
#include <string.h>

#include "domain/merkle.h"
#include "domain/note.h"

static void put(const char *dir, const char *name, uint8_t sel, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return;
    }
    fputc(sel, f);
    fwrite(p, 1, n, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_note_seeds DIR\n");
        return 2;
    }
    uint8_t seed[32] = {42}, root[32];
    memset(root, 0xab, sizeof root);
    ann_note_signer s;
    ann_note_verifier v;
    ann_note_signer_init(&s, ANN_NOTE_NAME_DEFAULT, seed, NULL);
    ann_note_verifier_of(&s, &v);
    ann_buf b = ANN_BUF_INIT;
    ann_checkpoint_sign(&s, "7d0f3c2e-4a51-4b8e-9c6d-1e2f3a4b5c6d", 1234567, root, &b, NULL);
    put(argv[1], "checkpoint", 0, b.data, b.len);
    b.len = 0;
    ann_note_verifier_format(&v, &b);
    put(argv[1], "verifier_key", 1, b.data, b.len);
    b.len = 0;
    ann_note_signer_format(&s, &b);
    put(argv[1], "signing_key", 2, b.data, b.len);
    b.len = 0;
    ann_merkle_frontier f;
    ann_merkle_frontier_init(&f);
    for (int i = 0; i < 13; i++)
        ann_merkle_frontier_append(&f, root, NULL);
    ann_merkle_frontier_encode(&f, &b);
    put(argv[1], "frontier", 3, b.data, b.len);
    b.len = 0;
    ann_buf l = ANN_BUF_INIT;
    ann_buf_add_len_field(&l, 1, "job", 3);
    ann_buf_add_len_field(&l, 2, "x", 1);
    ann_buf_add_len_field(&b, 23, l.data, l.len);
    ann_buf_add_len_field(&b, 30, "hello", 5);
    put(argv[1], "body", 4, b.data, b.len);
    ann_buf_release(&l);
    ann_buf_release(&b);
    ann_note_signer_release(&s);
    return 0;
}
