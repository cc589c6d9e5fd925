/*
 * Integrity (docs/integrity.md): each log's Merkle tree, its signed checkpoints, proofs,
 * SealLog, and the deployment's signing key.
 *
 * What is on disk: each record's body ends with its LogEntry.integrity field (the salt
 * drawn at append, commit.c; after a revocation the body_hash, logfile.c and seal.c), and
 * meta.db's logs.sealed. The tree is computed from the records (emb_tree in internal.h), so
 * it holds exactly the durable, visible entries and needs no recovery of its own; a
 * checkpoint is signed from it when asked for after the tree grew.
 */
#include "store/embedded/internal.h"
#include "store/embedded/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/random.h"
#include "domain/integrity.h"
#include "domain/merkle.h"
#include "domain/note.h"

#define SIGNING_KEY_FILE "signing.key"
#define KEY_FILE_MAX 4096
#define SEAL_WAIT_MS 30000 /* SealLog waits this long at most for a round in flight */

/* ---- the tree -------------------------------------------------------------------------- */

void emb_tree_init(emb_tree *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
}

void emb_tree_release(emb_tree *t)
{
    for (int k = 0; k < 64; k++)
        free(t->lv[k]);
    free(t->bc[0]);
    free(t->bc[1]);
    ann_buf_release(&t->ckp);
    pthread_mutex_destroy(&t->mu);
}

static char *mrk_path(const elog *h);

/* Where node i of level k < EMB_TREE_MEM of the block being filled sits in lv[k]. */
static uint8_t *low_node(emb_tree *t, int k, size_t i)
{
    return t->lv[k][i & ((EMB_TREE_BLOCK >> k) - 1)];
}

static void lv_push(emb_tree *t, int k, const uint8_t h[32])
{
    if (k < EMB_TREE_MEM) { /* a ring of one block's nodes at that level */
        if (!t->lv[k]) {
            t->lv_cap[k] = EMB_TREE_BLOCK >> k;
            t->lv[k] = ann_xmalloc(t->lv_cap[k] * sizeof *t->lv[k]);
        }
        memcpy(low_node(t, k, t->lv_n[k]++), h, 32);
        return;
    }
    if (t->lv_n[k] == t->lv_cap[k]) {
        t->lv_cap[k] = t->lv_cap[k] ? t->lv_cap[k] * 2 : 64;
        t->lv[k] = ann_xrealloc(t->lv[k], t->lv_cap[k] * sizeof *t->lv[k]);
    }
    memcpy(t->lv[k][t->lv_n[k]++], h, 32);
}

static const uint8_t *node_at(emb_tree *t, int k, size_t i)
{
    return k < EMB_TREE_MEM ? low_node(t, k, i) : t->lv[k][i];
}

/* A block just completed: its leaves (lv[0], the whole ring) go to <log>.mrk, in order.
 * The file is a cache of what the entries give (no fsync): a failed write stops the
 * writes (proofs then recompute complete blocks from the entries) and the save. */
static void block_write(elog *h)
{
    emb_tree *t = &h->tree;
    uint64_t first = t->size - EMB_TREE_BLOCK;
    if (t->disk_bad || first != t->disk)
        return; /* on disk already (loaded from the file), or not writing */
    char *path = mrk_path(h);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    size_t len = (size_t)EMB_TREE_BLOCK * 32;
    if (fd < 0 || emb_write_full(fd, t->lv[0], len, 16 + first * 32) != 0) {
        t->disk_bad = true;
    } else {
        t->disk += EMB_TREE_BLOCK;
        t->disk_crc = ann_crc32c(t->disk_crc, t->lv[0], len);
    }
    if (fd >= 0)
        close(fd);
}

/* Adds leaf `t->size` and every node it completes. */
static void tree_add_leaf(elog *h, const uint8_t leaf[32])
{
    emb_tree *t = &h->tree;
    lv_push(t, 0, leaf);
    t->size++;
    for (int k = 0; k < 63 && t->lv_n[k] % 2 == 0 && t->lv_n[k] / 2 > t->lv_n[k + 1]; k++) {
        uint8_t node[32];
        size_t n = t->lv_n[k];
        ann_merkle_node_hash(node_at(t, k, n - 2), node_at(t, k, n - 1), node);
        lv_push(t, k + 1, node);
    }
    if (t->size % EMB_TREE_BLOCK == 0)
        block_write(h);
}

