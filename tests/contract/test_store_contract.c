/*
 * The storage port's contract, run against every backend: the same random archive is
 * written to each, and the tenant-wide reads (ListLogs, SearchLogEntries walks with tiny
 * pages and tiny work budgets, reads with revocation records) must give exactly what a
 * brute-force model of the contract computes. Pages and budgets may cut a walk anywhere;
 * the concatenated walk must still be every match, once, in order.
 *
 * Backends: the memory reference (tests/support/memstore.c) and the embedded store; built
 * with ANN_CONTRACT_PG (test_pg_contract), the PostgreSQL read model's reads through
 * tests/support/pgstore.c; with ANN_CONTRACT_DISTRIBUTED (test_distributed_contract), the
 * distributed backend with a sequencer and a projector on the real engines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "domain/body.h"
#include "domain/integrity.h"
#include "memstore.h"
#include "store/embedded/embedded.h"
#ifdef ANN_CONTRACT_DISTRIBUTED
#include <pthread.h>

#include "projector/projector.h"
#include "sequencer/sequencer.h"
#include "store/distributed/distributed.h"
#endif
#ifdef ANN_CONTRACT_PG
#include "pgstore.h"
#endif

#define NLOGS 14
#define MAXE 400

typedef struct ment {
    uint64_t id;
    int64_t t, it;
    char text[96];
    char label[24];
    bool redacted;
    const char *reason;
} ment;

typedef struct mlog {
    char id[ANN_UUID_LEN + 1];
    int tenant;
    int64_t create;
    char job[8];
    ment e[MAXE];
    size_t n;
    bool deleted;
} mlog;

typedef struct model {
    mlog logs[NLOGS];
    ann_tenant t[2];
    unsigned seed;
} model;

static const char *WORDS[] = {"alpha",  "Beta", "gamma", "DELTA", "eps",  "zeta9",
                              "needle", "ab",   "x",     "Alpha", "béta", "🚀"};

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

/* The body as the API layer stores it: labels (field 23) then text (field 30). */
static void body_of(const ment *e, ann_buf *b)
{
    b->len = 0;
    if (e->label[0]) {
        ann_buf lab = ANN_BUF_INIT;
        ann_buf_add_len_field(&lab, 1, "tag", 3);
        ann_buf_add_len_field(&lab, 2, e->label, strlen(e->label));
        ann_buf_add_len_field(b, 23, lab.data, lab.len);
        ann_buf_release(&lab);
    }
    ann_buf_add_len_field(b, 30, e->text, strlen(e->text));
}

static void log_labels(const mlog *l, ann_buf *b)
{
    ann_buf lab = ANN_BUF_INIT;
    b->len = 0;
    ann_buf_add_len_field(&lab, 1, "job", 3);
    ann_buf_add_len_field(&lab, 2, l->job, strlen(l->job));
    ann_buf_add_len_field(b, 2, lab.data, lab.len);
    ann_buf_release(&lab);
}

static void make_model(model *m, unsigned seed)
{
    memset(m, 0, sizeof *m);
    m->seed = seed;
    unsigned s = seed;
    for (int i = 0; i < NLOGS; i++) {
        mlog *l = &m->logs[i];
        snprintf(l->id, sizeof l->id, "%08x-0000-4000-8000-%012d", rnd(&s) * 7919u + (unsigned)i,
                 i);
        l->tenant = i % 5 == 4 ? 1 : 0;
        l->create = 1000 + (int64_t)(rnd(&s) % 5); /* ties on purpose */
        snprintf(l->job, sizeof l->job, "j%d", i % 3);
        l->n = 50 + rnd(&s) % (MAXE - 50);
        int64_t base = (int64_t)(rnd(&s) % 300);
        for (size_t k = 0; k < l->n; k++) {
            ment *e = &l->e[k];
            e->id = k + 1;
            /* Mostly increasing, with jitter and many equal times across logs. */
            e->t = base + (int64_t)k / 2 + (int64_t)(rnd(&s) % 7) - 3;
            if (rnd(&s) % 50 == 0)
                e->t = INT64_MIN + 5; /* far out of order */
            e->it = 10 + (int64_t)k;
            snprintf(e->text, sizeof e->text, "line %zu %s %s end", k, WORDS[rnd(&s) % 12],
                     WORDS[rnd(&s) % 12]);
            if (rnd(&s) % 9 == 0)
                snprintf(e->label, sizeof e->label, "L-%s", WORDS[rnd(&s) % 12]);
        }
    }
}

