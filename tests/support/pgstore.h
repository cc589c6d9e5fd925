/*
 * A test-only backend of the storage port over the PostgreSQL read model: writes go to
 * the memory reference store (ids, dedup, validation: what the sequencer will decide) and
 * each accepted write becomes a Committed record applied at once with
 * ann_projector_apply; every read (list, read_after, logs_list, search, log_get) comes from
 * ann_readmodel. So the contract suite runs the read model's reads as the distributed
 * backend will. Not durable, never linked into a binary.
 */
#ifndef ANN_TESTS_PGSTORE_H
#define ANN_TESTS_PGSTORE_H

#include "store/store.h"

/* Uses schema `ns` (created); close drops it. */
ann_store *ann_pgstore_new(const char *conninfo, const char *ns, ann_err *err);

#endif