typedef struct grow_ctx {
    elog *h;
    emb_tree *t;
    uint64_t next; /* the id expected */
    ann_err *err;
    int rc;
} grow_ctx;

static int grow_visit(const ann_entry *e, void *ud)
{
    grow_ctx *g = ud;
    uint8_t body_hash[32], leaf[32];
    if (e->entry_id != g->next) {
        g->rc = ann_err_set(g->err, ANN_EINTERNAL, "tree: entry %llu read for %llu",
                            (unsigned long long)e->entry_id, (unsigned long long)g->next);
        return 1;
    }
    if (ann_integrity_body_hash(e->body, e->body_len, body_hash, g->err) != 0) {
        g->t->legacy = true;
        pthread_rwlock_wrlock(&g->h->lk);
        g->h->ckp_hint = UINT64_MAX;
        pthread_rwlock_unlock(&g->h->lk);
        ann_err_set(&g->t->legacy_err, ANN_EPRECOND,
                    "log predates integrity: entry %llu has no body salt or hash, so the log has "
                    "no Merkle tree",
                    (unsigned long long)e->entry_id);
        if (g->err)
            *g->err = g->t->legacy_err;
        g->rc = -1;
        return 1;
    }
    ann_entry_leaf_hash(e, body_hash, leaf);
    tree_add_leaf(g->h, leaf);
    g->next++;
    return 0;
}

/* ---- leaves hashed by the commit path ---------------------------------------------- */

#define LB_MAX (1u << 20) /* leaves waiting for the tree, at most (32 MiB); beyond, read back */

void emb_frame_leaves(elog *h)
{
    h->pl_ok = false;
    if (!h->pend_count)
        return;
    if (h->pl_cap < h->pend_count) {
        free(h->pl);
        h->pl_cap = h->pend_count;
        h->pl = ann_xmalloc(h->pl_cap * sizeof *h->pl);
    }
    size_t pos = ANN_LF_FRAME_HDR;
    for (uint32_t k = 0; k < h->pend_count; k++) {
        ann_entry e;
        uint32_t rl;
        uint8_t bh[32];
        if (ann_lf_rec_decode_own(h->pend + pos, h->pend_len - pos, &e, &rl) != 0 ||
            e.entry_id != h->pend_first + k ||
            ann_integrity_body_hash(e.body, e.body_len, bh, NULL) != 0)
            return; /* the tree reads these entries back (and finds out why) */
        ann_entry_leaf_hash(&e, bh, h->pl[k]);
        pos += rl;
    }
    h->pl_ok = true;
}

void emb_leaves_publish(elog *h)
{
    if (!h->pend_count)
        return;
    if (!h->pl_ok || !h->lb_ok || h->lb_first + h->lb_n != h->pend_first ||
        h->lb_n + h->pend_count > LB_MAX) {
        h->lb_ok = false;
        free(h->lb);
        h->lb = NULL;
        h->lb_n = h->lb_cap = 0;
        return;
    }
    if (h->lb_n + h->pend_count > h->lb_cap) {
        size_t cap = h->lb_cap ? h->lb_cap : 1024;
        while (cap < h->lb_n + h->pend_count)
            cap *= 2;
        h->lb = ann_xrealloc(h->lb, cap * sizeof *h->lb);
        h->lb_cap = cap;
    }
    memcpy(h->lb[h->lb_n], h->pl, h->pend_count * sizeof *h->pl);
    h->lb_n += h->pend_count;
}

void emb_leaves_release(elog *h)
{
    free(h->lb);
    free(h->pl);
    h->lb = h->pl = NULL;
}

/* ---- the leaves on disk: <log>.mrk ---------------------------------------------------- */

/* "ANM2" | u32 crc32c of the leaves | u64 count | count leaf hashes (32 bytes each, leaf i at
 * 16 + 32 i). Complete blocks of leaves are written as the tree grows (block_write), the
 * rest and the header when the log is closed (evicted or the store closing); read at its
 * next first use. A cache of what the entries give, so no fsync: a file whose header does
 * not match its leaves (a crash while the log was open, a power cut) is ignored and the tree
 * is rebuilt from the entries, rewriting the file. "ANM1" (before the blocks: the crc
 * covers the count, then the leaves) is read too. */
