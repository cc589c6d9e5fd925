/* Writes every hand-built sample frame (tests/cql/frames.c) into a directory:
 *   cql_make_seeds fuzz/cql/corpus */
#include <stdio.h>

#include "frames.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    ann_cql_buf b = {0};
    for (const test_frame *t = ann_test_frames; t->name; t++) {
        t->build(&b);
        char path[4096];
        snprintf(path, sizeof path, "%s/hand_%s", argv[1], t->name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(b.p, 1, b.len, f) != b.len || fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    ann_cql_buf_release(&b);
    return 0;
}
