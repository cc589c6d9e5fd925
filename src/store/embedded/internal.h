/*
 * The embedded store's internals, shared by its files and by nothing else
 * (tests may include it to look inside). The port it implements is store.h;
 * its own options are embedded.h; formats and protocols are docs/storage.md.
 *
 * Files:
 *   embedded.c  the ops table, open/close, tenants, log_create, shared helpers
 *   keys.c      the cache of authenticated keys (tenant_by_key)
 *   cache.c     the open-log table and LRU; loading a log from its file (and reloading)
 *   commit.c    append: the group committer thread and the fdatasync helpers
 *   read.c      log_get, list and read_after
 *   watch.c     watchers
 *   purge.c     revoke and delete: durable intent first, then the files, then "done"
 *   lifecycle.c legal holds, log retention periods and the retention pass
 *   recover.c   start-up recovery: finishing deletions and revocations a crash cut short
 *   integrity.c each log's Merkle tree, checkpoints, proofs, SealLog, the signing key and
 *               the checkpointer thread (docs/integrity.md)
 *   (fault points: src/common/fault.h, live only in test builds)
 *   meta.c, logfile.c, index.c, hash.c: SQLite metadata, data file format, in-memory
 *   index, checksums and SipHash (each has its own header)
 *
 * Locks, in the order they may nest (a lock is only taken while holding locks
 * to its left; none is held across a watcher callback or a visitor):
 *
 *   s->create_mu > h->purge_mu > s->mu > h->lk > meta's mutex
 *   h->tree.mu > s->mu (tree.mu is taken with no other store lock held; the tree reads
 *   entries, which takes s->mu and h->lk, under it)
 *   s->q_mu, s->sync_mu, s->watch_mu, s->keys.mu: leaves (nothing is taken under them)
 *
 *   s->create_mu  serializes log_create (its existence check and insert).
 *   h->purge_mu   serializes the operations that rewrite or remove a log's file: its
 *                 revocations and its deletion.
 *   s->mu         the open-log table, the LRU and every elog's reference count. It
 *                 guards in-memory structures only: no file or SQLite I/O under it.
 *   h->lk         (read-write) a loaded log's index, visible count, state flags and
 *                 fd; the committer takes it for writing to sequence and to publish,
 *                 readers take it for reading to copy records.
 *   meta's mutex  one SQLite connection (meta.c), taken inside every ann_meta_* call.
 *   leaves        the append queue (q_mu), the sync helpers' work (sync_mu), watcher
 *                 lists and busy counts (watch_mu), the key cache (keys.mu).
 *
 * Every field of the structs below says what guards it: a lock, "immutable"
 * (set before the struct is shared and never changed), or "committer" (only
 * the committer thread touches it, and the sync helper working on that log
 * while the committer waits for it in sync_all()).
 */
#ifndef ANN_STORE_EMBEDDED_INTERNAL_H
#define ANN_STORE_EMBEDDED_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "store/embedded/block.h"
#include "store/embedded/embedded.h"
#include "store/embedded/hash.h"
#include "store/embedded/index.h"
#include "store/embedded/meta.h"
#include "store/store.h"
#include "domain/note.h"

#define EMB_MAX_ID_LEN ANN_UUID_LEN

/* The salt field each new record carries (docs/integrity.md). A build with
 * ANN_BENCH_NO_TREE (a CMake option for bench/integrity/ingest.sh, never for use) stores
 * none, hashes no leaves and runs no checkpointer: the same code without the tree's ingest
 * work, to measure what the tree costs. Its logs have no tree. */
#ifdef ANN_BENCH_NO_TREE
#define EMB_SALT_FIELD_LEN 0
#else
#define EMB_SALT_FIELD_LEN ANN_INTEGRITY_FIELD_LEN
#endif
#define EMB_NSYNC 15 /* fdatasync helper threads */

typedef struct elog elog;
typedef struct emb emb;

#define EMB_NQ 8     /* a block's entry times are summarised by EMB_NQ + 1 quantiles */
#define EMB_VCACHE 4 /* decoded blocks cached per log */

/* One sealed block of a log (seal.c), as loaded from or appended to its .blk file. */
typedef struct emb_block {
    uint64_t first, last; /* ids */
    uint64_t off;         /* in the .blk file */
    ann_blk_header hdr;
    int64_t q[EMB_NQ + 1]; /* entry time quantiles (search slices) */
    uint8_t *filter;       /* its search filter (hdr.filter_len bytes), malloc'd */
} emb_block;

