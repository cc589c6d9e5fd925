/*
 * SearchLogEntries across a tenant's logs: exact, in (time, log id, entry id) order, with a
 * bounded amount of work per call.
 *
 * The logs are cut into units of consecutive ids, each with a few quantiles of its entry
 * times (a unit is a sealed block, or a range of the unsealed tail). A call keeps the units
 * that may hold a match after the cursor (time window; the block's search filter) and cuts
 * a time slice [lo, H) starting at the cursor's time, as long as the units' quantiles say
 * it holds about `budget` entries; then it examines every entry of the slice in every kept
 * unit. Every match in the slice is then final (no entry outside it sorts before H), so
 * the call answers the smallest `limit` of them and resumes after the last one answered,
 * or at H when it answered them all. When even one nanosecond holds more than the budget,
 * the slice is that one time, walked in (log, id) order and cut after `budget` entries.
 * Each call therefore moves the walk forward, never answers a key twice and never skips
 * one; it examines about `budget` entries (more only when entries are unevenly spread
 * between a unit's quantiles).
 */
#include "store/embedded/internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "store/embedded/logfile.h"

#define UNIT_IDS 4096 /* ids per unit of the unsealed tail */
#define NQ EMB_NQ     /* a unit's times are summarised by NQ + 1 quantiles */

/* A log searched: open (h), or known by its summary (sum) when it is not open. */
typedef struct cand {
    char id[EMB_MAX_ID_LEN + 1];
    elog *h;
    emb_summary *sum;
    const emb_sumblk *sb; /* the summary's blocks */
    size_t nsb;
    int bfd;             /* the .blk file, opened on first read */
    ann_blk_view view;   /* the last block decoded from the summary path */
    uint64_t view_first; /* its first id; 0: none */
} cand;

typedef struct unit {
    uint32_t log; /* index into the candidates, which are sorted by id */
    size_t sb;    /* the summary block, for a candidate known by its summary */
    uint64_t first, last;
    uint64_t count;
    int64_t q[NQ + 1]; /* q[0] the smallest time, q[NQ] the largest */
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

static int cand_cmp(const void *a, const void *b)
{
    return strcmp(((const cand *)a)->id, ((const cand *)b)->id);
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
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
    key cursor; /* valid when q->has_cursor; its log as a candidate index */
    int64_t lo; /* the slice: keys after the cursor with time in [lo, hi) ... */
    int64_t hi;
    bool one_time; /* ... or, at one time lo, up to budget entries in (log, id) order */
    key last_seen; /* one_time: the last key examined */
    uint32_t log;  /* the log being examined */
    heap hp;
    uint64_t examined;
    const char *tenant;
} walk;

/* The cursor's log as a position among the candidates (sorted by id): keys of candidate i
 * come after the cursor's log when i >= the index of the first id >= it (strictly after
 * when equal, by entry id). */
static void cursor_place(walk *w)
{
    const char *cl = w->q->cursor.log_id;
    size_t i = 0;
    while (i < w->nc && strcmp(w->c[i].id, cl) < 0)
        i++;
    bool eq = i < w->nc && strcmp(w->c[i].id, cl) == 0;
    w->cursor.t = w->q->cursor.time_ns;
    w->cursor.log = (uint32_t)i;
    w->cursor.id = eq ? w->q->cursor.entry_id : 0; /* not equal: every id of i is after */
}

static bool after_cursor(const walk *w, const key *k)
{
    if (!w->q->has_cursor)
        return true;
    return key_cmp(k, &w->cursor) > 0;
}

/* Is the entry in the slice? (Time window, snapshot and cursor included.) */
static bool in_slice(const walk *w, int64_t t, int64_t it, uint64_t id)
{
    const ann_search_query *q = w->q;
    if (t < w->lo || t >= q->end_ns || it > q->snapshot_ns)
        return false;
    if (w->one_time ? t != w->lo : t >= w->hi)
        return false;
    key k = {t, w->log, id};
    return after_cursor(w, &k);
}

static int examine(const ann_entry *e, void *ud)
{
    walk *w = ud;
    if (!in_slice(w, e->time_ns, e->insert_time_ns, e->entry_id))
        return 0;
    key k = {e->time_ns, w->log, e->entry_id};
    w->examined++;
    w->last_seen = k;
    if (!(e->flags & ANN_ENTRY_REDACTED) && ann_body_matches(w->q->match, e->body, e->body_len))
        heap_push(&w->hp, k);
    /* One time at a time: stop within a log once the budget is spent. */
    return w->one_time && w->examined >= w->q->budget ? 1 : 0;
}

static void add_unit(unit **u, size_t *n, size_t *cap, const unit *x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *u = ann_xrealloc(*u, *cap * sizeof **u);
    }
    (*u)[(*n)++] = *x;
}

