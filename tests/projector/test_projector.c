/*
 * The projector's apply step and the PostgreSQL read model, against the real engines.
 *
 * The main test writes a random archive (two tenants, several logs, writes, revocations,
 * a deleted log) to the memory reference store (tests/support/memstore.c) and, as the
 * sequencer would, as Committed records; the records are applied to PostgreSQL in random
 * batches, and every read (list windows, cursors, snapshots, filters and budgets,
 * read_after, ListLogs filters and cursors, search walks with small pages and budgets)
 * must give exactly what the reference gives. Then: idempotent re-apply, a replayed write
 * after its revoke, delete, the zombie fence, NOTIFY through the listener, the role over
 * real Kafka topics, and a throughput measurement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/random.h"
#include "domain/event.h"
#include "memstore.h"
#include "pg/pg.h"
#include "pg/readmodel.h"
#include "pg/schema.h"
#include "projector/projector.h"

typedef Annals__Events__V1__Committed committed;

static const char *dsn(void)
{
    const char *d = getenv("ANN_PG_DSN");
    return d && *d ? d : "host=127.0.0.1 port=5432 user=annals password=annals dbname=annals";
}

static const char *brokers(void)
{
    const char *b = getenv("ANN_KAFKA_BOOTSTRAP");
    return b && *b ? b : "127.0.0.1:9092";
}

#define NPART 3

/* ---- packed Committed records, as they travel ---- */

typedef struct rec {
    uint8_t *data;
    size_t len;
    int32_t partition;
    int64_t offset;
} rec;

typedef struct recs {
    rec *v;
    size_t n, cap;
    int64_t next[NPART];
} recs;

static void recs_add(recs *rs, committed *c)
{
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(c->tenant_id, c->log_id, key);
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 64;
        rs->v = realloc(rs->v, rs->cap * sizeof *rs->v);
    }
    rec *r = &rs->v[rs->n++];
    r->len = annals__events__v1__committed__get_packed_size(c);
    r->data = malloc(r->len + 1);
    annals__events__v1__committed__pack(c, r->data);
    r->partition = ann_event_partition(key, strlen(key), NPART);
    r->offset = rs->next[r->partition]++;
}

static void recs_free(recs *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->v[i].data);
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}

/* Applies records [from, to) as one batch; returns apply's result. */
static int apply_range(ann_projector *p, const recs *rs, size_t from, size_t to, ann_err *err)
{
    size_t n = to - from;
    ann_projector_record *v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const rec *r = &rs->v[from + i];
        v[i] = (ann_projector_record){r->partition, r->offset,
                                      annals__events__v1__committed__unpack(NULL, r->len, r->data)};
        assert_non_null(v[i].rec);
    }
    int rc = ann_projector_apply(p, v, n, err);
    for (size_t i = 0; i < n; i++)
        annals__events__v1__committed__free_unpacked((committed *)v[i].rec, NULL);
    free(v);
    return rc;
}

static void claim_all(ann_projector *p)
{
    ann_err err;
    for (int32_t k = 0; k < NPART; k++) {
        int64_t next;
        assert_int_equal(ann_projector_claim(p, k, &next, &err), 0);
    }
}

static void rec_create(recs *rs, const char *t, const char *l, uint64_t op, const uint8_t *labels,
                       size_t n, int64_t at)
{
    committed c = ANNALS__EVENTS__V1__COMMITTED__INIT;
    Annals__Events__V1__CreateLog cl = ANNALS__EVENTS__V1__CREATE_LOG__INIT;
    cl.labels.data = (uint8_t *)labels;
    cl.labels.len = n;
    cl.create_time_ns = at;
    c.tenant_id = (char *)t, c.log_id = (char *)l, c.op_seq = op, c.entry_count = 0;
    c.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG;
    c.create_log = &cl;
    recs_add(rs, &c);
}

static void rec_write(recs *rs, const char *t, const char *l, uint64_t op, uint64_t count,
                      const ann_entry *es, const uint64_t *ids, size_t n)
{
    committed c = ANNALS__EVENTS__V1__COMMITTED__INIT;
    Annals__Events__V1__Write w = ANNALS__EVENTS__V1__WRITE__INIT;
    Annals__Events__V1__Entry *ev = calloc(n + 1, sizeof *ev);
    Annals__Events__V1__Entry **pv = calloc(n + 1, sizeof *pv);
    for (size_t i = 0; i < n; i++) {
        Annals__Events__V1__Entry e = ANNALS__EVENTS__V1__ENTRY__INIT;
        e.entry_id = ids[i];
        e.time_ns = es[i].time_ns;
        e.insert_time_ns = es[i].insert_time_ns;
        e.severity = es[i].severity;
        e.insert_id.data = (uint8_t *)es[i].insert_id;
        e.insert_id.len = es[i].insert_id_len;
        e.body.data = (uint8_t *)es[i].body;
        e.body.len = es[i].body_len;
        ev[i] = e;
        pv[i] = &ev[i];
    }
    w.n_entries = n;
    w.entries = pv;
    c.tenant_id = (char *)t, c.log_id = (char *)l, c.op_seq = op, c.entry_count = count;
    c.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_WRITE;
    c.write = &w;
    recs_add(rs, &c);
    free(ev);
    free(pv);
}

static void rec_revoke(recs *rs, const char *t, const char *l, uint64_t op, uint64_t count,
                       const uint64_t *ids, size_t n, const char *actor, const char *reason,
                       int64_t at)
{
    committed c = ANNALS__EVENTS__V1__COMMITTED__INIT;
    Annals__Events__V1__Revoke r = ANNALS__EVENTS__V1__REVOKE__INIT;
    r.n_entry_ids = n;
    r.entry_ids = (uint64_t *)ids;
    r.actor = (char *)actor, r.reason = (char *)reason, r.time_ns = at;
    c.tenant_id = (char *)t, c.log_id = (char *)l, c.op_seq = op, c.entry_count = count;
    c.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_REVOKE;
    c.revoke = &r;
    recs_add(rs, &c);
}

static void rec_delete(recs *rs, const char *t, const char *l, uint64_t op, uint64_t count)
{
    committed c = ANNALS__EVENTS__V1__COMMITTED__INIT;
    Annals__Events__V1__DeleteLog d = ANNALS__EVENTS__V1__DELETE_LOG__INIT;
    c.tenant_id = (char *)t, c.log_id = (char *)l, c.op_seq = op, c.entry_count = count;
    c.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG;
    c.delete_log = &d;
    recs_add(rs, &c);
}

/* ---- a fresh namespace per test ---- */