/* One block of a search summary (summary.c). */
typedef struct emb_sumblk {
    uint64_t first, last, off;
    ann_blk_header hdr;
    uint8_t *filter;
} emb_sumblk;
typedef struct emb_summary emb_summary;

/* A decoded block kept for reads (seal.c). */
typedef struct emb_vslot {
    uint64_t first; /* 0: empty */
    uint32_t gen;
    uint64_t tick;
    ann_blk_view view;
} emb_vslot;

/* A log's revocation records, for reads (revmap.c): which record redacted each id (the
 * first one that named it). Records are allocated one by one and freed only with the
 * map, so a reader may keep a pointer after it lets go of the log's lock. */
typedef struct emb_revmap {
    struct emb_rev_id {
        uint64_t id;
        uint32_t rec;
    } * v; /* sorted by id */
    size_t n, cap;
    ann_revocation **recs; /* each malloc'd with its strings */
    size_t nrecs, recs_cap;
} emb_revmap;

/*
 * A log's Merkle tree (integrity.c; docs/integrity.md), built lazily from the log's
 * entries: the first integrity call after a load hashes every visible entry, later ones
 * only the new entries. Every level of the tree is kept (lv[k][i] is the hash of leaves
 * [i * 2^k, (i + 1) * 2^k)), so a proof is O(log n) lookups: 64 bytes per entry in memory
 * while the log is open. It is a function of the durable entries alone, so it survives any
 * crash by being rebuilt, and it never covers an entry that is not visible (visible
 * entries are durable). Guarded by its own mutex `mu`, which is taken without any other
 * store lock held and may take s->mu and h->lk (through the read path) under it.
 */
/* Levels below EMB_TREE_MEM stay in memory only for the block of 2^EMB_TREE_MEM leaves being
 * filled; complete blocks' leaves are in <log>.mrk and their lower nodes are recomputed
 * (and checked against the block's node, kept in memory) when a proof needs them. */
#define EMB_TREE_MEM 8
#define EMB_TREE_BLOCK (1u << EMB_TREE_MEM)

typedef struct emb_tree_blk {          /* one complete block's nodes, levels 0..EMB_TREE_MEM - 1 */
    uint64_t blk;                      /* which block; UINT64_MAX: empty */
    uint8_t n[2 * EMB_TREE_BLOCK][32]; /* level k's node j at [2*BLOCK - (2*BLOCK >> k) + j] */
} emb_tree_blk;

typedef struct emb_tree {
    pthread_mutex_t mu;
    /* mu: level k >= EMB_TREE_MEM: every node; k < EMB_TREE_MEM: the nodes of the block being
     * filled (node i at [i - (block << (EMB_TREE_MEM - k))]) */
    uint8_t (*lv[64])[32];
    size_t lv_n[64];     /* mu: hashes at each level so far */
    size_t lv_cap[64];   /* mu */
    uint64_t size;       /* mu: leaves hashed (entries 1..size) */
    uint64_t disk;       /* mu: leaves written to <log>.mrk (whole blocks, in order) */
    uint32_t disk_crc;   /* mu: crc32c of those leaves */
    bool disk_bad;       /* mu: a write failed: no more writes, no save */
    emb_tree_blk *bc[2]; /* mu: complete blocks read back for proofs (NULL: none yet) */
    int bc_next;         /* mu: which of bc the next read replaces */
    bool legacy;         /* mu: an entry without an integrity field: no tree */
    ann_err legacy_err;  /* mu: which one */
    ann_buf ckp;         /* mu: the latest checkpoint signed since the load (empty: none) */
    uint64_t ckp_size;   /* mu: its tree size */
} emb_tree;

/* One watch() registration. Holds a reference on its log until unwatch(). */
struct ann_watch {
    elog *h;                        /* immutable */
    ann_watch_fn fn;                /* immutable */
    void *ud;                       /* immutable */
    int busy;                       /* s->watch_mu: calls in progress */
    bool linked;                    /* s->watch_mu: on h->watchers */
    ann_watch *prev, *next;         /* s->watch_mu: h->watchers */
    ann_watch *all_prev, *all_next; /* s->watch_mu: s->watches, for close */
};