/* May this block hold a match in the walk's window? */
static bool block_may(const walk *w, const ann_blk_header *h, const uint8_t *filter)
{
    return h->max_time_ns >= w->lo && h->min_time_ns < w->q->end_ns &&
           h->min_insert_time_ns <= w->q->snapshot_ns &&
           ann_blk_filter_may_match(filter, filter ? h->filter_len : 0, w->q->match);
}

/* The units of one log that may hold keys in [lo, end): its sealed blocks whose time range
 * meets the window and whose filter admits the query, and ranges of its unsealed tail. */
static void log_units(walk *w, uint32_t li, unit **u, size_t *n, size_t *cap)
{
    const cand *c = &w->c[li];
    if (!c->h) { /* from the summary: quantiles spread evenly over the block's range */
        for (size_t bi = 0; bi < c->nsb; bi++) {
            const emb_sumblk *b = &c->sb[bi];
            if (!block_may(w, &b->hdr, b->filter))
                continue;
            unit x = {
                .log = li, .sb = bi, .first = b->first, .last = b->last, .count = b->hdr.count};
            /* In long double: the span of two int64 may exceed INT64_MAX. */
            long double lo = (long double)b->hdr.min_time_ns, hi = (long double)b->hdr.max_time_ns;
            for (int j = 0; j <= NQ; j++) {
                long double t = lo + (hi - lo) * j / NQ;
                x.q[j] = t <= lo ? b->hdr.min_time_ns : t >= hi ? b->hdr.max_time_ns : (int64_t)t;
            }
            add_unit(u, n, cap, &x);
        }
        return;
    }
    elog *h = c->h;
    int64_t *times = ann_xmalloc(UNIT_IDS * sizeof *times);
    pthread_rwlock_rdlock(&h->lk);
    uint64_t visible = h->visible;
    for (size_t bi = 0; bi < h->nblocks; bi++) {
        const emb_block *b = &h->blocks[bi];
        if (!block_may(w, &b->hdr, b->filter))
            continue;
        unit x = {.log = li, .first = b->first, .last = b->last, .count = b->hdr.count};
        memcpy(x.q, b->q, sizeof x.q);
        add_unit(u, n, cap, &x);
    }
    for (uint64_t first = h->sealed + 1; first <= visible; first += UNIT_IDS) {
        uint64_t last = first + UNIT_IDS - 1 < visible ? first + UNIT_IDS - 1 : visible;
        size_t k = 0;
        for (uint64_t id = first; id <= last; id++)
            times[k++] = ann_idx_time(&h->idx, id);
        qsort(times, k, sizeof *times, i64_cmp);
        if (times[k - 1] < w->lo || times[0] >= w->q->end_ns)
            continue;
        unit x = {.log = li, .first = first, .last = last, .count = k};
        for (int j = 0; j <= NQ; j++)
            x.q[j] = times[(k - 1) * (size_t)j / NQ];
        add_unit(u, n, cap, &x);
    }
    pthread_rwlock_unlock(&h->lk);
    free(times);
}

/* About how many of a unit's entries have times in [lo, t): each of its NQ quantile
 * intervals holds count / NQ entries, spread evenly. */
static double unit_est(const unit *u, int64_t lo, int64_t t)
{
    /* long double holds every int64 exactly (x86-64), so nanosecond slices of times far
     * apart still count right. */
    long double per = (long double)u->count / NQ, sum = 0;
    for (int j = 0; j < NQ; j++) {
        long double a = (long double)u->q[j], b = (long double)u->q[j + 1] + 1.0L;
        long double x = (long double)lo > a ? (long double)lo : a;
        long double y = (long double)t < b ? (long double)t : b;
        if (y > x)
            sum += per * (y - x) / (b - a);
    }
    return (double)sum;
}

static double slice_est(const unit *u, size_t n, int64_t lo, int64_t t)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += unit_est(&u[i], lo, t);
    return sum;
}

/* Decodes summary block bi of candidate c (kept as its view). -2 when the file no longer
 * holds that block as summarised (a seal, a rewrite): the caller opens the log instead. */
static int cand_view(cand *c, size_t bi, ann_err *err)
{
    const emb_sumblk *b = &c->sb[bi];
    if (c->view_first == b->first)
        return 0;
    if (c->view_first) {
        ann_blk_view_release(&c->view);
        c->view_first = 0;
    }
    if (c->bfd < 0) {
        c->bfd = open(emb_summary_path(c->sum), O_RDONLY | O_CLOEXEC);
        if (c->bfd < 0)
            return -2;
    }
    size_t len = (size_t)ann_blk_body_end(&b->hdr);
    uint8_t *bytes = ann_xmalloc(len);
    ann_blk_header h;
    int rc = -2;
    if (ann_lf_pread_full(c->bfd, bytes, len, b->off) == 0 &&
        ann_blk_header_decode(bytes, len, &h, NULL) == 0 && h.gen == b->hdr.gen &&
        h.first_id == b->first && h.count == b->hdr.count && !(h.flags & ANN_BLK_DEAD) &&
        ann_blk_view_open(bytes, len, &h, &c->view, err) == 0) {
        c->view_first = b->first;
        rc = 0;
    }
    free(bytes);
    return rc;
}