typedef struct ctx {
    char ns[32];
    ann_projector *p;
    ann_readmodel *rm;
    PGconn *c;
} ctx;

static int setup(void **state)
{
    ctx *x = calloc(1, sizeof *x);
    uint8_t rb[6];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(rb, 1, sizeof rb, f) != sizeof rb)
        return -1;
    fclose(f);
    snprintf(x->ns, sizeof x->ns, "t_pg_%02x%02x%02x%02x%02x%02x", rb[0], rb[1], rb[2], rb[3],
             rb[4], rb[5]);
    ann_err err;
    if (ann_projector_open(dsn(), x->ns, &x->p, &err) != 0 ||
        ann_readmodel_open(dsn(), x->ns, 4, &x->rm, &err) != 0 ||
        !(x->c = ann_pg_connect(dsn(), &err))) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    ctx *x = *state;
    ann_err err;
    ann_readmodel_close(x->rm);
    ann_projector_close(x->p);
    if (ann_pg_schema_drop(x->c, x->ns, &err) != 0)
        fprintf(stderr, "teardown: %s\n", err.msg);
    PQfinish(x->c);
    free(x);
    return 0;
}

static long count(ctx *x, const char *table, const char *where)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".%s WHERE %s", x->ns, table, where);
    PGresult *r = PQexec(x->c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* ---- the random archive ---- */

#define NLOGS 7
#define MAXE 300

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static const char *WORDS[] = {"alpha", "Beta", "gamma", "needle", "x", "NEEDLE", "béta", "zeta9"};

typedef struct arch {
    ann_store *ms;
    ann_tenant t[2];
    char ids[NLOGS][ANN_UUID_LEN + 1];
    int tenant[NLOGS];
    uint64_t op[NLOGS], n[NLOGS];
    bool deleted[NLOGS];
    recs rs;
} arch;

static void label(ann_buf *b, uint32_t field, const char *k, const char *v)
{
    ann_buf lab = ANN_BUF_INIT;
    ann_buf_add_len_field(&lab, 1, k, strlen(k));
    ann_buf_add_len_field(&lab, 2, v, strlen(v));
    ann_buf_add_len_field(b, field, lab.data, lab.len);
    ann_buf_release(&lab);
}

static void make_archive(arch *a, unsigned seed)
{
    ann_err err;
    memset(a, 0, sizeof *a);
    a->ms = ann_memstore_new();
    uint8_t k0[32], k1[32];
    memset(k0, 1, 32);
    memset(k1, 2, 32);
    assert_int_equal(ann_store_tenant_create(a->ms, "t0", k0, &a->t[0], &err), 0);
    assert_int_equal(ann_store_tenant_create(a->ms, "t1", k1, &a->t[1], &err), 0);
    unsigned s = seed;
    for (int i = 0; i < NLOGS; i++) {
        snprintf(a->ids[i], sizeof a->ids[i], "%08x-0000-4000-8000-%012d", rnd(&s) * 7919u, i);
        a->tenant[i] = i % 3 == 2 ? 1 : 0;
        ann_buf labs = ANN_BUF_INIT;
        label(&labs, 2, "job", i % 2 ? "j1" : "j0");
        if (i % 3 == 0)
            label(&labs, 2, "env", "prod");
        int64_t at = 1000 + (int64_t)(rnd(&s) % 3);
        const char *tid = a->t[a->tenant[i]].id;
        assert_int_equal(ann_store_log_create(a->ms, tid, a->ids[i], labs.data, labs.len, at, &err),
                         0);
        rec_create(&a->rs, tid, a->ids[i], ++a->op[i], labs.data, labs.len, at);
        ann_buf_release(&labs);
    }
    /* Writes in rounds across logs, with a few revocations. */
    int64_t clock = 10;
    for (int round = 0; round < 40; round++) {
        int i = (int)(rnd(&s) % NLOGS);
        const char *tid = a->t[a->tenant[i]].id;
        size_t n = 1 + rnd(&s) % 25;
        if (a->n[i] + n > MAXE)
            continue;
        ann_entry es[32];
        ann_buf bodies[32];
        char iids[32][24];
        uint64_t ids[32];
        /* Half the logs in 1970 (and before), half spread over months of 2026. */
        int64_t base = i % 2 ? 0 : INT64_C(1780000000000000000);
        for (size_t k = 0; k < n; k++) {
            uint64_t seq = a->n[i] + k;
            int64_t t = base + (int64_t)seq / 2 + (int64_t)(rnd(&s) % 7) - 3;
            if (base)
                t += (int64_t)(seq % 5) * INT64_C(86400000000000) * 20; /* ~5 months */
            if (rnd(&s) % 40 == 0)
                t = INT64_MIN + 5;
            bodies[k] = (ann_buf)ANN_BUF_INIT;
            if (rnd(&s) % 6 == 0)
                label(&bodies[k], 23, "tag", WORDS[rnd(&s) % 8]);
            char text[64];
            snprintf(text, sizeof text, "line %llu %s %s", (unsigned long long)seq,
                     WORDS[rnd(&s) % 8], WORDS[rnd(&s) % 8]);
            ann_buf_add_len_field(&bodies[k], 30, text, strlen(text));
            snprintf(iids[k], sizeof iids[k], "iid-%d-%llu", i, (unsigned long long)seq);
            es[k] = (ann_entry){.time_ns = t,
                                .insert_time_ns = clock++,
                                .severity = (int32_t)(rnd(&s) % 9) * 100,
                                .insert_id = iids[k],
                                .insert_id_len = strlen(iids[k]),
                                .body = bodies[k].data,
                                .body_len = bodies[k].len};
        }
        ann_append ap = {
            .tenant_id = tid, .log_id = a->ids[i], .entries = es, .n = n, .ids_out = ids};
        assert_int_equal(ann_store_append(a->ms, &ap, &err), 0);
        a->n[i] += n;
        rec_write(&a->rs, tid, a->ids[i], ++a->op[i], a->n[i], es, ids, n);
        for (size_t k = 0; k < n; k++)
            ann_buf_release(&bodies[k]);
        if (rnd(&s) % 4 == 0) {
            uint64_t rv[2] = {1 + rnd(&s) % a->n[i], 1 + rnd(&s) % a->n[i]};
            char actor[16];
            snprintf(actor, sizeof actor, "actor%d", round);
            assert_int_equal(
                ann_store_revoke(a->ms, tid, a->ids[i], rv, 2, actor, "gdpr", 5000 + round, &err),
                0);
            rec_revoke(&a->rs, tid, a->ids[i], ++a->op[i], a->n[i], rv, 2, actor, "gdpr",
                       5000 + round);
        }
    }
    /* Log 3 is deleted. */
    const char *tid = a->t[a->tenant[3]].id;
    assert_int_equal(ann_store_log_delete(a->ms, tid, a->ids[3], &err), 0);
    rec_delete(&a->rs, tid, a->ids[3], ++a->op[3], a->n[3]);
    a->deleted[3] = true;
}

/* Applies the archive's records in random batches. */
static void apply_archive(ctx *x, arch *a, unsigned seed)
{
    ann_err err;
    unsigned s = seed;
    for (size_t i = 0; i < a->rs.n;) {
        size_t n = 1 + rnd(&s) % 17;
        if (i + n > a->rs.n)
            n = a->rs.n - i;
        int rc = apply_range(x->p, &a->rs, i, i + n, &err);
        if (rc != 0)
            fail_msg("apply: %d %s", rc, err.msg);

        i += n;
    }
}

/* ---- the reads, as text, from either side ---- */

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void entry_text(ann_buf *b, const char *log, const ann_entry *e)
{
    char line[512];
    int k = snprintf(line, sizeof line, "%s %llu t=%lld it=%lld sev=%d f=%u iid=%.*s body=%zu:%08x",
                     log ? log : "", (unsigned long long)e->entry_id, (long long)e->time_ns,
                     (long long)e->insert_time_ns, e->severity, e->flags, (int)e->insert_id_len,
                     e->insert_id, e->body_len, fnv(e->body, e->body_len));
    ann_buf_add(b, line, (size_t)k);
    if (e->revocation) {
        k = snprintf(line, sizeof line, " rev=%s/%s/%lld", e->revocation->actor,
                     e->revocation->reason, (long long)e->revocation->time_ns);
        ann_buf_add(b, line, (size_t)k);
    }
    ann_buf_add_byte(b, '\n');
}

typedef struct seen {
    ann_buf b;
    size_t stop_after; /* 0: never stop */
    size_t n;
} seen;

static int see_entry(const ann_entry *e, void *ud)
{
    seen *s = ud;
    entry_text(&s->b, NULL, e);
    return s->stop_after && ++s->n >= s->stop_after;
}

static int see_hit(const char *log, const ann_entry *e, void *ud)
{
    seen *s = ud;
    if (s->stop_after && s->n + 1 >= s->stop_after && s->n % 2) {
        s->n++;
        return 1; /* refused: the hit must come again */
    }
    s->n++;
    entry_text(&s->b, log, e);
    return 0;
}

static int see_log(const ann_log_meta *m, void *ud)
{
    seen *s = ud;
    char line[256];
    int k = snprintf(line, sizeof line, "%s c=%lld n=%llu labels=%zu:%08x\n", m->id,
                     (long long)m->create_time_ns, (unsigned long long)m->entry_count,
                     m->labels_len, fnv(m->labels, m->labels_len));
    ann_buf_add(&s->b, line, (size_t)k);
    return s->stop_after && ++s->n >= s->stop_after;
}

static void same(const char *what, seen *want, seen *got)
{
    ann_buf_add_byte(&want->b, 0);
    ann_buf_add_byte(&got->b, 0);
    if (strcmp((char *)want->b.data, (char *)got->b.data) != 0)
        fail_msg("%s differs:\n--- reference\n%s--- postgres\n%s", what, (char *)want->b.data,
                 (char *)got->b.data);
    ann_buf_release(&want->b);
    ann_buf_release(&got->b);
}

static bool odd_filter(const ann_entry *e, void *ud)
{
    (void)ud;
    return e->entry_id % 3 != 0;
}

static void compare_lists(ctx *x, arch *a)
{
    ann_err e1, e2;
    const int64_t B = INT64_C(1780000000000000000);
    const int64_t starts[] = {INT64_MIN, 0, 20, B, B + INT64_C(86400000000000) * 30};
    const int64_t ends[] = {INT64_MAX, 50, B + 100, INT64_MAX};
    for (int i = 0; i < NLOGS; i++) {
        const char *tid = a->t[a->tenant[i]].id;
        for (size_t si = 0; si < 5; si++)
            for (size_t ei = 0; ei < 4; ei++)
                for (int var = 0; var < 6; var++) {
                    ann_list_query q = {.start_ns = starts[si], .end_ns = ends[ei], .limit = 1000};
                    if (var == 1)
                        q.max_id = a->n[i] / 2, q.limit = 7;
                    if (var == 2)
                        q.filter = odd_filter, q.limit = 11;
                    if (var == 3)
                        q.budget = 13, q.filter = odd_filter;
                    if (var == 4)
                        q.budget = 5, q.limit = 3;
                    /* Walk page by page (cursor from the last entry, or from the budget). */
                    seen w = {ANN_BUF_INIT, 0, 0}, g = {ANN_BUF_INIT, 0, 0};
                    for (int pg = 0; pg < 400; pg++) {
                        ann_list_result r1, r2;
                        size_t before1 = w.b.len, before2 = g.b.len;
                        int rc1 =
                            ann_store_list(a->ms, tid, a->ids[i], &q, see_entry, &w, &r1, &e1);
                        memset(&r2, 0x5a, sizeof r2);
                        memset(&r2, 0, sizeof r2);
                        int rc2 =
                            ann_readmodel_list(x->rm, tid, a->ids[i], &q, see_entry, &g, &r2, &e2);
                        assert_int_equal(rc1, rc2);
                        if (rc1) {
                            assert_int_equal(e1.code, e2.code);
                            assert_string_equal(e1.msg, e2.msg);
                            break;
                        }
                        assert_int_equal(r1.budget_hit, r2.budget_hit);
                        assert_int_equal(r1.last_time_ns, r2.last_time_ns);
                        assert_int_equal(r1.last_id, r2.last_id);
                        if (var == 0 || var == 5 || (w.b.len == before1 && !r1.budget_hit))
                            break;
                        (void)before2;
                        q.has_cursor = true;
                        q.cursor_time_ns = r1.last_time_ns;
                        q.cursor_id = r1.last_id;
                    }
                    char what[128];
                    snprintf(what, sizeof what, "list log %d window %zu/%zu var %d", i, si, ei,
                             var);
                    same(what, &w, &g);
                }
        /* read_after */
        const uint64_t afters[] = {0, 1, 5, a->n[i], a->n[i] + 3};
        for (size_t k = 0; k < 5; k++)
            for (size_t lim = 0; lim < 9; lim += 4) {
                seen w = {ANN_BUF_INIT, 0, 0}, g = {ANN_BUF_INIT, 0, 0};
                int rc1 =
                    ann_store_read_after(a->ms, tid, a->ids[i], afters[k], lim, see_entry, &w, &e1);
                int rc2 = ann_readmodel_read_after(x->rm, tid, a->ids[i], afters[k], lim, see_entry,
                                                   &g, &e2);
                assert_int_equal(rc1, rc2);
                if (rc1)
                    assert_int_equal(e1.code, e2.code);
                same("read_after", &w, &g);
            }
        /* Another tenant's log is not found. */
        seen g = {ANN_BUF_INIT, 0, 0};
        ann_list_query q = {.start_ns = INT64_MIN, .end_ns = INT64_MAX, .limit = 10};
        assert_int_equal(ann_readmodel_list(x->rm, a->t[1 - a->tenant[i]].id, a->ids[i], &q,
                                            see_entry, &g, NULL, &e2),
                         -1);
        assert_int_equal(e2.code, ANN_ENOTFOUND);
        ann_buf_release(&g.b);
    }
}

static void compare_logs(ctx *x, arch *a)
{
    ann_err e1, e2;
    ann_label_pair j0 = {(const uint8_t *)"job", 3, (const uint8_t *)"j0", 2};
    ann_label_pair both[2] = {j0, {(const uint8_t *)"env", 3, (const uint8_t *)"prod", 4}};
    for (int t = 0; t < 2; t++)
        for (int f = 0; f < 3; f++)
            for (size_t lim = 1; lim <= 9; lim += 4) {
                ann_logs_query q = {.labels = f == 1   ? &j0
                                              : f == 2 ? both
                                                       : NULL,
                                    .n_labels = (size_t)f,
                                    .start_ns = f == 2 ? 1001 : INT64_MIN,
                                    .end_ns = INT64_MAX,
                                    .limit = lim};
                seen w = {ANN_BUF_INIT, 0, 0}, g = {ANN_BUF_INIT, 0, 0};
                for (int pg = 0; pg < 20; pg++) {
                    size_t before = w.b.len;
                    seen pw = {ANN_BUF_INIT, 0, 0};
                    assert_int_equal(ann_store_logs_list(a->ms, a->t[t].id, &q, see_log, &pw, &e1),
                                     0);
                    assert_int_equal(
                        ann_readmodel_logs_list(x->rm, a->t[t].id, &q, see_log, &g, &e2), 0);
                    if (pw.b.len)
                        ann_buf_add(&w.b, pw.b.data, pw.b.len);
                    if (w.b.len == before) {
                        ann_buf_release(&pw.b);
                        break;
                    }
                    /* The cursor: the last listed log. */
                    ann_buf_add_byte(&pw.b, 0);
                    char *last = strrchr((char *)pw.b.data, '\n');
                    *last = '\0';
                    char *line = strrchr((char *)pw.b.data, '\n');
                    line = line ? line + 1 : (char *)pw.b.data;
                    long long c = 0;
                    char id[64];
                    assert_int_equal(sscanf(line, "%63s c=%lld", id, &c), 2);
                    q.has_cursor = true;
                    q.cursor_create_ns = c;
                    snprintf(q.cursor_id, sizeof q.cursor_id, "%.36s", id);
                    ann_buf_release(&pw.b);
                }
                same("logs_list", &w, &g);
            }
}

static size_t compare_search(ctx *x, arch *a)
{
    size_t hits = 0;
    ann_err e1, e2;
    const char *qs[] = {"needle", "NEEDLE", "line 1", "é", "zeta9"};
    const size_t limits[] = {1000, 3, 7, 2};
    const uint64_t budgets[] = {100000, 29, 5, 1};
    ann_label_pair j1 = {(const uint8_t *)"job", 3, (const uint8_t *)"j1", 2};
    for (int t = 0; t < 2; t++)
        for (size_t qi = 0; qi < 5; qi++)
            for (int icase = 0; icase < 2; icase++)
                for (size_t c = 0; c < 4; c++)
                    for (int shape = 0; shape < 3; shape++) {
                        ann_matcher mt;
                        ann_matcher_init(&mt, (const uint8_t *)qs[qi], strlen(qs[qi]), icase);
                        char ids[2][ANN_UUID_LEN + 1];
                        memcpy(ids[0], a->ids[t == 0 ? 1 : 2], sizeof ids[0]);
                        memcpy(ids[1], a->ids[t == 0 ? 4 : 5], sizeof ids[1]);
                        ann_search_query q = {.match = &mt,
                                              .labels = shape == 1 ? &j1 : NULL,
                                              .n_labels = shape == 1,
                                              .log_ids = (const char(*)[ANN_UUID_LEN + 1]) ids,
                                              .n_log_ids = shape == 2 ? 2 : 0,
                                              .start_ns = shape == 2 ? 0 : INT64_MIN,
                                              .end_ns = INT64_MAX,
                                              .snapshot_ns = shape == 1 ? 300 : INT64_MAX,
                                              .limit = limits[c],
                                              .budget = budgets[c]};
                        seen w = {ANN_BUF_INIT, c == 2 ? 2 : 0, 0},
                             g = {ANN_BUF_INIT, c == 2 ? 2 : 0, 0};
                        for (int call = 0;; call++) {
                            assert_true(call < 20000);
                            ann_search_result r1, r2;
                            assert_int_equal(
                                ann_store_search(a->ms, a->t[t].id, &q, see_hit, &w, &r1, &e1), 0);
                            assert_int_equal(
                                ann_readmodel_search(x->rm, a->t[t].id, &q, see_hit, &g, &r2, &e2),
                                0);
                            if (r1.more != r2.more || r1.examined != r2.examined ||
                                r1.resume.time_ns != r2.resume.time_ns ||
                                strcmp(r1.resume.log_id, r2.resume.log_id) != 0 ||
                                r1.resume.entry_id != r2.resume.entry_id)
                                fail_msg("search '%s' call %d: ref more %d ex %llu (%lld %s %llu), "
                                         "pg more %d ex %llu (%lld %s %llu)",
                                         qs[qi], call, r1.more, (unsigned long long)r1.examined,
                                         (long long)r1.resume.time_ns, r1.resume.log_id,
                                         (unsigned long long)r1.resume.entry_id, r2.more,
                                         (unsigned long long)r2.examined,
                                         (long long)r2.resume.time_ns, r2.resume.log_id,
                                         (unsigned long long)r2.resume.entry_id);
                            if (!r1.more)
                                break;
                            q.has_cursor = true;
                            q.cursor = r1.resume;
                        }
                        hits += g.n;
                        same("search", &w, &g);
                    }
    return hits;
}

static void test_reads_match_reference(void **state)
{
    ctx *x = *state;
    arch a;
    make_archive(&a, 20261207u);
    claim_all(x->p);
    apply_archive(x, &a, 7);
    /* Not a trivial archive: many rows, revocations, hits. */
    assert_true(count(x, "entries", "true") > 200);
    assert_true(count(x, "entries", "flags = 1 AND body = ''") > 5);
    assert_true(count(x, "revocations", "true") > 5);
    assert_true(count(x, "entries", "ts < 0") > 3); /* in the default partition */
    compare_lists(x, &a);
    compare_logs(x, &a);
    assert_true(compare_search(x, &a) > 100);

    /* log_state */
    ann_err err;
    for (int i = 0; i < NLOGS; i++) {
        ann_rm_log_state st;
        assert_int_equal(ann_readmodel_log_state(x->rm, a.t[a.tenant[i]].id, a.ids[i], &st, &err),
                         0);
        assert_true(st.exists);
        assert_int_equal(st.deleted, a.deleted[i]);
        assert_int_equal(st.visible_count, a.n[i]);
        assert_int_equal(st.applied_op, a.op[i]);
        ann_readmodel_log_state_release(&st);
    }
    ann_rm_log_state st;
    assert_int_equal(ann_readmodel_log_state(x->rm, a.t[0].id, "nope", &st, &err), 0);
    assert_false(st.exists);

    /* The deleted log's rows are gone. */
    char where[256];
    snprintf(where, sizeof where, "log_id = '%s'", a.ids[3]);
    assert_int_equal(count(x, "entries", where), 0);
    assert_int_equal(count(x, "revocations", where), 0);

    /* Re-applying everything (a replay after a rewind) changes nothing. */
    long rows = count(x, "entries", "true"), revs = count(x, "revocations", "true");
    apply_archive(x, &a, 99);
    assert_int_equal(count(x, "entries", "true"), rows);
    assert_int_equal(count(x, "revocations", "true"), revs);
    compare_lists(x, &a);

    /* Offsets: each partition's next offset is stored. */
    for (int k = 0; k < NPART; k++) {
        char w[64];
        snprintf(w, sizeof w, "partition = %d AND next_offset = %lld", k, (long long)a.rs.next[k]);
        assert_int_equal(count(x, "projector_offsets", w), 1);
    }
    recs_free(&a.rs);
    ann_store_close(a.ms);
}

/* A replayed write after its revoke keeps the entry redacted. */
static void test_replay_after_revoke(void **state)
{
    ctx *x = *state;
    ann_err err;
    recs rs = {0};
    const char *t = "00000000-0000-4000-8000-00000000000a",
               *l = "10000000-0000-4000-8000-0000000000aa";
    rec_create(&rs, t, l, 1, NULL, 0, 5);
    ann_entry es[2] = {{.time_ns = 100,
                        .insert_time_ns = 1,
                        .insert_id = "a",
                        .insert_id_len = 1,
                        .body = (const uint8_t *)"secret",
                        .body_len = 6},
                       {.time_ns = 101,
                        .insert_time_ns = 1,
                        .insert_id = "b",
                        .insert_id_len = 1,
                        .body = (const uint8_t *)"other",
                        .body_len = 5}};
    uint64_t ids[2] = {1, 2};
    rec_write(&rs, t, l, 2, 2, es, ids, 2);
    rec_revoke(&rs, t, l, 3, 2, ids, 1, "alice", "first", 77);
    rec_revoke(&rs, t, l, 4, 2, ids, 1, "bob", "second", 88);
    rec_write(&rs, t, l, 2, 2, es, ids, 2); /* the replay, after both */
    claim_all(x->p);
    for (size_t i = 0; i < rs.n; i++)
        assert_int_equal(apply_range(x->p, &rs, i, i + 1, &err), 0);
    /* And all of it once more in one batch. */
    assert_int_equal(apply_range(x->p, &rs, 0, rs.n, &err), 0);
    seen g = {ANN_BUF_INIT, 0, 0};
    assert_int_equal(ann_readmodel_read_after(x->rm, t, l, 0, 0, see_entry, &g, &err), 0);
    ann_buf_add_byte(&g.b, 0);
    char want[256];
    snprintf(want, sizeof want,
             " 1 t=100 it=1 sev=0 f=1 iid=a body=0:%08x rev=alice/first/77\n"
             " 2 t=101 it=1 sev=0 f=0 iid=b body=5:%08x\n",
             fnv(NULL, 0), fnv((const uint8_t *)"other", 5));
    assert_string_equal((char *)g.b.data, want);
    ann_buf_release(&g.b);
    recs_free(&rs);
}

/* A zombie (a projector whose partition was claimed by another since) commits nothing. */
static void test_zombie_fenced(void **state)
{
    ctx *x = *state;
    ann_err err;
    recs rs = {0};
    const char *t = "00000000-0000-4000-8000-00000000000b",
               *l = "20000000-0000-4000-8000-0000000000bb";
    rec_create(&rs, t, l, 1, NULL, 0, 5);
    ann_entry e = {.time_ns = 100,
                   .insert_time_ns = 1,
                   .insert_id = "a",
                   .insert_id_len = 1,
                   .body = (const uint8_t *)"x",
                   .body_len = 1};
    uint64_t id = 1;
    rec_write(&rs, t, l, 2, 1, &e, &id, 1);
    claim_all(x->p); /* the old owner */
    ann_projector *p2;
    assert_int_equal(ann_projector_open(dsn(), x->ns, &p2, &err), 0);
    claim_all(p2); /* the new owner */
    assert_int_equal(apply_range(x->p, &rs, 0, rs.n, &err), ANN_PROJECTOR_FENCED);
    assert_int_equal(count(x, "entries", "true"), 0);
    assert_int_equal(count(x, "logs", "true"), 0);
    assert_int_equal(count(x, "log_state", "true"), 0);
    assert_int_equal(count(x, "projector_offsets", "next_offset > 0"), 0);
    /* An unclaimed projector is refused too. */
    ann_projector_forget(x->p);
    assert_int_equal(apply_range(x->p, &rs, 0, rs.n, &err), ANN_PROJECTOR_FENCED);
    /* The owner applies. */
    assert_int_equal(apply_range(p2, &rs, 0, rs.n, &err), 0);
    assert_int_equal(count(x, "entries", "true"), 1);
    ann_projector_close(p2);
    recs_free(&rs);
}

/* The search projection (docs/distributed.md, "Search"): docs for the indexed ids only,
 * `indexed` grows only over what holds (a gap stops it), a replayed write never brings a
 * revoked doc back, a delete removes docs and state, the fence is its own, and the browse
 * projection's tables are left alone. */
static long state_indexed(ctx *x, const char *l)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT indexed FROM \"%s\".search_state WHERE log_id = '%s'", x->ns,
             l);
    PGresult *r = PQexec(x->c, sql);
    long v = PQntuples(r) == 1 ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return v;
}