static void write_model(ann_store *st, model *m)
{
    ann_err err;
    uint8_t k0[32], k1[32];
    memset(k0, 1, 32);
    memset(k1, 2, 32);
    assert_int_equal(ann_store_tenant_create(st, "t0", k0, &m->t[0], &err), 0);
    assert_int_equal(ann_store_tenant_create(st, "t1", k1, &m->t[1], &err), 0);
    ann_buf b = ANN_BUF_INIT, labels = ANN_BUF_INIT;
    for (int i = 0; i < NLOGS; i++) {
        mlog *l = &m->logs[i];
        log_labels(l, &labels);
        assert_int_equal(ann_store_log_create(st, m->t[l->tenant].id, l->id, labels.data,
                                              labels.len, l->create, &err),
                         0);
        /* In a few appends, so units and frames have several boundaries. */
        for (size_t k = 0; k < l->n;) {
            size_t n = 1 + (size_t)(l->n * 7 % 97);
            if (k + n > l->n)
                n = l->n - k;
            ann_entry *es = calloc(n, sizeof *es);
            uint8_t **bodies = calloc(n, sizeof *bodies);
            char(*iids)[16] = calloc(n, 16);
            uint64_t *ids = calloc(n, sizeof *ids);
            for (size_t j = 0; j < n; j++) {
                const ment *e = &l->e[k + j];
                body_of(e, &b);
                bodies[j] = malloc(b.len);
                memcpy(bodies[j], b.data, b.len);
                snprintf(iids[j], 16, "i%zu", k + j);
                es[j] = (ann_entry){.time_ns = e->t,
                                    .insert_time_ns = e->it,
                                    .insert_id = iids[j],
                                    .insert_id_len = strlen(iids[j]),
                                    .body = bodies[j],
                                    .body_len = b.len};
            }
            ann_append ap = {.tenant_id = m->t[l->tenant].id,
                             .log_id = l->id,
                             .entries = es,
                             .n = n,
                             .ids_out = ids};
            if (ann_store_append(st, &ap, &err) != 0)
                fail_msg("append: %s", err.msg);
            for (size_t j = 0; j < n; j++) {
                assert_int_equal(ids[j], k + j + 1);
                free(bodies[j]);
            }
            free(es), free(bodies), free(iids), free(ids);
            k += n;
        }
    }
    /* Revocations (two on one entry: the first record is the one reads show), a delete. */
    unsigned s = m->seed ^ 0x5a5a;
    for (int i = 0; i < NLOGS; i++) {
        mlog *l = &m->logs[i];
        uint64_t ids[8];
        size_t n = 0;
        for (int k = 0; k < 8; k++) {
            ids[n] = 1 + rnd(&s) % l->n;
            if (!l->e[ids[n] - 1].redacted) {
                l->e[ids[n] - 1].redacted = true;
                l->e[ids[n] - 1].reason = "first";
            }
            n++;
        }
        assert_int_equal(
            ann_store_revoke(st, m->t[l->tenant].id, l->id, ids, n, "actor-1", "first", 77, &err),
            0);
        assert_int_equal(
            ann_store_revoke(st, m->t[l->tenant].id, l->id, ids, 1, "actor-2", "second", 78, &err),
            0);
    }
    m->logs[3].deleted = true;
    assert_int_equal(ann_store_log_delete(st, m->t[m->logs[3].tenant].id, m->logs[3].id, &err), 0);
    ann_buf_release(&b);
    ann_buf_release(&labels);
}

/* ---- the model's answers --------------------------------------------------- */

typedef struct hit {
    int64_t t;
    char log[ANN_UUID_LEN + 1];
    uint64_t id;
} hit;