#define MRK_MAGIC "ANM2"
#define MRK_MAGIC1 "ANM1"
#define MRK_HDR 16
#define MRK_CHUNK (1u << 16) /* leaves read at once */

static char *mrk_path(const elog *h)
{
    size_t n = strlen(h->path) + 1;
    char *p = ann_xmalloc(n);
    memcpy(p, h->path, n);
    memcpy(p + n - 4, "mrk", 3); /* "<log>.dat" -> "<log>.mrk" */
    return p;
}

void emb_tree_save(elog *h)
{
    emb_tree *t = &h->tree;
    if (t->size == 0 || t->legacy || h->deleted || h->load_rc != 0 || h->broken || t->disk_bad ||
        t->disk != t->size - t->size % EMB_TREE_BLOCK)
        return;
    char *path = mrk_path(h);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0)
        return;
    size_t tail = (size_t)(t->size - t->disk);
    uint8_t hdr[MRK_HDR];
    memcpy(hdr, MRK_MAGIC, 4);
    ann_le32_put(hdr + 4, ann_crc32c(t->disk_crc, t->lv[0], tail * 32));
    ann_le64_put(hdr + 8, t->size);
    /* The leaves, then the header that vouches for them; the file is cut to them. */
    if ((tail == 0 || emb_write_full(fd, t->lv[0], tail * 32, MRK_HDR + t->disk * 32) == 0) &&
        ftruncate(fd, (off_t)(MRK_HDR + t->size * 32)) == 0)
        (void)emb_write_full(fd, hdr, sizeof hdr, 0);
    close(fd);
}

/* The leaves of entries first.. (at most a block), hashed from the entries as read. */
typedef struct leaves_ctx {
    uint8_t (*out)[32];
    uint64_t first, n;
    ann_err *err;
    int rc;
} leaves_ctx;

static int leaves_visit(const ann_entry *e, void *ud)
{
    leaves_ctx *c = ud;
    uint8_t bh[32];
    if (e->entry_id != c->first + c->n || c->n >= EMB_TREE_BLOCK ||
        ann_integrity_body_hash(e->body, e->body_len, bh, c->err) != 0) {
        c->rc = -1;
        return 1;
    }
    ann_entry_leaf_hash(e, bh, c->out[c->n++]);
    return 0;
}

/* Does saved leaf `id` still hash entry `id`? The file is written without fsync, and so is
 * the log under durability none: after a power cut the file may vouch for entries the log
 * lost, whose ids were then given to new entries. Entries change only as a suffix (lost,
 * then written anew with fresh salts; a redaction keeps the leaf), so when the last leaf
 * used matches its entry, every earlier one does. */
static bool saved_leaf_holds(emb *s, elog *h, uint64_t id, const uint8_t leaf[32])
{
    uint8_t got[1][32];
    ann_err err;
    leaves_ctx lc = {.out = got, .first = id, .err = &err};
    return emb_read_range(s, h, id, id, leaves_visit, &lc, &err) == 0 && lc.rc == 0 && lc.n == 1 &&
           memcmp(got[0], leaf, 32) == 0;
}

/* Adds the saved leaves of entries 1 .. min(count, vis) (t->size is 0: the first use), after
 * checking the whole file against its header and its last leaf used against its entry. */