static void test_search_projection(void **state)
{
    ctx *x = *state;
    ann_err err;
    recs rs = {0};
    const char *t = "00000000-0000-4000-8000-00000000000c",
               *l = "30000000-0000-4000-8000-0000000000cc";
    rec_create(&rs, t, l, 1, NULL, 0, 5);
    ann_buf b[6] = {ANN_BUF_INIT, ANN_BUF_INIT, ANN_BUF_INIT,
                    ANN_BUF_INIT, ANN_BUF_INIT, ANN_BUF_INIT};
    ann_entry es[6];
    uint64_t ids[6];
    static const char *const texts[6] = {"one secretword", "two", "a\0b", "four", "five", "six"};
    for (int i = 0; i < 6; i++) {
        size_t n = i == 2 ? 3 : strlen(texts[i]);
        ann_buf_add_len_field(&b[i], 30, texts[i], n);
        es[i] = (ann_entry){.time_ns = 100 + i,
                            .insert_time_ns = 1,
                            .insert_id = texts[i],
                            .insert_id_len = 1,
                            .body = b[i].data,
                            .body_len = b[i].len};
        ids[i] = (uint64_t)i + 1;
    }
    /* records: 0 the create */
    rec_write(&rs, t, l, 2, 3, es, ids, 3);           /* 1: ids 1..3 */
    rec_revoke(&rs, t, l, 3, 3, ids, 1, "a", "r", 9); /* 2: id 1 */
    rec_write(&rs, t, l, 2, 3, es, ids, 3);           /* 3: a replay of ids 1..3 */
    rec_write(&rs, t, l, 5, 6, es + 4, ids + 4, 2);   /* 4: ids 5..6 (as if 4 were missed) */
    rec_write(&rs, t, l, 4, 4, es + 3, ids + 3, 1);   /* 5: id 4 */
    rec_write(&rs, t, l, 5, 6, es + 4, ids + 4, 2);   /* 6: ids 5..6 again */
    rec_delete(&rs, t, l, 6, 6);                      /* 7 */
    ann_projector *sp, *zombie;
    assert_int_equal(ann_projector_open_kind(dsn(), x->ns, ANN_PROJECTOR_SEARCH, &zombie, &err), 0);
    claim_all(zombie);
    assert_int_equal(ann_projector_open_kind(dsn(), x->ns, ANN_PROJECTOR_SEARCH, &sp, &err), 0);
    claim_all(sp);
    claim_all(x->p); /* the browse projection: the search one never fences it */
    assert_int_equal(apply_range(zombie, &rs, 0, 2, &err), ANN_PROJECTOR_FENCED);
    assert_int_equal(count(x, "search_docs", "true"), 0);
    assert_int_equal(count(x, "search_offsets", "next_offset > 0"), 0);
    /* The browse projection applies the create and the revocation; search the write. */
    assert_int_equal(apply_range(x->p, &rs, 0, 1, &err), 0);
    assert_int_equal(apply_range(sp, &rs, 0, 2, &err), 0);
    assert_int_equal(count(x, "search_docs", "true"), 3);
    assert_int_equal(count(x, "logs", "true"), 1); /* the browse one's row, not the search's */
    assert_int_equal(count(x, "search_docs", "entry_id = 3 AND doc = 'a\uFFFDb'"), 1);
    assert_int_equal(state_indexed(x, l), 3);
    assert_int_equal(apply_range(x->p, &rs, 1, 4, &err), 0);
    assert_int_equal(apply_range(sp, &rs, 2, 5, &err), 0); /* revoke, then the replay */
    assert_int_equal(count(x, "search_docs", "entry_id = 1"), 0);
    assert_int_equal(count(x, "search_docs", "doc LIKE '%secretword%'"), 0);
    assert_int_equal(count(x, "purge_pending", "rel LIKE '%search_docs%'"), 1);
    /* A gap leaves `indexed` where it was; the write that fills it moves it on. */
    assert_int_equal(apply_range(sp, &rs, 4, 5, &err), 0);
    assert_int_equal(state_indexed(x, l), 3);
    assert_int_equal(apply_range(sp, &rs, 5, 7, &err), 0);
    assert_int_equal(state_indexed(x, l), 6);
    assert_int_equal(count(x, "search_docs", "true"), 5);
    assert_int_equal(apply_range(sp, &rs, 7, 8, &err), 0);
    assert_int_equal(count(x, "search_docs", "true"), 0);
    assert_int_equal(count(x, "search_state", "true"), 0);
    assert_int_equal(count(x, "search_offsets", "next_offset > 0"), 1);
    ann_projector_close(sp);
    ann_projector_close(zombie);
    for (int i = 0; i < 6; i++)
        ann_buf_release(&b[i]);
    recs_free(&rs);
}

