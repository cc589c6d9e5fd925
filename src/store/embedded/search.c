/*
 * SearchLogEntries across a tenant's logs: exact, in (time, log id, entry id) order, with a
 * bounded amount of work per call.
 *
 * The logs are cut into units of consecutive ids, each with the time range of its entries
 * (a unit is a sealed block, or a range of the unsealed tail). A call keeps only the units
 * that may hold a match after the cursor (time range; the block's search filter), orders
 * them by their lower bound (the first time at or after the cursor they can hold, their
 * log, their first id), and examines them in that order, keeping the `limit` smallest
 * matching keys. Once the units up to some point are examined, every match below the next
 * unit's lower bound (the horizon) is final: no unit not yet examined can hold a smaller
 * key. A call stops when `limit` final matches are known, when every unit is examined, or
 * when it has examined `budget` entries (checked between units, so a call examines at most
 * the budget plus one unit); it then answers the final matches it has and a resume point:
 * the last match answered, or just below the horizon. The next call starts from there and
 * examines again what lies beyond it, so a unit may be read by more than one call; nothing
 * is answered twice, and nothing is skipped.
 */
#include "store/embedded/internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

#define UNIT_IDS 4096 /* ids per unit of the unsealed tail (< ANN_WORK_BUDGET) */

typedef struct cand {
    char id[EMB_MAX_ID_LEN + 1];
    elog *h;
} cand;

typedef struct unit {
    uint32_t log; /* index into the candidates, which are sorted by id */
    uint64_t first, last;
    int64_t lo_time; /* its lower bound: max(first time it holds, the walk's low time) */
} unit;

typedef struct key {
    int64_t t;
    uint32_t log;
    uint64_t id;
} key;

static int key_cmp(const key *a, const key *b)
{
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    if (a->log != b->log)
        return a->log < b->log ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int key_qcmp(const void *a, const void *b)
{
    return key_cmp(a, b);
}

static int unit_cmp(const void *a, const void *b)
{
    const unit *x = a, *y = b;
    key kx = {x->lo_time, x->log, x->first}, ky = {y->lo_time, y->log, y->first};
    return key_cmp(&kx, &ky);
}

static int cand_cmp(const void *a, const void *b)
{
    return strcmp(((const cand *)a)->id, ((const cand *)b)->id);
}

/* A max-heap of at most `cap` keys: the smallest keys seen so far. */
typedef struct heap {
    key *v;
    size_t n, cap;
    bool dropped; /* a key was dropped (or not kept) for being too large */
} heap;

static void heap_sift_down(heap *hp, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < hp->n && key_cmp(&hp->v[l], &hp->v[m]) > 0)
            m = l;
        if (r < hp->n && key_cmp(&hp->v[r], &hp->v[m]) > 0)
            m = r;
        if (m == i)
            return;
        key t = hp->v[i];
        hp->v[i] = hp->v[m];
        hp->v[m] = t;
        i = m;
    }
}

static void heap_push(heap *hp, key k)
{
    if (hp->n == hp->cap) {
        hp->dropped = true;
        if (key_cmp(&k, &hp->v[0]) >= 0)
            return;
        hp->v[0] = k;
        heap_sift_down(hp, 0);
        return;
    }
    size_t i = hp->n++;
    hp->v[i] = k;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (key_cmp(&hp->v[p], &hp->v[i]) >= 0)
            break;
        key t = hp->v[p];
        hp->v[p] = hp->v[i];
        hp->v[i] = t;
        i = p;
    }
}

typedef struct walk {
    const ann_search_query *q;
    cand *c;
    size_t nc, ccap;
    key cursor; /* valid when q->has_cursor; log as a candidate index (see below) */
    int64_t lo;
    uint32_t log;
    heap hp;
    uint64_t examined;
} walk;

/* The cursor's log id as a position among the candidates: the index of the first
 * candidate whose id is >= it, and whether it is equal. */
static void cursor_place(walk *w)
{
    const char *cl = w->q->cursor.log_id;
    size_t i = 0;
    while (i < w->nc && strcmp(w->c[i].id, cl) < 0)
        i++;
    bool eq = i < w->nc && strcmp(w->c[i].id, cl) == 0;
    /* Keys after the cursor: (t > ct) or (t == ct and (log > cl or (log == cl and id > cid))).
     * With candidates indexed in id order, log > cl is index >= i (+1 if equal). */
    w->cursor.t = w->q->cursor.time_ns;
    w->cursor.log = (uint32_t)i;
    w->cursor.id = eq ? w->q->cursor.entry_id : 0; /* not equal: every id of i is after */
}