static void tree_load_saved(emb *s, elog *h, uint64_t vis)
{
    emb_tree *t = &h->tree;
    char *path = mrk_path(h);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return;
    uint8_t hdr[MRK_HDR];
    uint8_t(*leaves)[32] = ann_xmalloc((size_t)MRK_CHUNK * 32);
    bool v1 = false;
    if (ann_lf_pread_full(fd, hdr, sizeof hdr, 0) != 0 ||
        (memcmp(hdr, MRK_MAGIC, 4) != 0 && !(v1 = memcmp(hdr, MRK_MAGIC1, 4) == 0)))
        goto done;
    uint64_t count = ann_le64_get(hdr + 8);
    struct stat st;
    if (fstat(fd, &st) != 0 || count > 1ull << 40 || (uint64_t)st.st_size < MRK_HDR + count * 32)
        goto done;
    /* First pass: the checksum of everything; also that of the whole blocks we keep. */
    uint64_t use = count < vis ? count : vis;
    uint64_t keep = use - use % EMB_TREE_BLOCK;
    uint32_t crc = v1 ? ann_crc32c(0, hdr + 8, 8) : 0, kept = 0;
    for (uint64_t i = 0; i < count; i += MRK_CHUNK) {
        size_t n = (size_t)(count - i < MRK_CHUNK ? count - i : MRK_CHUNK);
        if (ann_lf_pread_full(fd, leaves, n * 32, MRK_HDR + i * 32) != 0)
            goto done;
        crc = ann_crc32c(crc, leaves, n * 32);
        if (i < keep)
            kept = ann_crc32c(kept, leaves, (size_t)((keep - i < n ? keep - i : n) * 32));
    }
    if (crc != ann_le32_get(hdr + 4) || use == 0 ||
        ann_lf_pread_full(fd, leaves, 32, MRK_HDR + (use - 1) * 32) != 0 ||
        !saved_leaf_holds(s, h, use, leaves[0]))
        goto done;
    /* Second pass: the tree. Whole blocks are on disk already: not written again. */
    t->disk = keep;
    t->disk_crc = kept;
    for (uint64_t i = 0; i < use; i += MRK_CHUNK) {
        size_t n = (size_t)(use - i < MRK_CHUNK ? use - i : MRK_CHUNK);
        if (ann_lf_pread_full(fd, leaves, n * 32, MRK_HDR + i * 32) != 0)
            break; /* the tree holds what was added; the entries give the rest */
        for (size_t k = 0; k < n; k++)
            tree_add_leaf(h, leaves[k]);
    }
done:
    free(leaves);
    close(fd);
}

/* Brings h's tree up to its visible entries; *visible gets their count. tree.mu held. */
static int tree_catch_up(emb *s, elog *h, uint64_t *visible, ann_err *err)
{
    emb_tree *t = &h->tree;
    if (t->size == 0 && !t->legacy) {
        pthread_rwlock_rdlock(&h->lk);
        uint64_t v0 = h->load_rc == 0 && !h->deleted ? h->visible : 0;
        pthread_rwlock_unlock(&h->lk);
        if (v0)
            tree_load_saved(s, h, v0);
    }
    /* Take the leaves the commit path hashed, and start a new run after `visible`. */
    pthread_rwlock_wrlock(&h->lk);
    int rc = emb_log_state(h, err);
    uint64_t vis = h->visible;
    bool ok = h->lb_ok;
    uint64_t first = h->lb_first;
    size_t n = h->lb_n;
    uint8_t(*lb)[32] = h->lb;
    h->lb = NULL;
    h->lb_n = h->lb_cap = 0;
    h->lb_first = vis + 1;
    h->lb_ok = true;
    pthread_rwlock_unlock(&h->lk);
    if (rc != 0 || t->legacy) {
        free(lb);
        if (rc == 0 && err)
            *err = t->legacy_err;
        return -1;
    }
    if (ok && n && first > t->size + 1) { /* a gap before them: read it */
        grow_ctx g = {.h = h, .t = t, .next = t->size + 1, .err = err};
        if (emb_read_range(s, h, t->size + 1, first - 1, grow_visit, &g, err) != 0 || g.rc != 0) {
            free(lb);
            return -1;
        }
    }
    if (ok)
        for (size_t k = 0; k < n && first + k <= vis; k++)
            if (first + k == t->size + 1)
                tree_add_leaf(h, lb[k]);
    free(lb);
    if (t->size < vis) {
        grow_ctx g = {.h = h, .t = t, .next = t->size + 1, .err = err};
        if (emb_read_range(s, h, t->size + 1, vis, grow_visit, &g, err) != 0 || g.rc != 0)
            return -1;
        if (t->size < vis) /* the log lost entries under us (a deletion): say so */
            return emb_log_state(h, err) != 0
                       ? -1
                       : ann_err_set(err, ANN_EINTERNAL, "tree: read %llu of %llu entries",
                                     (unsigned long long)t->size, (unsigned long long)vis);
    }
    *visible = vis;
    return 0;
}