/* The index path and the walk answer alike, whichever the call takes: a token in 1,134
 * of 1,200 entries (more candidates than the index path takes: the call walks), a rare
 * one (the GIN), one the first walk page cannot fill; pages cut by limit and budget. */
typedef struct idlist {
    uint64_t v[2000];
    size_t n;
} idlist;

static int collect(const char *log, const ann_entry *e, void *ud)
{
    (void)log;
    idlist *l = ud;
    if (l->n < 2000)
        l->v[l->n++] = e->entry_id;
    return 0;
}

static void walk_all(ctx *x, const char *t, const char *qs, size_t limit, uint64_t budget,
                     idlist *out)
{
    ann_matcher m;
    ann_matcher_init(&m, (const uint8_t *)qs, strlen(qs), false);
    ann_search_query q = {.match = &m,
                          .start_ns = INT64_MIN,
                          .end_ns = INT64_MAX,
                          .snapshot_ns = INT64_MAX,
                          .limit = limit,
                          .budget = budget};
    ann_err err;
    out->n = 0;
    for (int calls = 0; calls < 5000; calls++) {
        ann_search_result res;
        assert_int_equal(ann_readmodel_search(x->rm, t, &q, collect, out, &res, &err), 0);
        assert_true(res.examined <= budget);
        if (!res.more)
            return;
        q.has_cursor = true;
        q.cursor = res.resume;
    }
    fail_msg("search %s: no end", qs);
}

