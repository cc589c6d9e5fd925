/*
 * Fakes of the storage port's version 2, for tests: they wrap another store (the memory
 * double) and change only how the commands complete.
 *  - v1: a version-1 table with the synchronous commands only, whose log_get leaves
 *    visible_count 0 (a version-1 backend knows nothing of it);
 *  - async: a version-2 table whose commands are asynchronous only, each completed by a
 *    thread of its own after `delay_ms` (threads are joined at close); a DURABLE append
 *    is stored but answered without ids; log_get reports visible_count = entry_count -
 *    hidden.
 */
#ifndef ANN_TESTS_ASYNCSTORE_H
#define ANN_TESTS_ASYNCSTORE_H

#include <stdbool.h>

#include "store/store.h"

/* Takes ownership of `inner` (closed with the fake). */
ann_store *ann_asyncstore_new(ann_store *inner, bool v1, unsigned delay_ms);
/* How many async commands were started. */
int ann_asyncstore_calls(ann_store *s);
void ann_asyncstore_set_hidden(ann_store *s, uint64_t hidden);
/* While held, started commands do not complete. */
void ann_asyncstore_hold(ann_store *s, bool held);

#endif
