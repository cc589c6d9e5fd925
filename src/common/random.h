/* Randomness from the kernel's CSPRNG. It does not fail once the system has booted; if it
 * ever does, the process aborts (as on out-of-memory: see buf.h). */
#ifndef ANN_COMMON_RANDOM_H
#define ANN_COMMON_RANDOM_H

#include <stddef.h>

void ann_random_bytes(void *p, size_t n);

#endif
