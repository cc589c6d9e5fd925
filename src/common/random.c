#include "common/random.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>

void ann_random_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = getrandom(b, n, 0);
        if (r <= 0)
            abort();
        b += r;
        n -= (size_t)r;
    }
}