static int hit_cmp(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    int c = strcmp(x->log, y->log);
    if (c)
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

typedef struct query {
    const char *q;
    bool icase;
    const char *job; /* label filter, or NULL */
    int logs[3];     /* log_ids (indexes), -1 ends */
    int64_t start, end;
    int64_t snapshot;
} query;

static bool named(const query *qq, int i)
{
    if (qq->logs[0] < 0)
        return true;
    for (int k = 0; k < 3 && qq->logs[k] >= 0; k++)
        if (qq->logs[k] == i)
            return true;
    return false;
}

static size_t expect_hits(const model *m, int tenant, const query *qq, hit *out)
{
    ann_matcher mt;
    ann_matcher_init(&mt, (const uint8_t *)qq->q, strlen(qq->q), qq->icase);
    size_t n = 0;
    for (int i = 0; i < NLOGS; i++) {
        const mlog *l = &m->logs[i];
        if (l->deleted || l->tenant != tenant || !named(qq, i) ||
            (qq->job && strcmp(qq->job, l->job) != 0))
            continue;
        for (size_t k = 0; k < l->n; k++) {
            const ment *e = &l->e[k];
            if (e->redacted || e->t < qq->start || e->t >= qq->end || e->it > qq->snapshot)
                continue;
            bool match =
                ann_matcher_find(&mt, (const uint8_t *)e->text, strlen(e->text)) ||
                (e->label[0] && ann_matcher_find(&mt, (const uint8_t *)e->label, strlen(e->label)));
            if (match) {
                out[n].t = e->t;
                snprintf(out[n].log, sizeof out[n].log, "%s", l->id);
                out[n++].id = e->id;
            }
        }
    }
    qsort(out, n, sizeof *out, hit_cmp);
    return n;
}

/* ---- walking a backend ------------------------------------------------------ */

typedef struct walk {
    hit *v;
    size_t n, cap;
    size_t page;
} walk;

static int take(const char *log_id, const ann_entry *e, void *ud)
{
    walk *w = ud;
    if (w->page == 0)
        return 1; /* refuse: exercises the "visitor stopped" resume */
    w->page--;
    assert_true(w->n < w->cap);
    w->v[w->n].t = e->time_ns;
    snprintf(w->v[w->n].log, sizeof w->v[w->n].log, "%s", log_id);
    w->v[w->n++].id = e->entry_id;
    assert_false(e->flags & ANN_ENTRY_REDACTED);
    return 0;
}

static size_t walk_search(ann_store *st, const model *m, int tenant, const query *qq, size_t limit,
                          uint64_t budget, bool refuse_some, hit *out, size_t cap)
{
    ann_matcher mt;
    ann_matcher_init(&mt, (const uint8_t *)qq->q, strlen(qq->q), qq->icase);
    ann_label_pair lp = {(const uint8_t *)"job", 3, (const uint8_t *)qq->job,
                         qq->job ? strlen(qq->job) : 0};
    char ids[3][ANN_UUID_LEN + 1];
    size_t nids = 0;
    for (int k = 0; k < 3 && qq->logs[k] >= 0; k++) {
        const mlog *l = &m->logs[qq->logs[k]];
        if (l->deleted || l->tenant != tenant)
            continue;
        snprintf(ids[nids++], sizeof ids[0], "%s", l->id);
    }
    qsort(ids, nids, sizeof ids[0], (int (*)(const void *, const void *))strcmp);
    ann_search_query q = {.match = &mt,
                          .labels = qq->job ? &lp : NULL,
                          .n_labels = qq->job ? 1 : 0,
                          .log_ids = (const char(*)[ANN_UUID_LEN + 1]) ids,
                          .n_log_ids = nids,
                          .start_ns = qq->start,
                          .end_ns = qq->end,
                          .snapshot_ns = qq->snapshot,
                          .limit = limit,
                          .budget = budget};
    if (qq->logs[0] >= 0 && nids == 0)
        return 0; /* every named log is gone: the service answers NOT_FOUND before */
    walk w = {out, 0, cap, 0};
    unsigned s = (unsigned)limit * 31u + (unsigned)budget;
    for (int calls = 0;; calls++) {
        assert_true(calls < 100000);
        ann_search_result res;
        ann_err err;
        w.page = refuse_some && rnd(&s) % 3 == 0 ? rnd(&s) % (limit + 1) : limit;
        assert_int_equal(ann_store_search(st, m->t[tenant].id, &q, take, &w, &res, &err), 0);
        if (!res.more)
            break;
        q.has_cursor = true;
        q.cursor = res.resume;
    }
    return w.n;
}

static void check_equal(const hit *got, size_t ngot, const hit *want, size_t nwant,
                        const char *what, const query *qq, size_t limit, uint64_t budget)
{
    if (ngot != nwant)
        fail_msg("%s: query '%s' icase %d limit %zu budget %llu: %zu hits, want %zu", what, qq->q,
                 qq->icase, limit, (unsigned long long)budget, ngot, nwant);
    for (size_t i = 0; i < nwant; i++)
        if (hit_cmp(&got[i], &want[i]) != 0)
            fail_msg("%s: query '%s' limit %zu budget %llu: hit %zu is (%lld %s %llu), want "
                     "(%lld %s %llu)",
                     what, qq->q, limit, (unsigned long long)budget, i, (long long)got[i].t,
                     got[i].log, (unsigned long long)got[i].id, (long long)want[i].t, want[i].log,
                     (unsigned long long)want[i].id);
}

static void search_contract(ann_store *st, const model *m, const char *what)
{
    static hit want[NLOGS * MAXE], got[NLOGS * MAXE];
    const query qs[] = {
        {"alpha", false, NULL, {-1}, INT64_MIN, INT64_MAX, INT64_MAX},
        {"ALPHA", true, NULL, {-1}, INT64_MIN, INT64_MAX, INT64_MAX},
        {"needle", false, "j1", {-1}, INT64_MIN, INT64_MAX, INT64_MAX},
        {"a", false, NULL, {-1}, 20, 200, INT64_MAX},
        {"L-", false, NULL, {-1}, INT64_MIN, INT64_MAX, INT64_MAX}, /* labels only */
        {"🚀", false, NULL, {0, 5, 7}, INT64_MIN, INT64_MAX, 200},
        {"béta", true, NULL, {-1}, INT64_MIN, INT64_MAX, INT64_MAX},
        {"e", false, NULL, {2, 3, -1}, INT64_MIN, INT64_MAX, INT64_MAX}, /* 3 is deleted */
        {"line 1", false, "j0", {-1}, 0, INT64_MAX, 150},
        {"nothing at all", false, NULL, {-1}, INT64_MIN, INT64_MAX, INT64_MAX},
        {"TA9 NEEDLE", true, NULL, {-1}, INT64_MIN, INT64_MAX, INT64_MAX},    /* across words */
        {"100% _sure\\", false, NULL, {-1}, INT64_MIN, INT64_MAX, INT64_MAX}, /* LIKE's own */
        {"end\nL-gam", false, NULL, {-1}, INT64_MIN, INT64_MAX, INT64_MAX},   /* across strings */
    };
    /* (limit, budget): pages cut by the limit, by the budget, or by both. */
    const size_t limits[] = {1, 3, 3, 1000, 1000, 7};
    const uint64_t budgets[] = {50000, 29, 307, 29, 50000, 113};
    for (size_t qi = 0; qi < sizeof qs / sizeof qs[0]; qi++)
        for (int tenant = 0; tenant < 2; tenant++) {
            size_t nw = expect_hits(m, tenant, &qs[qi], want);
            for (size_t c = 0; c < sizeof limits / sizeof limits[0]; c++) {
                size_t ng = walk_search(st, m, tenant, &qs[qi], limits[c], budgets[c], c == 1, got,
                                        NLOGS * MAXE);
                check_equal(got, ng, want, nw, what, &qs[qi], limits[c], budgets[c]);
            }
        }
}

typedef struct lwalk {
    char ids[NLOGS][ANN_UUID_LEN + 1];
    uint64_t counts[NLOGS];
    int64_t creates[NLOGS];
    size_t n;
} lwalk;

static int take_log(const ann_log_meta *lm, void *ud)
{
    lwalk *w = ud;
    assert_true(w->n < NLOGS);
    snprintf(w->ids[w->n], sizeof w->ids[0], "%s", lm->id);
    w->counts[w->n] = lm->entry_count;
    w->creates[w->n++] = lm->create_time_ns;
    return 0;
}

static void logs_contract(ann_store *st, const model *m, const char *what)
{
    for (int tenant = 0; tenant < 2; tenant++)
        for (int withjob = 0; withjob < 2; withjob++) {
            /* The model: live logs of the tenant, create desc, id asc. */
            int order[NLOGS], n = 0;
            for (int i = 0; i < NLOGS; i++)
                if (!m->logs[i].deleted && m->logs[i].tenant == tenant &&
                    (!withjob || strcmp(m->logs[i].job, "j1") == 0))
                    order[n++] = i;
            for (int a = 0; a < n; a++)
                for (int b = a + 1; b < n; b++) {
                    const mlog *x = &m->logs[order[a]], *y = &m->logs[order[b]];
                    if (y->create > x->create ||
                        (y->create == x->create && strcmp(y->id, x->id) < 0)) {
                        int t = order[a];
                        order[a] = order[b];
                        order[b] = t;
                    }
                }
            ann_label_pair lp = {(const uint8_t *)"job", 3, (const uint8_t *)"j1", 2};
            lwalk w = {0};
            ann_logs_query q = {.labels = withjob ? &lp : NULL,
                                .n_labels = withjob ? 1 : 0,
                                .start_ns = INT64_MIN,
                                .end_ns = INT64_MAX,
                                .limit = 2};
            for (;;) { /* pages of 2, continuing after the last log given */
                size_t before = w.n;
                ann_err err;
                assert_int_equal(ann_store_logs_list(st, m->t[tenant].id, &q, take_log, &w, &err),
                                 0);
                if (w.n == before)
                    break;
                q.has_cursor = true;
                q.cursor_create_ns = w.creates[w.n - 1];
                snprintf(q.cursor_id, sizeof q.cursor_id, "%s", w.ids[w.n - 1]);
            }
            if ((int)w.n != n)
                fail_msg("%s: tenant %d: %zu logs listed, want %d", what, tenant, w.n, n);
            for (int i = 0; i < n; i++) {
                assert_string_equal(w.ids[i], m->logs[order[i]].id);
                assert_int_equal(w.counts[i], m->logs[order[i]].n);
            }
        }
}

typedef struct rcheck {
    const mlog *l;
    size_t seen;
} rcheck;

static int check_rev(const ann_entry *e, void *ud)
{
    rcheck *c = ud;
    const ment *me = &c->l->e[e->entry_id - 1];
    c->seen++;
    assert_int_equal(!!(e->flags & ANN_ENTRY_REDACTED), me->redacted);
    if (me->redacted) {
        assert_non_null(e->revocation);
        assert_string_equal(e->revocation->reason, "first");
        assert_string_equal(e->revocation->actor, "actor-1");
        assert_int_equal(e->revocation->time_ns, 77);
        /* Empty, or (a store with integrity) the body_hash field alone. */
        assert_true(e->body_len == 0 || ann_integrity_is_hash_field(e->body, e->body_len));
    } else {
        assert_null(e->revocation);
    }
    return 0;
}

static void reads_contract(ann_store *st, const model *m)
{
    for (int i = 0; i < NLOGS; i++) {
        const mlog *l = &m->logs[i];
        if (l->deleted)
            continue;
        rcheck c = {l, 0};
        ann_err err;
        assert_int_equal(
            ann_store_read_after(st, m->t[l->tenant].id, l->id, 0, 0, check_rev, &c, &err), 0);
        assert_int_equal(c.seen, l->n);
    }
}

/* ---- keys (v3): every backend answers the same ---- */

typedef struct key_rows {
    ann_key v[16];
    size_t n;
} key_rows;

static int take_key(const ann_key *k, void *ud)
{
    key_rows *r = ud;
    if (r->n < 16)
        r->v[r->n++] = *k;
    return 0;
}

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void keys_contract(ann_store *st, const model *m, const char *what)
{
    if (st->ops->version < 3)
        return; /* the read model's double has no keys (one per tenant, an admin key) */
    ann_err err;
    ann_tenant t;
    uint8_t k0[32], h[32], h2[32], h3[32], h4[32];
    memset(k0, 1, 32);
    /* The key tenant_create made: the tenant's admin key. */
    assert_int_equal(ann_store_tenant_by_key(st, k0, &t, &err), 0);
    assert_string_equal(t.id, m->t[0].id);
    assert_string_equal(t.key_name, ANN_ADMIN_KEY_NAME);
    assert_int_equal(t.roles, ANN_ROLE_ADMIN);
    assert_int_equal(t.expire_ns, 0);
    char admin_id[ANN_UUID_LEN + 1];
    snprintf(admin_id, sizeof admin_id, "%s", t.key_id);
    assert_int_equal(strlen(admin_id), ANN_UUID_LEN);

    /* A named key with two roles. */
    memset(h, 0x31, 32), memset(h2, 0x32, 32), memset(h3, 0x33, 32), memset(h4, 0x34, 32);
    int64_t now = wall_now();
    ann_key_spec sp = {.tenant_name = "t0",
                       .name = "ci",
                       .roles = ANN_ROLE_WRITER | ANN_ROLE_READER,
                       .now_ns = now};
    memcpy(sp.key_hash, h, 32);
    ann_key ci;
    if (ann_store_key_create(st, &sp, &ci, &err) != 0)
        fail_msg("%s: key create: %s", what, err.msg);
    assert_string_equal(ci.name, "ci");
    assert_string_equal(ci.tenant_id, m->t[0].id);
    assert_int_equal(ci.roles, ANN_ROLE_WRITER | ANN_ROLE_READER);
    assert_int_equal(strlen(ci.id), ANN_UUID_LEN);
    assert_string_not_equal(ci.id, admin_id);
    assert_int_equal(ann_store_tenant_by_key(st, h, &t, &err), 0);
    assert_string_equal(t.id, m->t[0].id);
    assert_string_equal(t.name, "t0");
    assert_string_equal(t.key_id, ci.id);
    assert_string_equal(t.key_name, "ci");
    assert_int_equal(t.roles, ANN_ROLE_WRITER | ANN_ROLE_READER);

    /* Names are unique in a tenant, not across tenants; the tenant must exist. */
    memcpy(sp.key_hash, h2, 32);
    assert_int_not_equal(ann_store_key_create(st, &sp, NULL, &err), 0);
    assert_int_equal(err.code, ANN_EEXISTS);
    sp.tenant_name = "no-such-tenant";
    assert_int_not_equal(ann_store_key_create(st, &sp, NULL, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    sp.tenant_name = "t1";
    sp.roles = ANN_ROLE_REDACTOR;
    ann_key other;
    assert_int_equal(ann_store_key_create(st, &sp, &other, &err), 0);
    assert_string_equal(other.tenant_id, m->t[1].id);
    /* Without a name, a key is named by its id; the expiry is kept to the nanosecond. */
    sp.tenant_name = "t0";
    sp.name = NULL;
    sp.roles = ANN_ROLE_READER;
    sp.expire_ns = now + 123456789;
    sp.now_ns = now + 1;
    memcpy(sp.key_hash, h3, 32);
    ann_key anon;
    assert_int_equal(ann_store_key_create(st, &sp, &anon, &err), 0);
    assert_string_equal(anon.name, anon.id);
    assert_int_equal(anon.expire_ns, now + 123456789);
    assert_int_equal(ann_store_tenant_by_key(st, h3, &t, &err), 0);
    assert_int_equal(t.expire_ns, now + 123456789); /* found: the caller refuses it once due */
    /* Bad specs never reach the backend. */
    sp.roles = 0;
    memcpy(sp.key_hash, h4, 32);
    assert_int_not_equal(ann_store_key_create(st, &sp, NULL, &err), 0);
    assert_int_equal(err.code, ANN_EINVAL);
    sp.roles = ANN_ROLE_READER;
    sp.name = "has/slash";
    assert_int_not_equal(ann_store_key_create(st, &sp, NULL, &err), 0);
    assert_int_equal(err.code, ANN_EINVAL);

    /* Listing: the tenant's keys only, oldest first, with their last use. */
    key_rows r = {.n = 0};
    assert_int_equal(ann_store_key_list(st, "t0", take_key, &r, &err), 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.v[0].id, admin_id);
    assert_string_equal(r.v[1].id, ci.id);
    assert_string_equal(r.v[2].id, anon.id);
    assert_true(r.v[1].last_used_ns > 0); /* tenant_by_key used it above */
    for (size_t i = 0; i < r.n; i++)
        assert_string_equal(r.v[i].tenant_id, m->t[0].id);
    r.n = 0;
    assert_int_equal(ann_store_key_list(st, "t1", take_key, &r, &err), 0);
    assert_int_equal(r.n, 2);                 /* its admin key and "ci" */
    assert_int_equal(r.v[1].last_used_ns, 0); /* never used */
    assert_int_not_equal(ann_store_key_list(st, "no-such-tenant", take_key, &r, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);

    /* Revocation: refused at once by this store, as an unknown key; harmless twice. */
    ann_key rk;
    assert_int_equal(ann_store_key_revoke(st, ci.id, now + 5, &rk, &err), 0);
    assert_string_equal(rk.name, "ci");
    assert_true(rk.revoke_ns > 0);
    assert_int_not_equal(ann_store_tenant_by_key(st, h, &t, &err), 0);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_int_equal(ann_store_key_revoke(st, ci.id, now + 6, &rk, &err), 0);
    assert_int_equal(rk.revoke_ns, now + 5);
    assert_int_not_equal(
        ann_store_key_revoke(st, "00000000-0000-4000-8000-000000000000", now, NULL, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_int_not_equal(ann_store_key_revoke(st, "not-an-id", now, NULL, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    r.n = 0;
    assert_int_equal(ann_store_key_list(st, "t0", take_key, &r, &err), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.v[1].revoke_ns, now + 5);
    /* The other keys are untouched, in both tenants; the name stays taken. */
    assert_int_equal(ann_store_tenant_by_key(st, h2, &t, &err), 0);
    assert_string_equal(t.id, m->t[1].id);
    assert_int_equal(ann_store_tenant_by_key(st, k0, &t, &err), 0);
    sp.name = "ci";
    assert_int_not_equal(ann_store_key_create(st, &sp, NULL, &err), 0);
    assert_int_equal(err.code, ANN_EEXISTS);
}

/* Retention and legal hold (store.h v4), with the caller's clock: a day of 1,000 ns. */
static void lifecycle_contract(ann_store *st, const char *what)
{
    const int64_t day = 1000, t0 = 1700000000000000000LL;
    ann_err err;
    ann_tenant a, b;
    uint8_t ka[32], kb[32];
    memset(ka, 0x51, 32);
    memset(kb, 0x52, 32);
    assert_int_equal(ann_store_tenant_create(st, "life-a", ka, &a, &err), 0);
    assert_int_equal(ann_store_tenant_create(st, "life-b", kb, &b, &err), 0);
    static const char *ids[] = {
        "a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002",
        "a0000000-0000-4000-8000-000000000003", "a0000000-0000-4000-8000-000000000004",
        "b0000000-0000-4000-8000-000000000005"};
    const int32_t days[] = {1, 0, 1, 5, 1};
    for (int i = 0; i < 5; i++) {
        ann_log_spec spec = {.tenant_id = i == 4 ? b.id : a.id,
                             .log_id = ids[i],
                             .now_ns = t0,
                             .retention_days = days[i]};
        /* waited for: a backend may complete it later, on another thread */
        ann_store_waiter cw;
        ann_store_waiter_init(&cw);
        ann_store_log_create_spec_async(st, &spec, ann_store_waiter_done, &cw);
        if (ann_store_waiter_wait(&cw, &err) != 0)
            fail_msg("%s: create %d: %s", what, i, err.msg);
    }
    ann_log_spec bad = {.tenant_id = a.id,
                        .log_id = "a0000000-0000-4000-8000-0000000000ff",
                        .now_ns = t0,
                        .retention_days = -1};
    ann_store_waiter bw;
    ann_store_waiter_init(&bw);
    ann_store_log_create_spec_async(st, &bad, ann_store_waiter_done, &bw);
    assert_int_equal(ann_store_waiter_wait(&bw, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);

    ann_log_meta lm = {0};
    assert_int_equal(ann_store_log_get(st, a.id, ids[3], &lm, &err), 0);
    assert_int_equal(lm.retention_days, 5);
    assert_false(lm.legal_hold);
    assert_false(lm.has_hold_change);
    ann_log_meta_release(&lm);

    /* Hold ids[2]: audited on the log; DeleteLog refused; another tenant cannot see it. */
    assert_int_equal(ann_store_log_set_hold(st, a.id, ids[2], true, "tenant:life-a/key:admin",
                                            "case 7", t0, &err),
                     0);
    assert_int_not_equal(
        ann_store_log_set_hold(st, b.id, ids[2], true, "tenant:life-b/key:admin", "x", t0, &err),
        0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_int_equal(ann_store_log_get(st, a.id, ids[2], &lm, &err), 0);
    assert_true(lm.legal_hold);
    assert_true(lm.has_hold_change);
    assert_true(lm.last_hold_change.hold);
    assert_string_equal(lm.last_hold_change.actor, "tenant:life-a/key:admin");
    assert_string_equal(lm.last_hold_change.reason, "case 7");
    assert_int_equal(lm.last_hold_change.time_ns, t0);
    ann_log_meta_release(&lm);
    assert_int_not_equal(ann_store_log_delete(st, a.id, ids[2], &err), 0);
    assert_int_equal(err.code, ANN_EPRECOND);

    /* A write at t0 + 3 days keeps ids[3] (5 days) until t0 + 8 days. */
    ann_entry e = {.time_ns = t0 + 3 * day,
                   .insert_time_ns = t0 + 3 * day,
                   .insert_id = "w1",
                   .insert_id_len = 2};
    uint64_t got;
    ann_append ap = {.tenant_id = a.id, .log_id = ids[3], .entries = &e, .n = 1, .ids_out = &got};
    assert_int_equal(ann_store_append(st, &ap, &err), 0);
    /* The held log still takes revocations. */
    ap.log_id = ids[2];
    e.insert_id = "w2";
    assert_int_equal(ann_store_append(st, &ap, &err), 0);
    assert_int_equal(ann_store_revoke(st, a.id, ids[2], &got, 1, "x", "leak", t0, &err), 0);

    ann_retention_stats rs;
    const size_t per_pass = 100;
    /* t0 + 2 days: ids[0] and ids[4] (1 day, no writes) go; the held ids[2] (written at
     * t0 + 3 days anyway) stays; ids[1] has no period (the tenant's: forever). */
    assert_int_equal(ann_store_retention_pass(st, t0 + 2 * day, day, per_pass, &rs, &err), 0);
    assert_int_equal(rs.deleted, 2);
    bool alive[5];
    for (int i = 0; i < 5; i++)
        alive[i] = ann_store_log_get(st, i == 4 ? b.id : a.id, ids[i], &lm, &err) == 0,
        ann_log_meta_release(&lm);
    assert_false(alive[0]);
    assert_true(alive[1]);
    assert_true(alive[2]);
    assert_true(alive[3]);
    assert_false(alive[4]);
    /* The tenant's period now applies to ids[1]; ids[3] was written at t0 + 3 days. */
    assert_int_not_equal(ann_store_tenant_set_retention(st, "no-such", 1, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_int_equal(ann_store_tenant_set_retention(st, "life-a", 1, &err), 0);
    assert_int_equal(ann_store_retention_pass(st, t0 + 7 * day, day, per_pass, &rs, &err), 0);
    assert_int_equal(rs.deleted, 1);
    assert_int_not_equal(ann_store_log_get(st, a.id, ids[1], &lm, &err), 0);
    assert_int_equal(ann_store_log_get(st, a.id, ids[3], &lm, &err), 0);
    ann_log_meta_release(&lm);
    assert_int_equal(ann_store_log_get(st, a.id, ids[2], &lm, &err), 0);
    ann_log_meta_release(&lm);
    /* Released, the held log goes at the next pass; ids[3] at t0 + 8 days and after. */
    assert_int_equal(
        ann_store_log_set_hold(st, a.id, ids[2], false, "tenant:life-a/key:admin", "", t0, &err),
        0);
    assert_int_equal(ann_store_log_get(st, a.id, ids[2], &lm, &err), 0);
    assert_false(lm.legal_hold);
    assert_false(lm.last_hold_change.hold);
    assert_null(lm.last_hold_change.reason);
    ann_log_meta_release(&lm);
    assert_int_equal(ann_store_retention_pass(st, t0 + 8 * day - 1, day, per_pass, &rs, &err), 0);
    assert_int_equal(rs.deleted, 1); /* ids[2] only */
    assert_int_equal(ann_store_log_get(st, a.id, ids[3], &lm, &err), 0);
    ann_log_meta_release(&lm);
    assert_int_equal(ann_store_retention_pass(st, t0 + 8 * day + 1, day, per_pass, &rs, &err), 0);
    assert_int_equal(rs.deleted, 1);
    assert_int_not_equal(ann_store_log_get(st, a.id, ids[3], &lm, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
}

static void run_contract(ann_store *st, const char *what, unsigned seed)
{
    model *m = malloc(sizeof *m);
    make_model(m, seed);
    write_model(st, m);
    search_contract(st, m, what);
    logs_contract(st, m, what);
    reads_contract(st, m);
    keys_contract(st, m, what);
    free(m);
}

static void memory_backend(void **state)
{
    (void)state;
    {
        ann_store *st = ann_memstore_new();
        lifecycle_contract(st, "memory");
        ann_store_close(st);
    }
    for (unsigned seed = 1; seed <= 3; seed++) {
        ann_store *st = ann_memstore_new();
        run_contract(st, "memory", seed);
        ann_store_close(st);
    }
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void embedded_backend(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 2; seed++) {
        char dir[64];
        snprintf(dir, sizeof dir, "/tmp/ann-contract-XXXXXX");
        assert_non_null(mkdtemp(dir));
        ann_store_embedded_opts o;
        ann_store_embedded_opts_init(&o);
        o.durability = ANN_DURABILITY_NONE;
        o.seal_idle_ms = 20; /* idle logs are sealed into blocks within a tick */
        ann_store *st = NULL;
        ann_err err;
        assert_int_equal(ann_store_embedded_open(dir, &o, &st, &err), 0);
        if (seed == 1)
            lifecycle_contract(st, "embedded");
        run_contract(st, "embedded", seed);
        sleep(2); /* every log sealed: the reopened store searches them by summary */
        ann_store_close(st);
        /* And again after a reopen: counts, labels and revocation records from disk. */
        assert_int_equal(ann_store_embedded_open(dir, &o, &st, &err), 0);
        model *m = malloc(sizeof *m);
        make_model(m, seed);
        uint8_t k0[32];
        memset(k0, 1, 32);
        assert_int_equal(ann_store_tenant_by_key(st, k0, &m->t[0], &err), 0);
        memset(k0, 2, 32);
        assert_int_equal(ann_store_tenant_by_key(st, k0, &m->t[1], &err), 0);
        { /* keys_contract's keys, from disk: the revoked one stays refused */
            ann_tenant kt;
            memset(k0, 0x31, 32);
            assert_int_not_equal(ann_store_tenant_by_key(st, k0, &kt, &err), 0);
            assert_int_equal(err.code, ANN_EUNAUTH);
            memset(k0, 0x32, 32);
            assert_int_equal(ann_store_tenant_by_key(st, k0, &kt, &err), 0);
            assert_string_equal(kt.key_name, "ci");
            assert_int_equal(kt.roles, ANN_ROLE_REDACTOR);
        }
        /* replay the model's revocation marks without touching the store */
        unsigned s = seed ^ 0x5a5a;
        for (int i = 0; i < NLOGS; i++)
            for (int k = 0; k < 8; k++) {
                uint64_t id = 1 + rnd(&s) % m->logs[i].n;
                if (!m->logs[i].e[id - 1].redacted) {
                    m->logs[i].e[id - 1].redacted = true;
                    m->logs[i].e[id - 1].reason = "first";
                }
            }
        m->logs[3].deleted = true;
        for (int i = 0; i < NLOGS; i++) { /* sealed: the searches below read summaries */
            char blk[256];
            snprintf(blk, sizeof blk, "%s/logs/%s/%s.blk", dir, m->t[m->logs[i].tenant].id,
                     m->logs[i].id);
            if (!m->logs[i].deleted && access(blk, F_OK) != 0)
                fail_msg("log %d was not sealed", i);
        }
        search_contract(st, m, "embedded after reopen");
        logs_contract(st, m, "embedded after reopen");
        reads_contract(st, m);
        /* Revoking sealed entries rewrites blocks: searches still agree. */
        for (int i = 0; i < NLOGS; i += 3) {
            mlog *l = &m->logs[i];
            if (l->deleted)
                continue;
            uint64_t id = 1 + (uint64_t)(i * 37) % l->n;
            if (!l->e[id - 1].redacted) {
                l->e[id - 1].redacted = true;
                l->e[id - 1].reason = "first";
                assert_int_equal(ann_store_revoke(st, m->t[l->tenant].id, l->id, &id, 1, "actor-1",
                                                  "first", 77, &err),
                                 0);
            }
        }
        search_contract(st, m, "embedded after revoking sealed entries");
        reads_contract(st, m);
        free(m);
        ann_store_close(st);
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
}

#ifdef ANN_CONTRACT_PG
/* The PostgreSQL read model's reads (tests/support/pgstore.c), against the real engine:
 * built as test_pg_contract (tests/projector, label engines). $ANN_PG_DSN overrides the
 * connection; each run uses its own schema and drops it. */
static void pg_backend(void **state)
{
    (void)state;
    const char *dsn = getenv("ANN_PG_DSN");
    if (!dsn || !*dsn)
        dsn = "host=127.0.0.1 port=5432 user=annals password=annals dbname=annals";
    for (unsigned seed = 1; seed <= 2; seed++) {
        char ns[40];
        snprintf(ns, sizeof ns, "t_pg_contract_%d_%u", (int)getpid(), seed);
        ann_err err;
        ann_store *st = ann_pgstore_new(dsn, ns, &err);
        if (!st)
            fail_msg("postgres: %s", err.msg);
        run_contract(st, "postgres read model", seed);
        ann_store_close(st);
    }
}
#endif

#ifdef ANN_CONTRACT_DISTRIBUTED
/* The distributed backend as an API server sees it, with a sequencer and both projections
 * (browse and search, each its own consumer) running beside it on the real engines (built as
 * test_distributed_contract, label engines). Each seed gets a namespace of its own. */
typedef struct role {
    pthread_t t;
    int rc;
    ann_err err;
    volatile int *stop;
    ann_kafka_config kafka;
    ann_cql_config *cql;
    const char *conninfo;
    int kind; /* 0 sequencer, 1 projector, 2 search projector */
} role;

static void *role_main(void *p)
{
    role *r = p;
    if (r->kind) {
        ann_projector_config c = {.kafka = r->kafka,
                                  .conninfo = r->conninfo,
                                  .kind =
                                      r->kind == 2 ? ANN_PROJECTOR_SEARCH : ANN_PROJECTOR_BROWSE};
        r->rc = ann_projector_run(&c, r->stop, &r->err);
    } else {
        ann_sequencer_config c = {.kafka = r->kafka,
                                  .archive = {.cql = r->cql, .keyspace = r->kafka.ns},
                                  .instance = "contract",
                                  .dynamic = true};
        r->rc = ann_sequencer_run(&c, r->stop, &r->err);
    }
    return NULL;
}

static void distributed_backend(void **state)
{
    (void)state;
    const char *dsn = getenv("ANN_PG_DSN");
    if (!dsn || !*dsn)
        dsn = "host=127.0.0.1 port=5432 user=annals password=annals dbname=annals";
    for (unsigned seed = 1; seed <= 2; seed++) {
        char ns[40];
        snprintf(ns, sizeof ns, "t_dc_%d_%u", (int)getpid(), seed);
        ann_store_distributed_opts o = {
            .kafka = {.ns = ns, .partitions = 4},
            .cql = {.contact_points = "127.0.0.1:9042",
                    .username = "cassandra",
                    .password = "cassandra"},
            .conninfo = dsn,
        };
        ann_kafka_config_defaults(&o.kafka);
        ann_err err;
        assert_int_equal(ann_kafka_ensure_topics(&o.kafka, &err), 0);
        volatile int stop = 0;
        role roles[3];
        for (int i = 0; i < 3; i++) {
            roles[i] =
                (role){.stop = &stop, .kafka = o.kafka, .cql = &o.cql, .conninfo = dsn, .kind = i};
            pthread_create(&roles[i].t, NULL, role_main, &roles[i]);
        }
        ann_store *st = NULL;
        if (ann_store_distributed_open(&o, &st, &err) != 0)
            fail_msg("distributed: %s", err.msg);
        if (seed == 1)
            lifecycle_contract(st, "distributed");
        run_contract(st, "distributed", seed);
        ann_store_close(st);
        stop = 1;
        for (int i = 0; i < 3; i++) {
            pthread_join(roles[i].t, NULL);
            if (roles[i].rc != 0)
                fail_msg("%s: %s",
                         i == 2 ? "search projector"
                         : i    ? "projector"
                                : "sequencer",
                         roles[i].err.msg);
        }
    }
}
#endif

int main(void)
{
#if defined(ANN_CONTRACT_DISTRIBUTED)
    (void)embedded_backend; /* run by test_store_contract */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_backend),
        cmocka_unit_test(distributed_backend),
    };
#elif defined(ANN_CONTRACT_PG)
    (void)embedded_backend; /* run by test_store_contract */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_backend),
        cmocka_unit_test(pg_backend),
    };
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_backend),
        cmocka_unit_test(embedded_backend),
    };
#endif
    return cmocka_run_group_tests(tests, NULL, NULL);
}
