/*
 * The read side of the distributed backend: the port's reads over the PostgreSQL read
 * model (src/pg/readmodel.h), and its notifications fed to the waiters (distributed.c).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "domain/merkle.h"
#include "pg/readmodel.h"
#include "store/distributed/internal.h"

int dist_rm_open(dist *d, const char *conninfo, int pool, ann_err *err)
{
    return ann_readmodel_open(conninfo, d->kcfg.ns, (size_t)pool, &d->rm, err);
}

void dist_rm_close(dist *d)
{
    if (d->rm)
        ann_readmodel_close(d->rm);
    d->rm = NULL;
}

int dist_rm_listen_start(dist *d, ann_err *err)
{
    return ann_readmodel_listen_start(d->rm, dist_on_notify, d, err);
}

void dist_rm_listen_stop(dist *d)
{
    if (d->rm)
        ann_readmodel_listen_stop(d->rm);
}

int dist_rm_state(dist *d, const char *tenant_id, const char *log_id, dist_log_state *out,
                  ann_err *err)
{
    ann_rm_log_state st;
    if (ann_readmodel_log_state(d->rm, tenant_id, log_id, &st, err) != 0)
        return -1;
    out->exists = st.exists;
    out->deleted = st.deleted;
    out->visible_count = st.visible_count;
    out->applied_op = st.applied_op;
    out->sealed = st.sealed;
    ann_readmodel_log_state_release(&st);
    return 0;
}

int dist_rm_list(ann_store *s, const char *tenant_id, const char *log_id, const ann_list_query *q,
                 ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err)
{
    return ann_readmodel_list(((dist *)s)->rm, tenant_id, log_id, q, visit, ud, res, err);
}

/* A page of ListLogs: the read model's rows (copied: its labels live in the query's
 * result), then their holds and periods from the catalog, which alone keeps them (holds
 * change there, never through the pipeline), then the caller's visitor. */
typedef struct page {
    ann_log_meta *m;
    size_t n, cap;
} page;

static int page_add(const ann_log_meta *m, void *ud)
{
    page *p = ud;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->m = ann_xrealloc(p->m, p->cap * sizeof *p->m);
    }
    ann_log_meta *c = &p->m[p->n++];
    *c = *m;
    c->has_hold_change = false;
    c->last_hold_change.reason = NULL;
    c->labels = ann_xcalloc(m->labels_len ? m->labels_len : 1, 1);
    if (m->labels_len)
        memcpy(c->labels, m->labels, m->labels_len);
    return 0;
}

int dist_rm_logs_list(ann_store *s, const char *tenant_id, const ann_logs_query *q,
                      ann_log_visit_fn visit, void *ud, ann_err *err)
{
    dist *d = (dist *)s;
    ann_logs_query qq = *q;
    size_t want = q->limit;
    int rc = 0, stop = 0;
    /* A log the catalog marks deleted whose deletion the read model does not show yet is
     * left out (GetLog says NOT_FOUND for it already); the page is filled from further on. */
    while (rc == 0 && !stop && want > 0) {
        page p = {0};
        qq.limit = want;
        rc = ann_readmodel_logs_list(d->rm, tenant_id, &qq, page_add, &p, err);
        bool *gone = ann_xcalloc(p.n + 1, sizeof *gone);
        if (rc == 0)
            rc = ann_catalog_logs_flags(d->cat, tenant_id, p.m, p.n, gone, err);
        size_t shown = 0;
        for (size_t i = 0; rc == 0 && !stop && i < p.n; i++)
            if (!gone[i]) {
                shown++;
                stop = visit(&p.m[i], ud);
            }
        bool full = p.n == want;
        if (p.n > 0) {
            qq.has_cursor = true;
            qq.cursor_create_ns = p.m[p.n - 1].create_time_ns;
            snprintf(qq.cursor_id, sizeof qq.cursor_id, "%s", p.m[p.n - 1].id);
        }
        for (size_t i = 0; i < p.n; i++)
            ann_log_meta_release(&p.m[i]);
        free(p.m);
        free(gone);
        if (!full)
            break;
        want -= shown;
    }
    return rc;
}

int dist_rm_search(ann_store *s, const char *tenant_id, const ann_search_query *q,
                   ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err)
{
    return ann_readmodel_search(((dist *)s)->rm, tenant_id, q, visit, ud, res, err);
}

int dist_rm_read_after(ann_store *s, const char *tenant_id, const char *log_id, uint64_t after_id,
                       size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err)
{
    return ann_readmodel_read_after(((dist *)s)->rm, tenant_id, log_id, after_id, limit, visit, ud,
                                    err);
}