/*
 * One open log: its file, its index and its place in the open-log table.
 * Created by the first acquire (which loads it), shared by reference; freed
 * when the last reference goes and it is no longer in the table.
 */
struct elog {
    char tenant[EMB_MAX_ID_LEN + 1]; /* immutable */
    char log[EMB_MAX_ID_LEN + 1];    /* immutable */
    char *path;                      /* immutable: the data file */
    char *idx_path;                  /* immutable: the index snapshot */
    uint64_t hash;                   /* immutable: emb_log_hash(tenant, log) */

    /* Open-log table and LRU. */
    elog *hnext;               /* s->mu: table chain; then the freeing thread's victim list */
    elog *lru_prev, *lru_next; /* s->mu */
    bool in_lru;               /* s->mu */
    bool in_table;             /* s->mu: findable by acquire */
    bool loading;              /* s->mu: its first acquire is loading it (waiters: load_cv) */
    size_t lru_bytes;          /* s->mu: index bytes counted in s->lru_bytes */
    double idle_since;         /* s->mu: when it went idle (ms, monotonic) */
    int refs;                  /* s->mu */

    pthread_rwlock_t lk;      /* see the lock order above */
    pthread_mutex_t purge_mu; /* see the lock order above */

    /* The loaded log. Loaded under lk (write) by the acquire that created the
     * elog, reloaded under lk (write) by the committer only. */
    int load_rc;         /* lk: 0, or the load's failure ... */
    ann_err load_err;    /* lk: ... and why (answered to every caller) */
    bool absent;         /* lk: the loader found no live log in SQLite */
    int fd;              /* lk; replaced only by load and by the committer's reload, so the
                            committer also reads it without lk */
    bool deleted;        /* lk: set once by delete; every call then answers not found */
    bool broken;         /* lk: a write or fdatasync failed; the committer reloads it */
    unsigned revoke_gen; /* lk (write to bump): records were rewritten; readers drop caches */
    ann_idx idx;         /* lk: readers take it for reading, the committer for writing */
    uint64_t visible;    /* lk: entries published, ids 1..visible */
    uint64_t end;        /* lk (written by the committer and loads): end of the durable
                            frames; the committer reads it without lk */
    uint64_t alloc_end;  /* committer (and load): file size, zeros from end to here */
    int64_t create_ns;   /* immutable once loaded (the loader sets them before it clears */
    uint8_t *labels;     /* loading under s->mu; everyone else reads them after that) */
    size_t labels_len;   /* immutable once loaded */

    /* The current group-commit round. */
    uint64_t zero_from, zero_to; /* committer: zeros to write ahead this round */
    uint8_t *pend;               /* committer: the pending frame */
    size_t pend_len, pend_cap;   /* committer */
    uint64_t pend_first;         /* committer: id of the frame's first record */
    uint32_t pend_count;         /* committer: records in the frame */
    bool in_round;               /* committer: on this round's list */
    bool failed;                 /* committer: the write or sync failed this round */
    bool sync_failed;            /* committer: ... after the frame was written (may survive) */
    int sys_errno;               /* committer: errno of that failure */
    elog *cnext;                 /* committer: this round's list of logs */

    ann_watch *watchers; /* s->watch_mu */
    bool watch_gone;     /* s->watch_mu: deleted; watch() answers not found */

    /* Sealed blocks (seal.c): ids 1..sealed live compressed in the .blk file; the .dat
     * file's frames before dat_start are punched out. */
    char *blk_path;           /* immutable */
    int bfd;                  /* lk: the .blk file; -1 when the log has none yet */
    emb_block *blocks;        /* lk: sorted by id, covering 1..sealed */
    size_t nblocks;           /* lk */
    size_t blocks_cap;        /* lk */
    uint64_t sealed;          /* lk: ids 1..sealed are in blocks */
    uint64_t blk_end;         /* lk: where the next block goes */
    uint64_t dat_start;       /* lk: the first unsealed frame of the .dat file */
    double last_write_ms;     /* lk: when the committer last published to it (idle seal) */
    pthread_mutex_t vc_mu;    /* leaf: the decoded-block cache below */
    emb_vslot vc[EMB_VCACHE]; /* vc_mu */
    uint64_t vc_tick;         /* vc_mu */