/* ---- complete blocks, read back for proofs -------------------------------------------- */

typedef struct tree_ctx {
    emb *s;
    elog *h;
} tree_ctx;

/* The offset of level k's nodes in a block (emb_tree_blk). */
static size_t blk_off(int k)
{
    return 2 * (size_t)EMB_TREE_BLOCK - ((2 * (size_t)EMB_TREE_BLOCK) >> k);
}

/* Hashes a block's leaves (b->n level 0) up to its top; true when the top is the tree's. */
static bool blk_hash(emb_tree *t, emb_tree_blk *b)
{
    for (int k = 0; k < EMB_TREE_MEM; k++)
        for (size_t j = 0; j < (EMB_TREE_BLOCK >> (k + 1)); j++)
            ann_merkle_node_hash(b->n[blk_off(k) + 2 * j], b->n[blk_off(k) + 2 * j + 1],
                                 b->n[blk_off(k + 1) + j]);
    return memcmp(b->n[blk_off(EMB_TREE_MEM)], t->lv[EMB_TREE_MEM][b->blk], 32) == 0;
}

/* Complete block `blk`'s nodes: from <log>.mrk, checked against the block's node in memory;
 * from the entries when the file fails that (or was never written). tree.mu held. */
static emb_tree_blk *blk_get(tree_ctx *c, uint64_t blk, ann_err *err)
{
    emb_tree *t = &c->h->tree;
    for (int i = 0; i < 2; i++)
        if (t->bc[i] && t->bc[i]->blk == blk) {
            t->bc_next = i ^ 1; /* the other one is the least recently used */
            return t->bc[i];
        }
    int slot = t->bc_next;
    t->bc_next ^= 1;
    if (!t->bc[slot])
        t->bc[slot] = ann_xmalloc(sizeof *t->bc[slot]);
    emb_tree_blk *b = t->bc[slot];
    b->blk = blk;
    uint64_t first = blk * EMB_TREE_BLOCK;
    if (first + EMB_TREE_BLOCK <= t->disk) {
        char *path = mrk_path(c->h);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        free(path);
        bool ok = fd >= 0 && ann_lf_pread_full(fd, b->n, (size_t)EMB_TREE_BLOCK * 32,
                                               MRK_HDR + first * 32) == 0;
        if (fd >= 0)
            close(fd);
        if (ok && blk_hash(t, b))
            return b;
        t->disk_bad = true; /* the file lost or changed what we wrote: no save of it */
    }
    leaves_ctx lc = {.out = b->n, .first = first + 1, .err = err};
    if (emb_read_range(c->s, c->h, first + 1, first + EMB_TREE_BLOCK, leaves_visit, &lc, err) !=
            0 ||
        lc.rc != 0 || lc.n != EMB_TREE_BLOCK || !blk_hash(t, b)) {
        b->blk = UINT64_MAX;
        if (lc.rc == 0 && lc.n == EMB_TREE_BLOCK)
            ann_err_set(err, ANN_EINTERNAL, "tree: entries %llu..%llu no longer give their leaves",
                        (unsigned long long)first + 1, (unsigned long long)first + EMB_TREE_BLOCK);
        else if (err && !err->code)
            ann_err_set(err, ANN_EINTERNAL, "tree: entries %llu..%llu could not be read back",
                        (unsigned long long)first + 1, (unsigned long long)first + EMB_TREE_BLOCK);
        return NULL;
    }
    return b;
}

static int subtree(void *ud, uint64_t start, unsigned level, uint8_t out[32], ann_err *err)
{
    tree_ctx *c = ud;
    emb_tree *t = &c->h->tree;
    uint64_t i = start >> level;
    if (level >= 64 || i >= t->lv_n[level])
        return ann_err_set(err, ANN_EINTERNAL, "tree: no node at level %u index %llu", level,
                           (unsigned long long)i);
    uint64_t blk = start >> EMB_TREE_MEM;
    if (level >= EMB_TREE_MEM || blk == t->size >> EMB_TREE_MEM) { /* in memory */
        memcpy(out, node_at(t, (int)level, (size_t)i), 32);
        return 0;
    }
    emb_tree_blk *b = blk_get(c, blk, err);
    if (!b)
        return -1;
    memcpy(out, b->n[blk_off((int)level) + (i & ((EMB_TREE_BLOCK >> level) - 1))], 32);
    return 0;
}

