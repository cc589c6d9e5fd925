/*
 * Revocation records for reads: which audit record redacted each entry of a log, so that
 * every read can say who revoked it, when and why (LogEntry.revocation). Loaded from SQLite
 * with the log, extended by revoke() before it overwrites anything.
 */
#include "store/embedded/internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

static int rev_cmp(const void *a, const void *b)
{
    const struct emb_rev_id *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static const struct emb_rev_id *rev_bsearch(const emb_revmap *m, uint64_t id)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && m->v[lo].id == id ? &m->v[lo] : NULL;
}

void emb_revmap_add(emb_revmap *m, const uint64_t *ids, size_t n, const char *actor,
                    const char *reason, int64_t time_ns)
{
    actor = actor ? actor : "";
    reason = reason ? reason : "";
    size_t al = strlen(actor) + 1, rl = strlen(reason) + 1;
    ann_revocation *r = ann_xmalloc(sizeof *r + al + rl);
    char *p = (char *)(r + 1);
    memcpy(p, actor, al);
    memcpy(p + al, reason, rl);
    r->actor = p;
    r->reason = p + al;
    r->time_ns = time_ns;
    if (m->nrecs == m->recs_cap) {
        m->recs_cap = m->recs_cap ? m->recs_cap * 2 : 4;
        m->recs = ann_xrealloc(m->recs, m->recs_cap * sizeof *m->recs);
    }
    uint32_t rec = (uint32_t)m->nrecs;
    m->recs[m->nrecs++] = r;
    size_t before = m->n;
    for (size_t i = 0; i < n; i++) {
        if (rev_bsearch(m, ids[i]) || ids[i] == 0)
            continue; /* the first record that named an id is the one kept */
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 64;
            m->v = ann_xrealloc(m->v, m->cap * sizeof *m->v);
        }
        m->v[m->n++] = (struct emb_rev_id){ids[i], rec};
    }
    if (m->n != before) {
        qsort(m->v, m->n, sizeof *m->v, rev_cmp);
        /* ids repeated within this call: keep one */
        size_t w = 0;
        for (size_t i = 0; i < m->n; i++)
            if (w == 0 || m->v[w - 1].id != m->v[i].id)
                m->v[w++] = m->v[i];
        m->n = w;
    }
}

const ann_revocation *emb_revmap_find(const emb_revmap *m, uint64_t id)
{
    const struct emb_rev_id *e = rev_bsearch(m, id);
    return e ? m->recs[e->rec] : NULL;
}

void emb_revmap_release(emb_revmap *m)
{
    for (size_t i = 0; i < m->nrecs; i++)
        free(m->recs[i]);
    free(m->recs);
    free(m->v);
    memset(m, 0, sizeof *m);
}

typedef struct load_recs {
    emb_revmap *m;
    uint64_t *ids;
    size_t cap;
} load_recs;

static int add_record(const uint8_t *ids_le, size_t n, const char *actor, const char *reason,
                      int64_t time_ns, void *ud)
{
    load_recs *l = ud;
    if (n > l->cap) {
        l->cap = n;
        l->ids = ann_xrealloc(l->ids, n * sizeof *l->ids);
    }
    for (size_t i = 0; i < n; i++)
        l->ids[i] = ann_le64_get(ids_le + 8 * i);
    emb_revmap_add(l->m, l->ids, n, actor, reason, time_ns);
    return 0;
}

int emb_revmap_load(emb *s, elog *h, ann_err *err)
{
    /* A reload keeps the records it has (readers may hold pointers to them, and revoke
     * keeps the map current): only a first load reads them. */
    if (h->revs.nrecs)
        return 0;
    load_recs l = {&h->revs, NULL, 0};
    int rc = ann_meta_revocation_records(s->meta, h->tenant, h->log, add_record, &l, err);
    free(l.ids);
    return rc;
}