/* Visits entries first..last of a unit of candidate li (an open log's, or a summary
 * block's). */
static int read_unit(emb *s, walk *w, uint32_t li, size_t sb, uint64_t first, uint64_t last,
                     ann_entry_visit_fn fn, void *ud, ann_err *err)
{
    cand *c = &w->c[li];
    if (!c->h && cand_view(c, sb, err) != 0) {
        /* The file changed under the summary (a seal, a rewrite): read the log itself.
         * Ids never change, so the unit's range still holds. */
        ann_err e;
        if (emb_log_acquire(s, w->tenant, c->id, &c->h, &e) != 0) {
            if (e.code == ANN_ENOTFOUND)
                return 0; /* deleted meanwhile */
            *err = e;
            return -1;
        }
    }
    if (c->h)
        return emb_read_range(s, c->h, first, last, fn, ud, err);
    for (uint64_t id = first; id <= last; id++)
        if (fn(&c->view.e[id - c->sb[sb].first], ud) != 0)
            break;
    return 0;
}

static size_t sum_block_of(const cand *c, uint64_t id)
{
    size_t lo = 0, hi = c->nsb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->sb[mid].last < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
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
    if (e->flags & ANN_ENTRY_REDACTED)
        return 1; /* revoked since it was examined: it no longer matches */
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
    if (k->log < w->nc)
        snprintf(p->log_id, sizeof p->log_id, "%s", w->c[k->log].id);
    else /* after every candidate log */
        snprintf(p->log_id, sizeof p->log_id, "ffffffff-ffff-ffff-ffff-ffffffffffff");
    p->entry_id = k->id;
}