/* Signs a checkpoint over the tree's first `size` leaves into t->ckp unless it holds one
 * of that size already. tree.mu held. */
static int tree_sign(emb *s, elog *h, uint64_t size, ann_err *err)
{
    emb_tree *t = &h->tree;
    if (t->ckp.len && t->ckp_size == size)
        return 0;
    if (!s->has_signer)
        return ann_err_set(err, ANN_EINVAL, "this store was opened without a signing key");
    uint8_t root[32];
    tree_ctx c = {.s = s, .h = h};
    if (ann_merkle_root(size, subtree, &c, root, err) != 0)
        return -1;
    ann_buf note = ANN_BUF_INIT;
    if (ann_checkpoint_sign(&s->signer, h->log, size, root, &note, err) != 0) {
        ann_buf_release(&note);
        return -1;
    }
    ann_buf_release(&t->ckp);
    t->ckp = note;
    t->ckp_size = size;
    pthread_rwlock_wrlock(&h->lk);
    h->ckp_hint = size;
    pthread_rwlock_unlock(&h->lk);
    return 0;
}

/* Catches h's tree up and makes sure a checkpoint exists (a new one when `fresh` and the
 * tree grew). tree.mu held. */
static int tree_ready(emb *s, elog *h, bool fresh, ann_err *err)
{
    uint64_t vis = 0;
    if (tree_catch_up(s, h, &vis, err) != 0)
        return -1;
    if (fresh || !h->tree.ckp.len)
        return tree_sign(s, h, vis, err);
    return 0;
}

int emb_checkpoint(ann_store *st, const char *tenant_id, const char *log_id, ann_buf *out,
                   ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    pthread_mutex_lock(&h->tree.mu);
    int rc = tree_ready(s, h, true, err);
    if (rc == 0)
        ann_buf_add(out, h->tree.ckp.data, h->tree.ckp.len);
    pthread_mutex_unlock(&h->tree.mu);
    emb_log_release(s, h);
    return rc;
}

int emb_inclusion_proof(ann_store *st, const char *tenant_id, const char *log_id, uint64_t entry_id,
                        uint64_t tree_size, uint8_t (*out)[32], size_t *n, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    *n = 0;
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    pthread_mutex_lock(&h->tree.mu);
    int rc = tree_ready(s, h, false, err);
    if (rc != 0)
        goto done;
    rc = -1;
    if (tree_size == 0 || tree_size > h->tree.ckp_size)
        ann_err_set(err, ANN_EINVAL,
                    "tree_size: %llu is not a tree size of a checkpoint (1 to %llu, the latest "
                    "checkpoint's size)",
                    (unsigned long long)tree_size, (unsigned long long)h->tree.ckp_size);
    else if (entry_id == 0 || entry_id > tree_size)
        ann_err_set(err, ANN_EINVAL, "entry_id: %llu is not in the tree of %llu entries",
                    (unsigned long long)entry_id, (unsigned long long)tree_size);
    else
        rc = ann_merkle_inclusion_proof(entry_id - 1, tree_size, subtree, &(tree_ctx){s, h}, out, n,
                                        err);
done:
    pthread_mutex_unlock(&h->tree.mu);
    emb_log_release(s, h);
    return rc;
}

int emb_consistency_proof(ann_store *st, const char *tenant_id, const char *log_id, uint64_t first,
                          uint64_t second, uint8_t (*out)[32], size_t *n, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    *n = 0;
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    pthread_mutex_lock(&h->tree.mu);
    int rc = tree_ready(s, h, false, err);
    if (rc != 0)
        goto done;
    rc = -1;
    if (second == 0 || second > h->tree.ckp_size)
        ann_err_set(err, ANN_EINVAL,
                    "second_size: %llu is not a tree size of a checkpoint (1 to %llu, the "
                    "latest checkpoint's size)",
                    (unsigned long long)second, (unsigned long long)h->tree.ckp_size);
    else if (first == 0 || first > second)
        ann_err_set(err, ANN_EINVAL, "first_size: %llu must be 1 to second_size (%llu)",
                    (unsigned long long)first, (unsigned long long)second);
    else
        rc = ann_merkle_consistency_proof(first, second, subtree, &(tree_ctx){s, h}, out, n, err);
done:
    pthread_mutex_unlock(&h->tree.mu);
    emb_log_release(s, h);
    return rc;
}