    emb_revmap revs; /* lk (write to add): the revocation records of redacted entries */
    bool log_sealed; /* lk: SealLog took (meta.db logs.sealed); appends refuse new entries */
    /* Leaf hashes of published entries not yet in the tree (integrity.c): lb[k] is entry
     * lb_first + k's, and when lb_ok they run up to `visible`; the sync helper computes a
     * round's (pl, committer) while fdatasync waits, the committer appends them here at
     * publish, the tree takes them, so entries are not read back to be hashed. */
    uint8_t (*lb)[32];   /* lk */
    size_t lb_n, lb_cap; /* lk */
    uint64_t lb_first;   /* lk */
    bool lb_ok;          /* lk */
    uint8_t (*pl)[32];   /* committer: this round's leaves (pend_count of them) */
    size_t pl_cap;       /* committer */
    bool pl_ok;          /* committer: pl holds every leaf of the pending frame */
    uint64_t ckp_hint;   /* lk: the size of the tree's latest checkpoint (UINT64_MAX: the log
                            has no tree), so the checkpointer can skip logs without taking
                            tree.mu */
    emb_tree tree;       /* its own mutex (above) */
    bool count_clean;    /* lk: SQLite holds the exact entry count (count_dirty = 0); the
                            first append after a load marks it dirty there first */
};

/* One append() waiting for the committer. Lives on the appender's stack. */
typedef struct job {
    ann_append *req;      /* immutable once queued; the committer fills its outputs */
    uint8_t (*salts)[32]; /* immutable: req->n body salts (malloc'd by the appender) */
    elog *h;              /* immutable: the appender's reference */
    int rc;               /* committer; read by the appender once done */
    ann_err err;          /* committer; read by the appender once done */
    bool done;            /* s->q_mu */
    pthread_cond_t cv;    /* waited on with s->q_mu */
    struct job *next;     /* s->q_mu while queued, then committer */
} job;

/* The authenticated-key cache (keys.c). */
#define EMB_KEYS_WAYS 4
#define EMB_KEYS_SETS 1024
typedef struct emb_key_slot {
    uint8_t key_hash[32]; /* keys.mu */
    ann_tenant tenant;    /* keys.mu: the tenant and the key's id, name, roles, expiry */
    int64_t last_used_ns; /* keys.mu: the last use recorded in SQLite (or being recorded) */
    uint64_t used;        /* keys.mu: tick of the last use; 0 when empty */
} emb_key_slot;

typedef struct emb_keys {
    pthread_mutex_t mu;
    emb_key_slot *slots;   /* mu: EMB_KEYS_SETS x EMB_KEYS_WAYS, NULL until the first put */
    size_t count;          /* mu: slots in use */
    uint64_t tick;         /* mu */
    uint64_t hits, misses; /* mu: for tests */
    /* Revocations (keys.c): DIR/keys.gen mapped shared, a counter every revoking process
     * increments (NULL when it could not be mapped: the SQLite epoch is read each time). */
    volatile uint64_t *gen; /* immutable after open; the counter is read atomically */
    uint64_t seen_gen;      /* mu: the generation the cached entries are valid for */
    int64_t epoch;          /* mu: the SQLite keys epoch, as last read */
    int64_t epoch_read_ns;  /* mu: when (monotonic) */
    uint64_t valid;         /* mu: grows whenever the cache is emptied for a revocation */
} emb_keys;
/* The SQLite keys epoch is read at most this often (a safety net for a revoking process
 * that died between its commit and its increment of DIR/keys.gen). */
#define EMB_KEYS_EPOCH_EVERY_NS (1000LL * 1000000LL)

/* The store. */
struct emb {
    ann_store base;               /* immutable */
    char *dir;                    /* immutable */
    ann_store_embedded_opts opts; /* immutable (defaults filled at open) */
    bool durable;                 /* immutable */
    ann_meta *meta;               /* immutable; thread-safe */
    int lock_fd;                  /* immutable: DIR/LOCK, flock'd */
    uint8_t hkey[16];             /* immutable: SipHash key */
    double trace;                 /* immutable: ANN_STORE_TRACE=<ms>, report slow rounds */

    pthread_mutex_t create_mu;