static int unit_log_cmp(const void *a, const void *b)
{
    const unit *x = a, *y = b;
    if (x->log != y->log)
        return x->log < y->log ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Picks the slice: [lo, hi) holding about `budget` entries, or the single time lo. */
static void pick_slice(walk *w, const unit *u, size_t n)
{
    int64_t top = INT64_MIN; /* the largest time any unit holds inside the window */
    for (size_t i = 0; i < n; i++) {
        int64_t m = u[i].q[NQ] < w->q->end_ns ? u[i].q[NQ] : w->q->end_ns - 1;
        top = m > top ? m : top;
    }
    double budget = (double)w->q->budget;
    /* Nothing lies below the smallest time of any unit: start the slice there. */
    int64_t bottom = INT64_MAX;
    for (size_t i = 0; i < n; i++)
        bottom = u[i].q[0] < bottom ? u[i].q[0] : bottom;
    if (bottom > w->lo)
        w->lo = bottom;
    if (slice_est(u, n, w->lo, w->lo + 1) > budget && w->q->budget > 0) {
        w->one_time = true;
        return;
    }
    if (slice_est(u, n, w->lo, top) + 1 <= budget || top == INT64_MAX) {
        w->hi = top == INT64_MAX ? INT64_MAX : top + 1; /* everything that is left */
        return;
    }
    int64_t a = w->lo + 1, b = top + 1;     /* est(a) <= budget < est(b) */
    while ((uint64_t)b - (uint64_t)a > 1) { /* the span may exceed INT64_MAX */
        int64_t m = (int64_t)((uint64_t)a + ((uint64_t)b - (uint64_t)a) / 2);
        if (slice_est(u, n, w->lo, m) <= budget)
            a = m;
        else
            b = m;
    }
    w->hi = a;
}

int emb_search(ann_store *st, const char *tenant_id, const ann_search_query *q,
               ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err)
{
    emb *s = (emb *)st;
    walk w = {.q = q, .tenant = tenant_id};
    unit *units = NULL;
    size_t nunits = 0, ucap = 0;
    int rc = -1;
    if (s->opts.admin_only)
        return ann_err_set(err, ANN_EINVAL, "store opened admin-only");
    if (!q->match || q->limit == 0 || q->budget == 0)
        return ann_err_set(err, ANN_EINVAL, "search: missing matcher, limit or budget");

    /* The candidate logs, in id order. */
    if (q->n_log_ids && !q->n_labels) {
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
    if (w.nc)
        qsort(w.c, w.nc, sizeof *w.c, cand_cmp);
    size_t keep = 0;
    for (size_t i = 0; i < w.nc; i++) {
        cand c = {.bfd = -1};
        memcpy(c.id, w.c[i].id, sizeof c.id);
        if (q->n_log_ids && q->n_labels) { /* both: the labelled logs that are named */
            bool named = false;
            for (size_t k = 0; k < q->n_log_ids && !named; k++)
                named = strcmp(q->log_ids[k], c.id) == 0;
            if (!named)
                continue;
        }
        /* An open log is read as it is; another by its summary, if it has one. */
        c.h = emb_log_peek(s, tenant_id, c.id);
        if (!c.h) {
            int r = emb_summary_get(s, tenant_id, c.id, &c.sum, &c.sb, &c.nsb, err);
            if (r < 0)
                goto done;
            if (r == 1) {
                w.c[keep++] = c;
                continue;
            }
        }
        ann_err e;
        if (!c.h && emb_log_acquire(s, tenant_id, c.id, &c.h, &e) != 0) {
            if (e.code == ANN_ENOTFOUND)
                continue; /* deleted meanwhile: nothing of it is searched */
            *err = e;
            goto done;
        }
        w.c[keep++] = c;
    }
    w.nc = keep;

    w.lo = q->start_ns;
    if (q->has_cursor) {
        cursor_place(&w);
        /* A cursor past every log at its time means that time is done. */
        int64_t from = q->cursor.time_ns;
        if (w.cursor.log >= w.nc) {
            if (from == INT64_MAX) {
                rc = 0;
                goto done;
            }
            from++;
        }
        if (from > w.lo)
            w.lo = from;
    }
    res->resume = q->has_cursor ? q->cursor : (ann_search_pos){.time_ns = INT64_MIN};
    if (w.lo >= q->end_ns) {
        rc = 0; /* nothing is left in the window */
        goto done;
    }
    for (uint32_t i = 0; i < w.nc; i++)
        log_units(&w, i, &units, &nunits, &ucap);
    if (nunits == 0) {
        rc = 0;
        goto done;
    }
    pick_slice(&w, units, nunits);

    /* Examine the slice: in the one-time case in (log, id) order, stopping at the budget. */
    w.hp.cap = q->limit;
    w.hp.v = ann_xmalloc(w.hp.cap * sizeof *w.hp.v);
    qsort(units, nunits, sizeof *units, unit_log_cmp);
    bool cut = false; /* one_time: the budget stopped the walk of the time lo */
    for (size_t ui = 0; ui < nunits && !cut; ui++) {
        const unit *u = &units[ui];
        if (w.one_time ? (u->q[0] > w.lo || u->q[NQ] < w.lo) : (u->q[NQ] < w.lo || u->q[0] >= w.hi))
            continue;
        w.log = u->log;
        if (read_unit(s, &w, u->log, u->sb, u->first, u->last, examine, &w, err) != 0)
            goto done;
        if (w.one_time && w.examined >= q->budget)
            cut = true;
    }
    res->examined = w.examined;

    /* Every key examined is final: answer the smallest ones. */
    if (w.hp.n)
        qsort(w.hp.v, w.hp.n, sizeof *w.hp.v, key_qcmp);
    size_t given = 0;
    for (; given < w.hp.n; given++) {
        key *k = &w.hp.v[given];
        hit_ctx hc = {&w, k->log, visit, ud, false};
        size_t sb = w.c[k->log].h ? 0 : sum_block_of(&w.c[k->log], k->id);
        if (read_unit(s, &w, k->log, sb, k->id, k->id, give_hit, &hc, err) != 0)
            goto done;
        if (hc.refused)
            break;
    }
    if (given < w.hp.n || w.hp.dropped) {
        /* A page's worth: continue after the last hit answered. */
        res->more = true;
        if (given > 0)
            set_pos(&w, &w.hp.v[given - 1], &res->resume);
    } else if (w.one_time) {
        res->more = true;
        key end = cut ? w.last_seen : (key){w.lo, (uint32_t)w.nc, UINT64_MAX};
        set_pos(&w, &end, &res->resume);
    } else if (w.hi != INT64_MAX && w.hi < q->end_ns) {
        /* The rest of the walk starts at hi, if any unit reaches it. */
        bool beyond = false;
        for (size_t i = 0; i < nunits && !beyond; i++)
            beyond = units[i].q[NQ] >= w.hi;
        if (beyond) {
            res->more = true;
            key below = {w.hi - 1, (uint32_t)w.nc, UINT64_MAX};
            set_pos(&w, &below, &res->resume);
        }
    }
    rc = 0;
done:
    for (size_t i = 0; i < w.nc; i++) {
        if (w.c[i].h)
            emb_log_release(s, w.c[i].h);
        if (w.c[i].sum)
            emb_summary_release(s, w.c[i].sum);
        if (w.c[i].view_first)
            ann_blk_view_release(&w.c[i].view);
        if (w.c[i].bfd >= 0)
            close(w.c[i].bfd);
    }
    free(w.c);
    free(w.hp.v);
    free(units);
    return rc;
}
