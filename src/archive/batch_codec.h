/*
 * The packed entries of one log_batches row (docs/distributed.md, "Cassandra"): a run of
 * consecutive entry ids first_id, first_id + 1, ... stored as one blob. Pure, no I/O, so
 * that it can be tested and fuzzed without an engine.
 *
 * Layout (version 1, integers little-endian):
 *   u8 version (1)
 *   per entry, in id order:
 *     i64 time_ns, i64 insert_time_ns, i32 severity, u32 flags,
 *     u32 insert_id length, insert_id bytes, u32 body length, body bytes
 * The entry count is the row's `n` column, and the decoder checks the blob holds exactly
 * that many entries. A redacted entry has ANN_ENTRY_REDACTED in flags and an empty body.
 */
#ifndef ANN_ARCHIVE_BATCH_CODEC_H
#define ANN_ARCHIVE_BATCH_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define ANN_BATCH_VERSION 1
#define ANN_BATCH_ENTRY_FIXED 32 /* bytes per entry besides insert_id and body */

/* Bytes that ann_batch_encode needs for e[0..n). */
size_t ann_batch_size(const ann_entry *e, size_t n);

/* Packs e[0..n) into out (at least ann_batch_size bytes); returns the bytes written. Entry
 * ids are not stored (they follow from the row's first_id). */
size_t ann_batch_encode(const ann_entry *e, size_t n, uint8_t *out);

/* A cursor over a packed blob. Decoded entries point into the blob (no copies). */
typedef struct ann_batch_reader {
    const uint8_t *p, *end;
    uint64_t next_id;
    size_t left;
} ann_batch_reader;

/* Starts reading a blob of n entries whose first id is first_id; -1 if the version is not
 * known. */
int ann_batch_reader_init(ann_batch_reader *r, const uint8_t *blob, size_t len, uint64_t first_id,
                          size_t n);

/* The next entry: 1 with *e filled, 0 at the end (the blob held exactly n entries),
 * -1 for a malformed blob. */
int ann_batch_next(ann_batch_reader *r, ann_entry *e);

#endif