    pthread_mutex_t mu;
    elog **table;           /* s->mu: open logs by hash, chained through hnext */
    size_t tcap, tcount;    /* s->mu */
    pthread_cond_t load_cv; /* with s->mu: some elog finished loading */
    elog lru;               /* s->mu: sentinel; lru.lru_next is the most recently idle */
    size_t lru_count;       /* s->mu */
    size_t lru_bytes;       /* s->mu */

    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;    /* the committer waits here for jobs */
    job *q_head, *q_tail;   /* s->q_mu */
    bool stopping;          /* s->q_mu: close() began; appends answer EUNAVAIL */
    pthread_t committer;    /* immutable after open */
    bool committer_started; /* immutable after open */
    ann_watch **notify;     /* committer: watchers to call this round */
    size_t notify_cap;      /* committer */

    pthread_mutex_t sync_mu;
    pthread_cond_t sync_go, sync_done;
    pthread_t sync_th[EMB_NSYNC]; /* immutable after open */
    int nsync_started;            /* immutable after open */
    elog **sync_items;            /* s->sync_mu: this round's logs to fdatasync */
    size_t sync_n;                /* s->sync_mu */
    size_t sync_next;             /* s->sync_mu: next item to take */
    size_t sync_finished;         /* s->sync_mu */
    unsigned sync_gen;            /* s->sync_mu: bumped per round */
    bool sync_stop;               /* s->sync_mu */

    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv; /* unwatch waits here for busy to drop */
    ann_watch *watches;      /* s->watch_mu: every live watch */

    emb_keys keys; /* its own leaf lock, keys.mu */

    pthread_mutex_t sum_mu;    /* leaf: the search summaries below (summary.c) */
    emb_summary **sum_table;   /* sum_mu */
    emb_summary *sum_lru;      /* sum_mu: most recently used first */
    emb_summary *sum_lru_tail; /* sum_mu */
    size_t sum_bytes;          /* sum_mu */

    /* Metrics (opts.metrics; all NULL without): atomics, updated by the committer. */
    ann_counter *m_entries, *m_bytes, *m_rounds;
    ann_histogram *m_fsync, *m_batch_requests, *m_batch_entries;

    ann_note_signer signer;  /* immutable after open: the deployment's checkpoint key */
    bool has_signer;         /* immutable after open (false for admin_only opens) */
    pthread_mutex_t ckpt_mu; /* leaf: the checkpointer's wake-ups (integrity.c) */
    pthread_cond_t ckpt_cv;
    bool ckpt_stop;    /* ckpt_mu */
    pthread_t ckpt_th; /* immutable after open */
    bool ckpt_started; /* immutable after open */

    pthread_mutex_t seal_mu; /* the sealer's wake-ups */
    pthread_cond_t seal_cv;
    bool seal_stop;      /* seal_mu */
    pthread_t sealer;    /* immutable after open */
    bool sealer_started; /* immutable after open */
};

/* ---- helpers (embedded.c) ------------------------------------------------ */

static inline double emb_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 1..36 characters of [A-Za-z0-9_-]: ids name files. */
bool emb_valid_id(const char *s);

/* The one message for a missing, deleted or foreign log. Returns -1. */
int emb_not_found(ann_err *err, const char *log);

/* What an operation on h answers besides success (h->lk held). */
int emb_log_state(const elog *h, ann_err *err);

/*
 * Error codes are chosen where the failure happens, by what it left behind
 * (common/err.h):
 *  - nothing became visible or durable: emb_sys_fail(), ANN_ENOSPC when the
 *    disk is full (ENOSPC, EDQUOT, EFBIG), else ANN_EUNAVAIL;
 *  - the outcome is unknown (e.g. fdatasync failed after the frame was
 *    written, or a revocation or deletion was recorded but not finished):
 *    emb_sys_unknown() or emb_outcome_unknown(), ANN_EIO.
 * Both fill err from errno and return -1; messages may name files (they are
 * for the operator's log, clients read a fixed text per code).
 */
int emb_sys_fail(ann_err *err, const char *what, const char *path);
int emb_sys_unknown(ann_err *err, const char *what, const char *path);
/* Turns an error already in err into ANN_EIO, the outcome unknown (but keeps
 * ANN_ENOTFOUND and ANN_ECORRUPT, which say more). Returns -1. */
int emb_outcome_unknown(ann_err *err);

/* pwrite() of exactly len bytes at off; -1 with errno set. */
int emb_write_full(int fd, const void *buf, size_t len, uint64_t off);

