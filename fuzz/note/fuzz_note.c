/*
 * Fuzz target: what the integrity code reads from others (domain/note.h, domain/merkle.h):
 * signed notes and checkpoints (a client's `annals verify` reads them from a server it does
 * not trust), verifier and signing keys (from the command line and key files), a stored
 * tree frontier and a stored entry body.
 *
 * The first byte picks the reader; the rest is its input. A checkpoint is opened with the
 * key of a fixed seed (make the corpus with make_note_seeds); whatever opens must have a
 * 3-line body that signs back to the same note.
 *
 * Built as a libFuzzer target with clang (-DANN_FUZZ=ON); with any compiler, the replay
 * driver (fuzz/replay.c) runs the kept corpus as a unit test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/merkle.h"
#include "domain/note.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    ann_err err;
    switch (data[0] % 5) {
    case 0: {
        uint8_t seed[32] = {42};
        ann_note_signer s;
        ann_note_verifier v;
        ann_checkpoint c;
        if (ann_note_signer_init(&s, ANN_NOTE_NAME_DEFAULT, seed, &err) != 0)
            abort();
        ann_note_verifier_of(&s, &v);
        if (ann_checkpoint_open(&v, p, n, NULL, &c, &err) == 0) {
            size_t tl;
            if (ann_note_open(&v, p, n, &tl, &err) != 0 || tl > n || p[tl - 1] != '\n')
                abort();
        }
        ann_note_signer_release(&s);
        break;
    }
    case 1: {
        ann_note_verifier v;
        if (ann_note_verifier_parse(&v, p, n, &err) == 0) {
            ann_buf b = ANN_BUF_INIT;
            ann_note_verifier_format(&v, &b);
            ann_note_verifier w;
            if (ann_note_verifier_parse(&w, (const char *)b.data, b.len, &err) != 0 ||
                memcmp(&v, &w, sizeof v) != 0)
                abort();
            ann_buf_release(&b);
        }
        break;
    }
    case 2: {
        ann_note_signer s;
        if (ann_note_signer_parse(&s, p, n, &err) == 0)
            ann_note_signer_release(&s);
        break;
    }
    case 3: {
        ann_merkle_frontier f;
        if (ann_merkle_frontier_decode(data + 1, n, &f, &err) == 0) {
            ann_buf b = ANN_BUF_INIT;
            ann_merkle_frontier_encode(&f, &b);
            if (b.len != n || memcmp(b.data, data + 1, n) != 0)
                abort();
            ann_buf_release(&b);
        }
        break;
    }
    default: {
        uint8_t salt[32] = {0}, h[32];
        ann_buf b = ANN_BUF_INIT;
        int r1 = ann_entry_body_bytes(data + 1, n, &b, &err);
        int r2 = ann_entry_body_hash(salt, data + 1, n, h, &err);
        if (r1 != r2 || (r1 != 0 && b.len != 0))
            abort();
        ann_buf_release(&b);
        break;
    }
    }
    return 0;
}