static void test_search_index_and_walk_agree(void **state)
{
    ctx *x = *state;
    ann_err err;
    recs rs = {0};
    const char *t = "00000000-0000-4000-8000-00000000000d",
               *l = "40000000-0000-4000-8000-0000000000dd";
    rec_create(&rs, t, l, 1, NULL, 0, 5);
    enum { N = 1200, W = 100 };
    ann_buf *b = calloc(N, sizeof *b);
    ann_entry *es = calloc(N, sizeof *es);
    uint64_t *ids = calloc(N, sizeof *ids);
    char text[64];
    for (int i = 0; i < N; i++) {
        int id = i + 1;
        if (id == 1190)
            snprintf(text, sizeof text, "quiet rareword %d", id);
        else if (id <= 16 || id > 1150)
            snprintf(text, sizeof text, "quiet %d", id);
        else
            snprintf(text, sizeof text, "common token %d", id);
        ann_buf_add_len_field(&b[i], 30, text, strlen(text));
        es[i] = (ann_entry){.time_ns = 1000 + i / 3, /* ties */
                            .insert_time_ns = 1,
                            .insert_id = "i",
                            .insert_id_len = 1,
                            .body = b[i].data,
                            .body_len = b[i].len};
        ids[i] = (uint64_t)id;
    }
    for (int i = 0; i < N; i += W)
        rec_write(&rs, t, l, 2 + (uint64_t)(i / W), (uint64_t)(i + W), es + i, ids + i, W);
    ann_projector *sp;
    assert_int_equal(ann_projector_open_kind(dsn(), x->ns, ANN_PROJECTOR_SEARCH, &sp, &err), 0);
    claim_all(sp);
    claim_all(x->p);
    assert_int_equal(apply_range(x->p, &rs, 0, rs.n, &err), 0);
    /* All but the last two writes indexed: the rest (1,001..1,200) comes from entries. */
    assert_int_equal(apply_range(sp, &rs, 0, rs.n - 2, &err), 0);
    assert_int_equal(state_indexed(x, l), N - 2 * W);
    static const char *const qs[] = {"common", "rareword", "quiet 11", "token 1149"};
    static const size_t want[] = {1134, 1, 1 + 48, 1}; /* quiet 11, 1151..1199 but 1190 */
    static const size_t limits[] = {1, 7, 100};
    static const uint64_t budgets[] = {50000, 300, 50000};
    idlist *a = calloc(1, sizeof *a), *w = calloc(1, sizeof *w);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t qi = 0; qi < 4; qi++)
            for (size_t c = 0; c < 3; c++) {
                ann_readmodel_search_walk_only(x->rm, false);
                walk_all(x, t, qs[qi], limits[c], budgets[c], a);
                ann_readmodel_search_walk_only(x->rm, true);
                walk_all(x, t, qs[qi], limits[c], budgets[c], w);
                assert_int_equal(a->n, want[qi]);
                assert_int_equal(a->n, w->n);
                assert_memory_equal(a->v, w->v, a->n * sizeof a->v[0]);
            }
        /* Then everything indexed. */
        assert_int_equal(apply_range(sp, &rs, rs.n - 2, rs.n, &err), 0);
        assert_int_equal(state_indexed(x, l), N);
    }
    ann_readmodel_search_walk_only(x->rm, false);
    free(a), free(w);
    ann_projector_close(sp);
    for (int i = 0; i < N; i++)
        ann_buf_release(&b[i]);
    free(b), free(es), free(ids);
    recs_free(&rs);
}

