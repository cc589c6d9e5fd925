/*
 * A memory-only backend of the storage port, for unit tests and fuzzing of the layers
 * above the port. Not durable, not fast, never linked into a binary.
 */
#ifndef ANN_TESTS_MEMSTORE_H
#define ANN_TESTS_MEMSTORE_H

#include "store/store.h"

ann_store *ann_memstore_new(void);

#endif