/* ---- integrity (docs/integrity.md, "Distributed mode"): checkpoints and leaf hashes as
 * the projector stored them ---- */

int dist_rm_checkpoint(ann_store *s, const char *tenant_id, const char *log_id, ann_buf *out,
                       ann_err *err)
{
    uint64_t size = 0;
    return ann_readmodel_checkpoint(((dist *)s)->rm, tenant_id, log_id, out, &size, err);
}

/* The latest checkpoint's size (the bound of every proof). */
static int ckpt_size(dist *d, const char *tenant_id, const char *log_id, uint64_t *size,
                     ann_err *err)
{
    ann_buf note = ANN_BUF_INIT;
    int rc = ann_readmodel_checkpoint(d->rm, tenant_id, log_id, &note, size, err);
    ann_buf_release(&note);
    return rc;
}

#define LEAF_PAGE 65536

typedef struct tree_ctx {
    dist *d;
    const char *tenant_id, *log_id;
    uint8_t (*page)[ANN_HASH_LEN];
} tree_ctx;

/* A complete subtree's hash from its leaves, read a page at a time and folded (the tree of
 * 2^level leaves is the frontier's root once they are all in). Reads every leaf under it:
 * a proof reads about tree_size leaf hashes (docs/distributed.md, "To do": stored interior
 * nodes would make it logarithmic). */
static int subtree(void *ud, uint64_t start, unsigned level, uint8_t out[ANN_HASH_LEN],
                   ann_err *err)
{
    tree_ctx *t = ud;
    uint64_t n = (uint64_t)1 << level;
    if (n == 1)
        return ann_readmodel_leaves(t->d->rm, t->tenant_id, t->log_id, start + 1, 1,
                                    (uint8_t(*)[32])out, err);
    ann_merkle_frontier f;
    ann_merkle_frontier_init(&f);
    if (!t->page)
        t->page = ann_xmalloc(LEAF_PAGE * sizeof *t->page);
    for (uint64_t at = 0; at < n;) {
        size_t k = n - at < LEAF_PAGE ? (size_t)(n - at) : LEAF_PAGE;
        if (ann_readmodel_leaves(t->d->rm, t->tenant_id, t->log_id, start + at + 1, k, t->page,
                                 err) != 0)
            return -1;
        for (size_t i = 0; i < k; i++)
            if (ann_merkle_frontier_append(&f, t->page[i], err) != 0)
                return -1;
        at += k;
    }
    ann_merkle_frontier_root(&f, out);
    return 0;
}

/* An inclusion proof of entry a (inclusion) or a consistency proof from a (first) to b. */
static int proof(ann_store *s, const char *tenant_id, const char *log_id, bool inclusion,
                 uint64_t a, uint64_t b, uint8_t (*out)[32], size_t *n, ann_err *err)
{
    dist *d = (dist *)s;
    uint64_t size = 0;
    *n = 0;
    if (ckpt_size(d, tenant_id, log_id, &size, err) != 0)
        return -1;
    if (b == 0 || b > size)
        return ann_err_set(err, ANN_EINVAL,
                           "%s: %llu is not a tree size of a checkpoint (1 to %llu, the latest "
                           "checkpoint's size)",
                           inclusion ? "tree_size" : "second_size", (unsigned long long)b,
                           (unsigned long long)size);
    if (a == 0 || a > b)
        return inclusion ? ann_err_set(err, ANN_EINVAL,
                                       "entry_id: %llu is not in the tree of %llu entries",
                                       (unsigned long long)a, (unsigned long long)b)
                         : ann_err_set(err, ANN_EINVAL,
                                       "first_size: %llu must be 1 to second_size (%llu)",
                                       (unsigned long long)a, (unsigned long long)b);
    tree_ctx t = {.d = d, .tenant_id = tenant_id, .log_id = log_id};
    int rc = inclusion ? ann_merkle_inclusion_proof(a - 1, b, subtree, &t, out, n, err)
                       : ann_merkle_consistency_proof(a, b, subtree, &t, out, n, err);
    free(t.page);
    return rc;
}

int dist_rm_inclusion_proof(ann_store *s, const char *tenant_id, const char *log_id,
                            uint64_t entry_id, uint64_t tree_size, uint8_t (*out)[32], size_t *n,
                            ann_err *err)
{
    return proof(s, tenant_id, log_id, true, entry_id, tree_size, out, n, err);
}

int dist_rm_consistency_proof(ann_store *s, const char *tenant_id, const char *log_id,
                              uint64_t first, uint64_t second, uint8_t (*out)[32], size_t *n,
                              ann_err *err)
{
    return proof(s, tenant_id, log_id, false, first, second, out, n, err);
}