static bool after_cursor(const walk *w, const key *k)
{
    if (!w->q->has_cursor)
        return true;
    if (k->t != w->cursor.t)
        return k->t > w->cursor.t;
    if (k->log != w->cursor.log)
        return k->log > w->cursor.log;
    return k->id > w->cursor.id;
}

static int examine(const ann_entry *e, void *ud)
{
    walk *w = ud;
    const ann_search_query *q = w->q;
    if (e->time_ns < w->lo || e->time_ns >= q->end_ns || e->insert_time_ns > q->snapshot_ns)
        return 0;
    key k = {e->time_ns, w->log, e->entry_id};
    if (!after_cursor(w, &k))
        return 0;
    w->examined++;
    if (e->flags & ANN_ENTRY_REDACTED)
        return 0;
    if (ann_body_matches(q->match, e->body, e->body_len))
        heap_push(&w->hp, k);
    return 0;
}

/* The units of one log whose time range can hold keys in [lo, end). */
static void log_units(walk *w, uint32_t li, unit **u, size_t *n, size_t *cap)
{
    elog *h = w->c[li].h;
    pthread_rwlock_rdlock(&h->lk);
    uint64_t visible = h->visible;
    for (uint64_t first = 1; first <= visible; first += UNIT_IDS) {
        uint64_t last = first + UNIT_IDS - 1 < visible ? first + UNIT_IDS - 1 : visible;
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        for (uint64_t id = first; id <= last; id++) {
            int64_t t = ann_idx_time(&h->idx, id);
            mn = t < mn ? t : mn;
            mx = t > mx ? t : mx;
        }
        if (mx < w->lo || mn >= w->q->end_ns)
            continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *u = ann_xrealloc(*u, *cap * sizeof **u);
        }
        (*u)[(*n)++] = (unit){li, first, last, mn > w->lo ? mn : w->lo};
    }
    pthread_rwlock_unlock(&h->lk);
}

typedef struct hit_ctx {
    walk *w;
    uint32_t log;
    ann_hit_visit_fn visit;
    void *ud;
    bool refused;
} hit_ctx;

static int give_hit(const ann_entry *e, void *ud)
{
    hit_ctx *c = ud;
    if (c->visit(c->w->c[c->log].id, e, c->ud) != 0)
        c->refused = true;
    return 1; /* one entry per read */
}

static int collect_logs(const ann_meta_log_row *r, void *ud)
{
    walk *w = ud;
    if (w->nc == w->ccap) {
        w->ccap = w->ccap ? w->ccap * 2 : 64;
        w->c = ann_xrealloc(w->c, w->ccap * sizeof *w->c);
    }
    memset(&w->c[w->nc], 0, sizeof w->c[w->nc]);
    snprintf(w->c[w->nc].id, sizeof w->c[w->nc].id, "%s", r->log_id);
    w->nc++;
    return 0;
}

static void set_pos(const walk *w, const key *k, ann_search_pos *p)
{
    p->time_ns = k->t;
    snprintf(p->log_id, sizeof p->log_id, "%s", w->c[k->log].id);
    p->entry_id = k->id;
}