/* ---- SealLog ------------------------------------------------------------------------- */

int emb_log_seal(ann_store *st, const char *tenant_id, const char *log_id, ann_buf *out,
                 ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    int rc = -1;
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&h->lk);
    rc = emb_log_state(h, err);
    bool already = h->log_sealed;
    pthread_rwlock_unlock(&h->lk);
    if (rc != 0)
        goto done;
    rc = -1;
    /* Durable first: once SealLog answers, no restart can take the seal back. */
    if (!already && ann_meta_log_seal(s->meta, h->tenant, h->log, err) != 0)
        goto done;
    /* From here the committer refuses new entries; entries it sequenced before are in a
     * round in flight: wait until they are published (or the round failed, which drops
     * them unacknowledged), so the final checkpoint covers every acknowledged entry. */
    pthread_rwlock_wrlock(&h->lk);
    h->log_sealed = true;
    pthread_rwlock_unlock(&h->lk);
    for (int waited = 0;; waited++) {
        pthread_rwlock_rdlock(&h->lk);
        bool settled = h->visible == h->idx.n || h->broken || h->deleted;
        pthread_rwlock_unlock(&h->lk);
        if (settled)
            break;
        if (waited >= SEAL_WAIT_MS) {
            ann_err_set(err, ANN_EUNAVAIL,
                        "log %s: sealed, but a write is still in flight; "
                        "retry SealLog for the final checkpoint",
                        h->log);
            goto done;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    pthread_mutex_lock(&h->tree.mu);
    rc = tree_ready(s, h, true, err);
    if (rc == 0)
        ann_buf_add(out, h->tree.ckp.data, h->tree.ckp.len);
    pthread_mutex_unlock(&h->tree.mu);
done:
    emb_log_release(s, h);
    return rc;
}

/* ---- the checkpointer ------------------------------------------------------------- */

/* Under s->mu: a log whose visible entries passed its latest checkpoint. */
static bool needs_checkpoint(elog *h)
{
    pthread_rwlock_rdlock(&h->lk);
    bool want = h->load_rc == 0 && !h->deleted && !h->broken && h->ckp_hint != UINT64_MAX &&
                h->visible > h->ckp_hint;
    pthread_rwlock_unlock(&h->lk);
    return want;
}

static void *checkpointer_main(void *arg)
{
    emb *s = arg;
    pthread_mutex_lock(&s->ckpt_mu);
    while (!s->ckpt_stop) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += (long)(s->opts.checkpoint_ms % 1000) * 1000000L;
        dl.tv_sec += s->opts.checkpoint_ms / 1000 + dl.tv_nsec / 1000000000L;
        dl.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &dl);
        if (s->ckpt_stop)
            break;
        pthread_mutex_unlock(&s->ckpt_mu);
        elog **v = NULL;
        size_t n = 0;
        emb_loaded_logs(s, needs_checkpoint, &v, &n);
        for (size_t i = 0; i < n; i++) {
            elog *h = v[i];
            pthread_rwlock_rdlock(&h->lk);
            bool live = h->load_rc == 0 && !h->deleted && !h->broken;
            uint64_t vis = h->visible;
            pthread_rwlock_unlock(&h->lk);
            pthread_mutex_lock(&h->tree.mu);
            if (live && !h->tree.legacy && (vis > h->tree.ckp_size || !h->tree.ckp.len)) {
                ann_err err;
                if (tree_ready(s, h, true, &err) != 0 && !h->tree.legacy)
                    fprintf(stderr, "annals store: %s: checkpoint: %s\n", h->log, err.msg);
            }
            pthread_mutex_unlock(&h->tree.mu);
            emb_log_release(s, h);
        }
        free(v);
        pthread_mutex_lock(&s->ckpt_mu);
    }
    pthread_mutex_unlock(&s->ckpt_mu);
    return NULL;
}