/* fsync() of a directory; -1 with errno set. */
int emb_fsync_dir(const char *path);

/* "a/b/c<suffix>" (or "a/b<suffix>" when c is NULL), malloc'd. */
char *emb_path_join(const char *a, const char *b, const char *c, const char *suffix);

/* Grows the buffer *p of capacity *cap to hold `need` bytes (doubling, from
 * 64 KiB; contents kept). */
void emb_grow(uint8_t **p, size_t *cap, size_t need);

uint64_t emb_log_hash(const emb *s, const char *tenant, const char *log);
uint32_t emb_iid_tag(const emb *s, const char *iid, size_t len);

/* ---- authenticated keys (keys.c) ----------------------------------------- */

void emb_keys_init(emb_keys *k);
void emb_keys_release(emb_keys *k);
/* Maps DIR/keys.gen (at open). */
int emb_keys_map(emb *s, ann_err *err);
/* After a revocation's commit: every process of the directory empties its cache. */
void emb_keys_bump(emb *s);
/* Before a lookup: empties the cache if a key was revoked since (by any process);
 * *valid is then passed to emb_keys_put. */
int emb_keys_validate(emb *s, uint64_t *valid, ann_err *err);
/* True and *out filled if the key hash is cached; *touch set when its last use is due to be
 * recorded (the slot then counts it recorded at now_ns). */
bool emb_keys_get(emb *s, const uint8_t key_hash[32], int64_t now_ns, ann_tenant *out, bool *touch);
/* Caches a live key SQLite knows (never an unknown or revoked one), read after
 * emb_keys_validate gave `valid`: a put from before a later emptying is dropped. */
void emb_keys_put(emb *s, const uint8_t key_hash[32], const ann_tenant *t, int64_t last_used_ns,
                  uint64_t valid);
/* For tests: entries cached, lookups answered from the cache and not. */
void emb_keys_stats(ann_store *st, size_t *entries, uint64_t *hits, uint64_t *misses);

/* ---- open logs (cache.c) ------------------------------------------------- */

/* Finds (or opens and loads) the log and takes a reference. Fails with the one
 * not-found message for a missing, deleted, foreign or malformed log; an
 * admin-only store answers ANN_EINVAL. */
int emb_log_acquire(emb *s, const char *tenant, const char *log, elog **out, ann_err *err);
void emb_log_release(emb *s, elog *h);

/* Rebuilds a broken log from its file in place (h->lk held for writing). */
int emb_log_reload(emb *s, elog *h, ann_err *err);

/* Rewrites the record at `off` as redacted (readers excluded by the caller). */
int emb_redact_at(elog *h, uint64_t off, ann_err *err);

/* Takes h out of the open-log table (delete, once the log is marked deleting
 * in SQLite): later acquires look the log up afresh. */
void emb_log_unpublish(emb *s, elog *h);

/* close(): frees every open log (no other thread is left). */
void emb_cache_free_all(emb *s);

/* ---- append (commit.c) --------------------------------------------------- */

int emb_append(ann_store *st, ann_append *req, ann_err *err);
int emb_committer_start(emb *s, ann_err *err);
/* Drains the queue and joins the committer and the sync helpers. */
void emb_committer_stop(emb *s);

/* ---- reads (read.c) ------------------------------------------------------ */

int emb_log_get(ann_store *st, const char *tenant_id, const char *log_id, ann_log_meta *out,
                ann_err *err);
int emb_list(ann_store *st, const char *tenant_id, const char *log_id, const ann_list_query *q,
             ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err);
/* Visits h's entries first..last (clipped to the visible ones) in id order, copying them
 * in chunks under h->lk and visiting with no lock held. h is acquired by the caller. */
int emb_read_range(emb *s, elog *h, uint64_t first, uint64_t last, ann_entry_visit_fn visit,
                   void *ud, ann_err *err);
int emb_read_after(ann_store *st, const char *tenant_id, const char *log_id, uint64_t after_id,
                   size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err);

/* ---- watchers (watch.c) -------------------------------------------------- */

int emb_watch(ann_store *st, const char *tenant_id, const char *log_id, ann_watch_fn fn, void *ud,
              ann_watch **out, ann_err *err);
void emb_unwatch(ann_store *st, ann_watch *w);

