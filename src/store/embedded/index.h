/*
 * ann_idx: the in-memory index of one log, rebuilt from its data file when the
 * log is opened and extended by the committer.
 *
 * Layout (memory per entry, see docs/storage.md):
 *  - time[id] and off[id] in chunks of 65,536 (8 + 4 bytes per entry: an
 *    offset is a 32-bit delta from its chunk's first; chunks never move, so
 *    growth copies nothing);
 *  - the insert_id dedup table: tag[id] (the insert_id's 32-bit hash, in
 *    chunks like time[]) and an open-addressing table of 4-byte ids, load
 *    0.375–0.75; a tag hit is only a candidate, the caller confirms it
 *    against the stored insert_id (≈ 4 + 5.3–10.7 bytes per entry);
 *  - the (time, id) order as a few sorted runs: a run is either a range of
 *    consecutive ids whose times do not decrease (0 bytes per entry: the
 *    common, in-order case), a list of such segments (8 bytes per segment:
 *    whole batches out of order), or an array of 32-bit ids, whichever of
 *    the last two is smaller when runs are merged. Runs are merged like a
 *    binary counter (a run is merged into the one below when it reaches half
 *    its size), so there are O(log n) runs and out-of-order times cost
 *    O(log n) amortised per entry.
 *
 * Ids are 1..n. Not thread-safe: the owner (embedded.c) locks.
 */
#ifndef ANN_STORE_EMBEDDED_INDEX_H
#define ANN_STORE_EMBEDDED_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ANN_IDX_MAX_ENTRIES 0xFFFFFFFFull /* ids are 32-bit inside runs */

typedef struct ann_idx_run {
    uint64_t lo, hi; /* a range run: ids lo..hi (ids and segs NULL) */
    uint32_t *ids;   /* an array run, sorted by (time, id) */
    uint32_t *segs;  /* a segment run: nseg pairs (first id, entries up to and
                        including this segment); each segment is consecutive
                        ids, so batches written out of order cost 8 bytes per
                        batch, not 4 per entry */
    size_t nseg;
    size_t n; /* entries in the run */
} ann_idx_run;

/* File offsets of one chunk of ids: 32-bit deltas from the chunk's first
 * offset, or (when a chunk spans more than 4 GiB) full 64-bit offsets. */
typedef struct ann_idx_offs {
    uint64_t base;
    uint32_t *d32;
    uint64_t *o64;
} ann_idx_offs;

typedef struct ann_idx {
    uint64_t n; /* entries indexed: ids 1..n */
    int64_t **time_chunks;
    ann_idx_offs *off_chunks;
    size_t nchunks, chunks_cap;
    uint32_t **tag_chunks; /* tag[id]: the insert_id's 32-bit hash */
    uint32_t *slots;       /* dedup table of ids, 0 = empty */
    uint64_t mask;         /* slots has mask+1 entries */
    uint64_t used;
    ann_idx_run *runs;
    size_t nruns, runs_cap;
    size_t bytes; /* heap bytes held, for the cache budget */
} ann_idx;

typedef struct ann_idx_key {
    int64_t time;
    uint64_t id;
} ann_idx_key;

void ann_idx_init(ann_idx *x);
void ann_idx_release(ann_idx *x);

static inline int64_t ann_idx_time(const ann_idx *x, uint64_t id)
{
    return x->time_chunks[(id - 1) >> 16][(id - 1) & 0xffff];
}
static inline uint64_t ann_idx_off(const ann_idx *x, uint64_t id)
{
    const ann_idx_offs *c = &x->off_chunks[(id - 1) >> 16];
    size_t i = (size_t)((id - 1) & 0xffff);
    return c->o64 ? c->o64[i] : c->base + c->d32[i];
}

/* Adds entry n+1 with its time, file offset and insert_id hash tag.
 * Returns 0, or -1 when the index is full (ANN_IDX_MAX_ENTRIES; unchanged).
 * Allocation failure aborts (common/buf.h). */
int ann_idx_add(ann_idx *x, int64_t time, uint64_t off, uint32_t tag);

/* Calls `confirm(id, ud)` for each id whose tag matches, until it returns
 * true; returns that id, or 0 if none. */
uint64_t ann_idx_find(const ann_idx *x, uint32_t tag, bool (*confirm)(uint64_t id, void *ud),
                      void *ud);

/*
 * Up to `cap` ids in (time, id) order, strictly after `*after`, with
 * time < end and id <= max_id. `*after` is advanced past every entry looked
 * at (also those skipped for id > max_id), so calling again continues.
 * Returns the number written to out; 0 means the listing is exhausted.
 */
size_t ann_idx_list(const ann_idx *x, ann_idx_key *after, int64_t end, uint64_t max_id,
                    uint64_t *out, size_t cap);

/*
 * Index snapshots: the whole index written to a file when a big log is
 * closed, so that reopening it reads the snapshot and scans only the frames
 * written after it (`data_end`). The file is a cache: CRC-32C checked, and
 * any mismatch just means a full scan. The dedup tags in it depend on the
 * hash key, so the store keeps one key for its life (meta.db).
 */
int ann_idx_save(const ann_idx *x, const char *path, uint64_t data_end);
/* 1 and the index filled (x must be empty) with *data_end set; 0 if there is
 * no usable snapshot (x left empty). Lengths read from the file are checked
 * against its size before anything is allocated, so a damaged snapshot cannot
 * ask for more memory than the file holds. */
int ann_idx_load(ann_idx *x, const char *path, uint64_t *data_end);

#endif