int emb_checkpointer_start(emb *s, ann_err *err)
{
#ifdef ANN_BENCH_NO_TREE
    s->opts.no_checkpointer = true;
#endif
    if (s->opts.no_checkpointer || !s->has_signer)
        return 0;
    if (pthread_create(&s->ckpt_th, NULL, checkpointer_main, s) != 0)
        return ann_err_set(err, ANN_EUNAVAIL, "cannot start the checkpointer thread");
    s->ckpt_started = true;
    return 0;
}

void emb_checkpointer_stop(emb *s)
{
    if (!s->ckpt_started)
        return;
    pthread_mutex_lock(&s->ckpt_mu);
    s->ckpt_stop = true;
    pthread_cond_broadcast(&s->ckpt_cv);
    pthread_mutex_unlock(&s->ckpt_mu);
    pthread_join(s->ckpt_th, NULL);
    s->ckpt_started = false;
}

/* ---- the signing key ------------------------------------------------------------------- */

static int key_read(const char *path, ann_note_signer *signer, ann_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ann_err_set(err, errno == ENOENT ? ANN_ENOTFOUND : ANN_EINVAL, "signing key %s: %s",
                           path, strerror(errno));
    char buf[KEY_FILE_MAX];
    ssize_t n = read(fd, buf, sizeof buf);
    int e = errno;
    close(fd);
    if (n < 0)
        return ann_err_set(err, ANN_EINVAL, "signing key %s: %s", path, strerror(e));
    if ((size_t)n == sizeof buf)
        return ann_err_set(err, ANN_EINVAL, "signing key %s: longer than %d bytes", path,
                           KEY_FILE_MAX);
    int rc = ann_note_signer_parse(signer, buf, (size_t)n, err);
    memset(buf, 0, sizeof buf);
    if (rc != 0)
        fprintf(stderr, "annals store: signing key %s: %s\n", path, err ? err->msg : "");
    return rc;
}

/* Creates DIR/signing.key with a new key (O_EXCL: a concurrent creator wins, we read its). */
static int key_create(const char *dir, const char *path, const char *name, ann_err *err)
{
    uint8_t seed[32];
    ann_note_signer k;
    ann_random_bytes(seed, sizeof seed);
    int rc = ann_note_signer_init(&k, name, seed, err);
    memset(seed, 0, sizeof seed);
    if (rc != 0)
        return -1;
    ann_buf text = ANN_BUF_INIT;
    ann_note_signer_format(&k, &text);
    ann_buf_add(&text, "\n", 1);
    ann_note_signer_release(&k);
    rc = -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = errno == EEXIST ? 0 : emb_sys_fail(err, "create", path);
        goto done;
    }
    if (emb_write_full(fd, text.data, text.len, 0) != 0 || fsync(fd) != 0) {
        emb_sys_fail(err, "write", path);
        close(fd);
        unlink(path);
        goto done;
    }
    close(fd);
    if (emb_fsync_dir(dir) != 0) {
        emb_sys_fail(err, "fsync", dir);
        goto done;
    }
    rc = 0;
done:
    memset(text.data, 0, text.len);
    ann_buf_release(&text);
    return rc;
}

int emb_signer_load(const char *dir, const char *key_file, const char *name, ann_note_signer *out,
                    ann_err *err)
{
    if (key_file && *key_file)
        return key_read(key_file, out, err);
    size_t n = strlen(dir) + sizeof "/" SIGNING_KEY_FILE;
    char *path = ann_xmalloc(n);
    snprintf(path, n, "%s/%s", dir, SIGNING_KEY_FILE);
    int rc = key_read(path, out, err);
    if (rc != 0 && err && err->code == ANN_ENOTFOUND) {
        rc = key_create(dir, path, name && *name ? name : ANN_NOTE_NAME_DEFAULT, err);
        if (rc == 0)
            rc = key_read(path, out, err);
    }
    free(path);
    return rc;
}

int ann_store_embedded_signer(const char *dir, const char *key_file, const char *key_name,
                              struct ann_note_signer *out, ann_err *err)
{
    return emb_signer_load(dir, key_file, key_name, out, err);
}