/* ---- the tenant-wide reads (catalog.c, search.c) ---------------------------- */
int emb_logs_list(ann_store *st, const char *tenant_id, const ann_logs_query *q,
                  ann_log_visit_fn visit, void *ud, ann_err *err);
int emb_search(ann_store *st, const char *tenant_id, const ann_search_query *q,
               ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err);
/* The entry count of a log for listings: the loaded log's, else SQLite's when clean,
 * else loads the log. */
int emb_log_count(emb *s, const char *tenant, const char *log, uint64_t sqlite_count,
                  bool sqlite_dirty, uint64_t *out, ann_err *err);

/* ---- sealed blocks (seal.c) ---------------------------------------------------- */
/* The block holding id (<= h->sealed), h->lk held. */
const emb_block *emb_block_of(const elog *h, uint64_t id);
/* Copies entry `id` (<= h->sealed) of block b as a data-file record into *buf at *len
 * (growing it), h->lk held for reading or writing. */
int emb_block_take(elog *h, const emb_block *b, uint64_t id, uint8_t **buf, size_t *cap,
                   size_t *len, ann_err *err);
/* Loads the .blk file into h (h->lk held for writing, during load): blocks, their entries
 * into the index, sealed, dat_start; cuts a torn tail, kills superseded versions, and
 * rewrites blocks holding `pending` revocations (sorted ids) not yet applied. */
int emb_blocks_load(emb *s, elog *h, const uint64_t *pending, size_t npending, ann_err *err);
/* Rewrites the blocks holding the sorted ids (all <= h->sealed) with those entries
 * redacted, then kills the old versions. h->purge_mu held; takes h->lk as needed. */
int emb_blocks_revoke(emb *s, elog *h, const uint64_t *ids, size_t n, ann_err *err);
/* Frees h's block state (blocks, filters, decoded views); closes bfd. */
void emb_blocks_release(elog *h);
/* Frees bytes [from, to) of a file (a hole, or zeros where holes are not supported) and
 * syncs it: nothing of those bytes is left. */
int emb_wipe(emb *s, int fd, const char *path, uint64_t from, uint64_t to, ann_err *err);
/* References to the loaded logs that have unsealed entries (for the sealer); release each
 * with emb_log_release and free the array. */
void emb_open_logs(emb *s, elog ***out, size_t *n);
/* References to the loaded logs for which want(h) is true (called under s->mu, so it may
 * take h->lk and nothing else; a log not wanted is not touched, so it keeps aging in the
 * LRU). The same release. */
void emb_loaded_logs(emb *s, bool (*want)(elog *h), elog ***out, size_t *n);
/* The sealer thread: seals busy logs as their unsealed frames reach a block's worth, and
 * idle logs whole. */
int emb_sealer_start(emb *s, ann_err *err);
void emb_sealer_stop(emb *s);
/* Seals every open log whole (close, after the committer stopped). */
void emb_seal_all(emb *s);

/* ---- search summaries (summary.c) ---------------------------------------------- */
/* The summary of a log that is not open: its live blocks (1), or 0 when the log must be
 * opened to be searched (no blocks, an unsealed tail, a file to repair); -1 on error.
 * Release with emb_summary_release. */
int emb_summary_get(emb *s, const char *tenant, const char *log, emb_summary **out,
                    const emb_sumblk **blocks, size_t *n, ann_err *err);
const char *emb_summary_path(const emb_summary *m);
void emb_summary_release(emb *s, emb_summary *m);
void emb_summaries_init(emb *s);
void emb_summaries_free(emb *s);
/* A reference to the log if it is open (loaded and in the table), else NULL. */
elog *emb_log_peek(emb *s, const char *tenant, const char *log);

/* ---- revocation records (revmap.c) ------------------------------------------ */
void emb_revmap_add(emb_revmap *m, const uint64_t *ids, size_t n, const char *actor,
                    const char *reason, int64_t time_ns);
const ann_revocation *emb_revmap_find(const emb_revmap *m, uint64_t id);
void emb_revmap_release(emb_revmap *m);
/* Loads every record of h's log from SQLite into h->revs (h->lk held for writing). */
int emb_revmap_load(emb *s, elog *h, ann_err *err);
/* Appends h's watchers to (*ws)[*n..] (grown as needed), raising busy; with
 * `detach` they are also unlinked (the log is gone). */