/* ---- the listener ---- */

typedef struct heard {
    pthread_mutex_t mu;
    int resyncs;
    char last[256];
    int n;
} heard;

static void on_visible(void *ud, const char *t, const char *l, uint64_t vis, uint64_t op,
                       bool deleted)
{
    heard *h = ud;
    pthread_mutex_lock(&h->mu);
    if (!t) {
        h->resyncs++;
    } else {
        snprintf(h->last, sizeof h->last, "%s/%s %llu %llu %d", t, l, (unsigned long long)vis,
                 (unsigned long long)op, deleted);
        h->n++;
    }
    pthread_mutex_unlock(&h->mu);
}

static bool wait_for(heard *h, int n, int resyncs)
{
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&h->mu);
        bool ok = h->n >= n && h->resyncs >= resyncs;
        pthread_mutex_unlock(&h->mu);
        if (ok)
            return true;
        usleep(50000);
    }
    return false;
}

static void test_listener(void **state)
{
    ctx *x = *state;
    ann_err err;
    heard h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(ann_readmodel_listen_start(x->rm, on_visible, &h, &err), 0);
    assert_true(wait_for(&h, 0, 1));
    recs rs = {0};
    const char *t = "00000000-0000-4000-8000-00000000000c",
               *l = "30000000-0000-4000-8000-0000000000cc";
    rec_create(&rs, t, l, 1, NULL, 0, 5);
    ann_entry e = {.time_ns = 100,
                   .insert_time_ns = 1,
                   .insert_id = "a",
                   .insert_id_len = 1,
                   .body = (const uint8_t *)"x",
                   .body_len = 1};
    uint64_t id = 1;
    rec_write(&rs, t, l, 2, 1, &e, &id, 1);
    rec_delete(&rs, t, l, 3, 1);
    claim_all(x->p);
    assert_int_equal(apply_range(x->p, &rs, 0, 2, &err), 0);
    assert_true(wait_for(&h, 1, 1));
    pthread_mutex_lock(&h.mu);
    assert_string_equal(h.last, "00000000-0000-4000-8000-00000000000c/"
                                "30000000-0000-4000-8000-0000000000cc 1 2 0");
    pthread_mutex_unlock(&h.mu);
    /* Kill the listener's connection: it reconnects and asks for a resync. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE "
             "'LISTEN \"%s_visible\"%%' AND pid <> pg_backend_pid()",
             x->ns);
    PQclear(PQexec(x->c, sql));
    assert_true(wait_for(&h, 1, 2));
    assert_int_equal(apply_range(x->p, &rs, 2, 3, &err), 0);
    assert_true(wait_for(&h, 2, 2));
    pthread_mutex_lock(&h.mu);
    assert_string_equal(h.last, "00000000-0000-4000-8000-00000000000c/"
                                "30000000-0000-4000-8000-0000000000cc 1 3 1");
    pthread_mutex_unlock(&h.mu);
    ann_readmodel_listen_stop(x->rm);
    recs_free(&rs);
}

/* ---- the role over real topics ---- */

typedef struct runarg {
    ann_projector_config cfg;
    volatile int stop;
    int rc;
    ann_err err;
} runarg;

static void *run_main(void *p)
{
    runarg *ra = p;
    ra->rc = ann_projector_run(&ra->cfg, &ra->stop, &ra->err);
    return NULL;
}

static void produce(ann_kafka_config *kc, const recs *rs)
{
    ann_err err;
    rd_kafka_t *rk = ann_kafka_producer(kc, "test-projector", NULL, NULL, NULL, &err);
    assert_non_null(rk);
    char topic[128];
    ann_kafka_topic(kc, ANN_TOPIC_COMMITTED, topic, sizeof topic);
    for (size_t i = 0; i < rs->n; i++) {
        const rec *r = &rs->v[i];
        rd_kafka_resp_err_t e =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(r->partition),
                              RD_KAFKA_V_VALUE(r->data, r->len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e)
            fail_msg("produce: %s", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
}

/* The run's topics go when it ends: the engines are shared. */
static void delete_topics(ann_kafka_config *kc)
{
    ann_err err;
    rd_kafka_t *rk = ann_kafka_producer(kc, "test-projector-admin", NULL, NULL, NULL, &err);
    if (!rk)
        return;
    const char *suffix[3] = {ANN_TOPIC_PENDING, ANN_TOPIC_COMMITTED, ANN_TOPIC_ACKS};
    char names[3][128];
    rd_kafka_DeleteTopic_t *dt[3];
    for (int i = 0; i < 3; i++) {
        ann_kafka_topic(kc, suffix[i], names[i], sizeof names[i]);
        dt[i] = rd_kafka_DeleteTopic_new(names[i]);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, dt, 3, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy_array(dt, 3);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

static void test_run_over_kafka(void **state)
{
    ctx *x = *state;
    ann_err err;
    arch a;
    make_archive(&a, 424242u);
    runarg ra = {.cfg = {.kafka = {.brokers = brokers(), .ns = x->ns, .partitions = NPART},
                         .conninfo = dsn(),
                         .instance = NULL}};
    ann_kafka_config_defaults(&ra.cfg.kafka);
    if (ann_kafka_ensure_topics(&ra.cfg.kafka, &err) != 0)
        fail_msg("topics: %s", err.msg);
    /* Half before the projector starts, half while it runs. */
    recs first = a.rs, second = a.rs;
    first.n = a.rs.n / 2;
    second.v = a.rs.v + first.n;
    second.n = a.rs.n - first.n;
    produce(&ra.cfg.kafka, &first);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_main, &ra), 0);
    produce(&ra.cfg.kafka, &second);
    bool done = false;
    for (int i = 0; i < 600 && !done; i++) { /* 60 s: a group join takes a few seconds */
        int ok = 0;
        for (int k = 0; k < NPART; k++) {
            char w[64];
            snprintf(w, sizeof w, "partition = %d AND next_offset = %lld", k,
                     (long long)a.rs.next[k]);
            ok += count(x, "projector_offsets", w) == 1;
        }
        done = ok == NPART;
        if (!done)
            usleep(100000);
    }
    ra.stop = 1;
    pthread_join(th, NULL);
    delete_topics(&ra.cfg.kafka);
    if (ra.rc != 0)
        fail_msg("ann_projector_run: %s", ra.err.msg);
    if (!done)
        fail_msg("the projector did not reach the end offsets (%lld %lld %lld) within 60 s",
                 (long long)a.rs.next[0], (long long)a.rs.next[1], (long long)a.rs.next[2]);
    assert_int_equal(count(x, "projector_offsets", "epoch >= 1"), NPART);
    compare_lists(x, &a);
    compare_logs(x, &a);
    recs_free(&a.rs);
    ann_store_close(a.ms);
}

/* ---- throughput: batches of 1,000 entries of ~270 bytes ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_throughput(void **state)
{
    ctx *x = *state;
    ann_err err;
    enum { BATCHES = 30, PER = 1000, LOGS = 10 };
    recs rs = {0};
    const char *t = "00000000-0000-4000-8000-00000000000d";
    char lids[LOGS][ANN_UUID_LEN + 1];
    uint64_t n[LOGS] = {0}, op[LOGS] = {0};
    for (int i = 0; i < LOGS; i++) {
        snprintf(lids[i], sizeof lids[i], "40000000-0000-4000-8000-%012d", i);
        rec_create(&rs, t, lids[i], ++op[i], NULL, 0, 5);
    }
    size_t first_write = rs.n;
    uint8_t body[270];
    for (size_t k = 0; k < sizeof body; k++)
        body[k] = (uint8_t)('a' + k % 26);
    const int64_t base = INT64_C(1780000000000000000);
    for (int b = 0; b < BATCHES; b++)
        for (int i = 0; i < LOGS; i++) { /* 10 writes of 100 entries per batch */
            ann_entry es[PER / LOGS];
            uint64_t ids[PER / LOGS];
            char iids[PER / LOGS][24];
            for (int k = 0; k < PER / LOGS; k++) {
                snprintf(iids[k], sizeof iids[k], "i%llu", (unsigned long long)(n[i] + 1));
                es[k] = (ann_entry){.time_ns = base + (int64_t)n[i] * 1000000,
                                    .insert_time_ns = base,
                                    .insert_id = iids[k],
                                    .insert_id_len = strlen(iids[k]),
                                    .body = body,
                                    .body_len = sizeof body};
                ids[k] = ++n[i];
            }
            rec_write(&rs, t, lids[i], ++op[i], n[i], es, ids, PER / LOGS);
        }
    claim_all(x->p);
    assert_int_equal(apply_range(x->p, &rs, 0, first_write, &err), 0);
    double t0 = now_s();
    for (int b = 0; b < BATCHES; b++) {
        size_t from = first_write + (size_t)b * LOGS;
        if (apply_range(x->p, &rs, from, from + LOGS, &err) != 0)
            fail_msg("apply: %s", err.msg);
    }
    double dt = now_s() - t0;
    assert_int_equal(count(x, "entries", "true"), BATCHES * PER);
    print_message("projector apply: %d batches of %d entries (270 B bodies): %.0f rows/s "
                  "(%.1f ms per batch)\n",
                  BATCHES, PER, BATCHES * PER / dt, dt * 1000 / BATCHES);
    recs_free(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_match_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_after_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zombie_fenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_projection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_index_and_walk_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_over_kafka, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