int emb_search(ann_store *st, const char *tenant_id, const ann_search_query *q,
               ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err)
{
    emb *s = (emb *)st;
    walk w = {.q = q};
    unit *units = NULL;
    size_t nunits = 0, ucap = 0;
    int rc = -1;
    if (s->opts.admin_only)
        return ann_err_set(err, ANN_EINVAL, "store opened admin-only");
    if (!q->match || q->limit == 0)
        return ann_err_set(err, ANN_EINVAL, "search: missing matcher or limit");

    /* The candidate logs, in id order. */
    if (q->n_log_ids) {
        w.c = ann_xcalloc(q->n_log_ids, sizeof *w.c);
        for (size_t i = 0; i < q->n_log_ids; i++)
            snprintf(w.c[w.nc++].id, sizeof w.c[0].id, "%s", q->log_ids[i]);
    } else if (emb_valid_id(tenant_id)) {
        ann_logs_query lq = {.labels = q->labels,
                             .n_labels = q->n_labels,
                             .start_ns = INT64_MIN,
                             .end_ns = INT64_MAX};
        if (ann_meta_logs_page(s->meta, tenant_id, &lq, collect_logs, &w, err) != 0)
            goto done;
    }
    qsort(w.c, w.nc, sizeof *w.c, cand_cmp);
    size_t keep = 0;
    for (size_t i = 0; i < w.nc; i++) {
        elog *h;
        ann_err e;
        if (emb_log_acquire(s, tenant_id, w.c[i].id, &h, &e) != 0) {
            if (e.code == ANN_ENOTFOUND)
                continue; /* deleted meanwhile: nothing of it is searched */
            *err = e;
            goto done;
        }
        if (q->n_log_ids && q->n_labels &&
            !ann_labels_match(h->labels, h->labels_len, 2, q->labels, q->n_labels)) {
            emb_log_release(s, h);
            continue;
        }
        w.c[keep] = w.c[i];
        w.c[keep++].h = h;
    }
    w.nc = keep;

    w.lo = q->start_ns;
    if (q->has_cursor) {
        cursor_place(&w);
        if (q->cursor.time_ns > w.lo)
            w.lo = q->cursor.time_ns;
    }
    res->resume = q->has_cursor ? q->cursor : (ann_search_pos){.time_ns = INT64_MIN};
    for (uint32_t i = 0; i < w.nc; i++)
        log_units(&w, i, &units, &nunits, &ucap);
    qsort(units, nunits, sizeof *units, unit_cmp);

    w.hp.cap = q->limit;
    w.hp.v = ann_xmalloc(w.hp.cap * sizeof *w.hp.v);
    size_t ui = 0;
    bool early = false;
    for (; ui < nunits; ui++) {
        if (ui > 0 && w.examined >= q->budget)
            break;
        if (w.hp.n == w.hp.cap) { /* the page may be complete already */
            key bound = {units[ui].lo_time, units[ui].log, units[ui].first};
            if (key_cmp(&w.hp.v[0], &bound) < 0) {
                early = true;
                break;
            }
        }
        w.log = units[ui].log;
        if (emb_read_range(s, w.c[w.log].h, units[ui].first, units[ui].last, examine, &w, err) != 0)
            goto done;
    }
    res->examined = w.examined;

    /* The final keys: below the horizon (the next unit's lower bound), all if none. */
    bool all = ui == nunits;
    key horizon = all ? (key){INT64_MAX, UINT32_MAX, UINT64_MAX}
                      : (key){units[ui].lo_time, units[ui].log, units[ui].first};
    qsort(w.hp.v, w.hp.n, sizeof *w.hp.v, key_qcmp);
    size_t nfinal = 0;
    while (nfinal < w.hp.n && (all || key_cmp(&w.hp.v[nfinal], &horizon) < 0))
        nfinal++;

    size_t given = 0;
    for (; given < nfinal; given++) {
        key *k = &w.hp.v[given];
        hit_ctx hc = {&w, k->log, visit, ud, false};
        if (emb_read_range(s, w.c[k->log].h, k->id, k->id, give_hit, &hc, err) != 0)
            goto done;
        if (hc.refused)
            break;
    }
    if (given < nfinal) { /* the visitor stopped: resume after the last hit it took */
        res->more = true;
        if (given > 0)
            set_pos(&w, &w.hp.v[given - 1], &res->resume);
    } else if ((early || w.hp.dropped) && nfinal == w.hp.cap) {
        /* The page is full; keys beyond the last one given may exist below the horizon. */
        res->more = true;
        set_pos(&w, &w.hp.v[nfinal - 1], &res->resume);
    } else if (!all) {
        /* Everything below the horizon was given: resume just below it. */
        res->more = true;
        key below = horizon; /* a unit's first id is >= 1 */
        below.id--;
        set_pos(&w, &below, &res->resume);
    }
    rc = 0;
done:
    for (size_t i = 0; i < w.nc; i++)
        if (w.c[i].h)
            emb_log_release(s, w.c[i].h);
    free(w.c);
    free(w.hp.v);
    free(units);
    return rc;
}