void emb_watch_gather(emb *s, elog *h, ann_watch ***ws, size_t *cap, size_t *np, bool detach);
/* Calls the gathered watchers with no store lock held, then lowers busy. */
void emb_watch_call(emb *s, ann_watch **ws, size_t n);

/* ---- revoke and delete (purge.c) ----------------------------------------- */

int emb_revoke(ann_store *st, const char *tenant_id, const char *log_id, const uint64_t *ids,
               size_t n, const char *actor, const char *reason, int64_t now_ns, ann_err *err);
int emb_log_delete(ann_store *st, const char *tenant_id, const char *log_id, ann_err *err);
/* Retention's condition for a deletion (lifecycle.c). */
typedef struct emb_expiry {
    int64_t now_ns;
    int64_t cutoff_ns; /* deleted only if the last write is before this */
    int64_t day_ns;
    int32_t days;
    bool own_period; /* the log's period (else the tenant's) */
} emb_expiry;
/* log_delete; with exp, only if the log's last write is older than exp->cutoff_ns and it is
 * not held (else 0 with *deleted false: nothing changed), keeping retention's audit record
 * in the transaction that decides the deletion. */
int emb_log_delete_if(emb *s, const char *tenant_id, const char *log_id, const emb_expiry *exp,
                      bool *deleted, ann_err *err);
/* Unlinks the log's files and fsyncs its directory (idempotent). */
int emb_unlink_log_files(emb *s, const char *tenant, const char *log, ann_err *err);

/* ---- retention and legal hold (lifecycle.c) ------------------------------- */

/* log_create with the log's own retention period (embedded.c). */
int emb_log_create_days(ann_store *st, const char *tenant_id, const char *log_id,
                        const uint8_t *labels, size_t labels_len, int64_t now_ns,
                        int32_t retention_days, ann_err *err);
int emb_log_create_spec(ann_store *st, const ann_log_spec *spec, ann_err *err);
int emb_log_set_hold(ann_store *st, const char *tenant_id, const char *log_id, bool hold,
                     const char *actor, const char *reason, int64_t now_ns, ann_err *err);
int emb_tenant_set_retention(ann_store *st, const char *tenant_name, int32_t days, ann_err *err);
int emb_retention_pass(ann_store *st, int64_t now_ns, int64_t day_ns, size_t max_logs,
                       ann_retention_stats *out, ann_err *err);

/* ---- start-up recovery (recover.c) --------------------------------------- */

int emb_recover(emb *s, ann_err *err);

/* ---- integrity.c ---------------------------------------------------------- */

void emb_tree_init(emb_tree *t);
void emb_tree_release(emb_tree *t);
int emb_checkpoint(ann_store *st, const char *tenant_id, const char *log_id, ann_buf *out,
                   ann_err *err);
int emb_inclusion_proof(ann_store *st, const char *tenant_id, const char *log_id, uint64_t entry_id,
                        uint64_t tree_size, uint8_t (*out)[32], size_t *n, ann_err *err);
int emb_consistency_proof(ann_store *st, const char *tenant_id, const char *log_id, uint64_t first,
                          uint64_t second, uint8_t (*out)[32], size_t *n, ann_err *err);
int emb_log_seal(ann_store *st, const char *tenant_id, const char *log_id, ann_buf *out,
                 ann_err *err);
/* Leaf hashes of h's pending frame into h->pl (sets pl_ok): from the sync helper working
 * on h, or the committer. */
void emb_frame_leaves(elog *h);
/* At publish (h->lk held for writing, the round did not fail): moves them to h->lb. */
void emb_leaves_publish(elog *h);
/* Saves the tree's leaves to <log>.mrk (elog_free: the last reference, no lock needed). */
void emb_tree_save(elog *h);
/* Frees both buffers (elog_free). */
void emb_leaves_release(elog *h);
/* The checkpointer: every opts.checkpoint_ms, a new checkpoint of each open log that grew. */
int emb_checkpointer_start(emb *s, ann_err *err);
void emb_checkpointer_stop(emb *s);
/* The signing key: key_file when set, else DIR/signing.key (created with `name` when
 * missing). */
int emb_signer_load(const char *dir, const char *key_file, const char *name, ann_note_signer *out,
                    ann_err *err);

#endif
