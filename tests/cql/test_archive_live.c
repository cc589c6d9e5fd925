/*
 * The Cassandra archive against a real Cassandra (label `cql`): schema,
 * claim/head, dedup lookups, appends fenced by owner epoch, range reads over
 * bucket boundaries, revocation and deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "archive/archive_cassandra.h"
#include "live.h"

#define KS "ann_archive_test"

static ann_cql_config CQL;
static ann_archive_config CFG;
static char TENANT[64];

static int setup(void **state)
{
    (void)state;
    CQL = live_config();
    CFG = (ann_archive_config){.cql = &CQL, .keyspace = KS, .replication_factor = 1};
    snprintf(TENANT, sizeof TENANT, "tenant-%ld-%d", (long)time(NULL), (int)getpid());
    return 0;
}

static ann_archive *open_archive(void)
{
    ann_archive *a = NULL;
    ann_err err;
    if (ann_archive_open(&CFG, &a, &err) < 0)
        fail_msg("open: %s", err.msg);
    return a;
}

/* Entries with bodies "<tag>-<i>" and insert_ids "<tag>-id-<i>". */
typedef struct batch {
    ann_entry e[8];
    char ids[8][32];
    char bodies[8][32];
} batch;

static void make_batch(batch *b, const char *tag, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(b->ids[i], sizeof b->ids[i], "%s-id-%zu", tag, i);
        snprintf(b->bodies[i], sizeof b->bodies[i], "%s-%zu", tag, i);
        b->e[i] = (ann_entry){.time_ns = 1000 + (int64_t)i,
                              .insert_time_ns = 2000,
                              .severity = 9,
                              .insert_id = b->ids[i],
                              .insert_id_len = strlen(b->ids[i]),
                              .body = (const uint8_t *)b->bodies[i],
                              .body_len = strlen(b->bodies[i])};
    }
}

typedef struct seen {
    size_t n;
    uint64_t id[256];
    char body[256][32];
    uint32_t flags[256];
    int64_t time_ns[256];
} seen;

static int collect(const ann_entry *e, void *ud)
{
    seen *s = ud;
    if (s->n >= 256)
        return 1;
    s->id[s->n] = e->entry_id;
    snprintf(s->body[s->n], sizeof s->body[0], "%.*s", (int)e->body_len, (const char *)e->body);
    s->flags[s->n] = e->flags;
    s->time_ns[s->n] = e->time_ns;
    s->n++;
    return 0;
}

static void test_schema_claim_append_read(void **state)
{
    (void)state;
    ann_archive *a = open_archive();
    ann_archive_close(a);
    a = open_archive(); /* again: IF NOT EXISTS everywhere */
    ann_err err;
    ann_archive_head h;
    const char *log = "log-basic";
    assert_int_equal(ann_archive_head_load(a, TENANT, log, &h, &err), 0);
    assert_false(h.exists);
    assert_int_equal(ann_archive_claim(a, TENANT, log, &h, &err), 0);
    assert_int_equal(h.owner_epoch, 1);
    assert_int_equal(h.next_id, 1);

    batch b;
    make_batch(&b, "a", 3);
    assert_int_equal(ann_archive_append(a, TENANT, log, 1, 1, b.e, 3, NULL, &err), 0);
    make_batch(&b, "b", 2);
    assert_int_equal(ann_archive_append(a, TENANT, log, 1, 4, b.e, 2, NULL, &err), 0);
    assert_int_equal(ann_archive_head_load(a, TENANT, log, &h, &err), 0);
    assert_true(h.exists);
    assert_int_equal(h.next_id, 6);
    assert_int_equal(h.owner_epoch, 1);

    seen s = {0};
    assert_int_equal(ann_archive_read(a, TENANT, log, 1, 100, collect, &s, &err), 0);
    assert_int_equal(s.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(s.id[i], i + 1);
    assert_string_equal(s.body[0], "a-0");
    assert_string_equal(s.body[3], "b-0");
    assert_int_equal(s.time_ns[1], 1001);
    memset(&s, 0, sizeof s);
    assert_int_equal(ann_archive_read(a, TENANT, log, 2, 4, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.id[0], 2);

    /* lookups: known ids resolve, unknown are 0 */
    const char *q[] = {"a-id-1", "b-id-1", "nope"};
    size_t ql[] = {6, 6, 4};
    uint64_t ids[3];
    assert_int_equal(ann_archive_lookup(a, TENANT, log, &h, q, ql, 3, ids, &err), 0);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 5);
    assert_int_equal(ids[2], 0);

    /* the owner with a wrong next_id is refused too */
    ann_archive_head cur;
    assert_int_equal(ann_archive_append(a, TENANT, log, 1, 5, b.e, 1, &cur, &err),
                     ANN_ARCHIVE_FENCED);
    assert_int_equal(cur.next_id, 6);
    /* bad input */
    assert_int_equal(ann_archive_append(a, TENANT, log, 1, 6, b.e, 0, NULL, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_int_equal(ann_archive_read(a, TENANT, "no-such-log", 1, 10, collect, &s, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    ann_archive_close(a);
}

/* A zombie (stale owner) cannot append; its rows never become visible,
 * never count as duplicates, and the new owner's rows win. */
static void test_fencing(void **state)
{
    (void)state;
    ann_archive *old = open_archive(), *neu = open_archive();
    ann_err err;
    ann_archive_head h1, h2, cur;
    const char *log = "log-fenced";
    assert_int_equal(ann_archive_claim(old, TENANT, log, &h1, &err), 0);
    batch b;
    make_batch(&b, "first", 2);
    assert_int_equal(ann_archive_append(old, TENANT, log, h1.owner_epoch, 1, b.e, 2, NULL, &err),
                     0);

    /* a new sequencer takes over */
    assert_int_equal(ann_archive_claim(neu, TENANT, log, &h2, &err), 0);
    assert_int_equal(h2.owner_epoch, h1.owner_epoch + 1);
    assert_int_equal(h2.next_id, 3);

    /* the zombie tries to append ids 3..4 */
    batch z;
    make_batch(&z, "zombie", 2);
    assert_int_equal(ann_archive_append(old, TENANT, log, h1.owner_epoch, 3, z.e, 2, &cur, &err),
                     ANN_ARCHIVE_FENCED);
    assert_int_equal(cur.owner_epoch, h2.owner_epoch);
    assert_int_equal(cur.next_id, 3);
    /* the refused writer removed the rows it had written */
    {
        char q[512];
        snprintf(q, sizeof q,
                 "SELECT COUNT(*) FROM " KS ".log_entries WHERE tenant_id = '%s' AND "
                 "log_id = '%s' AND bucket = 0 AND entry_id >= 3",
                 TENANT, log);
        ann_cql_result r;
        assert_int_equal(ann_cql_query(ann_archive_conn(neu), q, NULL, &r, &err), 0);
        int64_t cnt = -1;
        assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &cnt, &err), 0);
        assert_int_equal(cnt, 0);
        ann_cql_result_release(&r);
    }
    /* its rows are not visible, and its insert_ids are not duplicates */
    seen s = {0};
    assert_int_equal(ann_archive_read(neu, TENANT, log, 1, 100, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);
    const char *q[] = {"zombie-id-0", "first-id-1"};
    size_t ql[] = {11, 10};
    uint64_t ids[2];
    assert_int_equal(ann_archive_lookup(neu, TENANT, log, &h2, q, ql, 2, ids, &err), 0);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 2);

    /* the new owner appends ids 3..5 over the zombie's rows and wins */
    batch n;
    make_batch(&n, "owner", 3);
    assert_int_equal(ann_archive_append(neu, TENANT, log, h2.owner_epoch, 3, n.e, 3, NULL, &err),
                     0);
    memset(&s, 0, sizeof s);
    assert_int_equal(ann_archive_read(neu, TENANT, log, 1, 100, collect, &s, &err), 0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.body[2], "owner-0");
    assert_string_equal(s.body[3], "owner-1");
    assert_string_equal(s.body[4], "owner-2");
    /* the zombie's insert_ids still do not resolve, even below next_id */
    ann_archive_head h;
    assert_int_equal(ann_archive_head_load(neu, TENANT, log, &h, &err), 0);
    assert_int_equal(h.next_id, 6);
    const char *q2[] = {"zombie-id-1", "owner-id-2"};
    size_t ql2[] = {11, 10};
    assert_int_equal(ann_archive_lookup(neu, TENANT, log, &h, q2, ql2, 2, ids, &err), 0);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 5);
    /* rows a crashed zombie left behind do not count: an insert_id row of
     * the old epoch pointing at a committed id, and one past next_id */
    {
        const char *ghosts[] = {"ghost-a", "ghost-b"};
        uint64_t at[] = {4, 9};
        for (int g = 0; g < 2; g++) {
            char q[512];
            snprintf(q, sizeof q,
                     "INSERT INTO " KS ".log_insert_ids (tenant_id, log_id, bucket, insert_id, "
                     "epoch, entry_id) VALUES ('%s', '%s', %d, '%s', %llu, %llu)",
                     TENANT, log, ann_archive_insert_id_bucket(ghosts[g], 7), ghosts[g],
                     (unsigned long long)h1.owner_epoch, (unsigned long long)at[g]);
            ann_cql_result r;
            assert_int_equal(ann_cql_query(ann_archive_conn(neu), q, NULL, &r, &err), 0);
            ann_cql_result_release(&r);
        }
        size_t gl[] = {7, 7};
        assert_int_equal(ann_archive_lookup(neu, TENANT, log, &h, ghosts, gl, 2, ids, &err), 0);
        assert_int_equal(ids[0], 0);
        assert_int_equal(ids[1], 0);
    }
    /* and the zombie stays fenced at the right next_id too */
    assert_int_equal(ann_archive_append(old, TENANT, log, h1.owner_epoch, 6, z.e, 2, &cur, &err),
                     ANN_ARCHIVE_FENCED);
    ann_archive_close(old);
    ann_archive_close(neu);
}

static void test_revoke(void **state)
{
    (void)state;
    ann_archive *old = open_archive(), *a = open_archive();
    ann_err err;
    ann_archive_head h1, h;
    const char *log = "log-revoke";
    assert_int_equal(ann_archive_claim(old, TENANT, log, &h1, &err), 0);
    batch z;
    make_batch(&z, "secret", 3);
    assert_int_equal(ann_archive_claim(a, TENANT, log, &h, &err), 0);
    assert_int_equal(ann_archive_append(a, TENANT, log, h.owner_epoch, 1, z.e, 3, NULL, &err), 0);
    /* a zombie that died between writing its rows and its (refused) commit
     * left a copy of the secret at id 2 */
    {
        char q[512];
        snprintf(q, sizeof q,
                 "INSERT INTO " KS ".log_entries (tenant_id, log_id, bucket, entry_id, epoch, "
                 "flags, insert_id, body) VALUES ('%s', '%s', 0, 2, %llu, 0, 'secret-id-1', "
                 "textAsBlob('secret-1'))",
                 TENANT, log, (unsigned long long)h1.owner_epoch);
        ann_cql_result r;
        assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
        ann_cql_result_release(&r);
    }

    /* an id out of range fails the call and revokes nothing */
    uint64_t bad[] = {1, 99};
    assert_int_equal(ann_archive_revoke(a, TENANT, log, bad, 2, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    uint64_t zero[] = {0};
    assert_int_equal(ann_archive_revoke(a, TENANT, log, zero, 1, &err), -1);
    seen s = {0};
    assert_int_equal(ann_archive_read(a, TENANT, log, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.flags[0] & ANN_ENTRY_REDACTED, 0);

    uint64_t ids[] = {2};
    assert_int_equal(ann_archive_revoke(a, TENANT, log, ids, 1, &err), 0);
    assert_int_equal(ann_archive_revoke(a, TENANT, log, ids, 1, &err), 0); /* again: harmless */
    memset(&s, 0, sizeof s);
    assert_int_equal(ann_archive_read(a, TENANT, log, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.id[1], 2);
    assert_true(s.flags[1] & ANN_ENTRY_REDACTED);
    assert_string_equal(s.body[1], "");
    assert_int_equal(s.time_ns[1], 1001); /* id and times stay */
    assert_string_equal(s.body[0], "secret-0");

    /* every stored row of id 2 is purged, the zombie's copy included */
    ann_cql_result r;
    char q[256];
    snprintf(q, sizeof q,
             "SELECT epoch, body FROM " KS ".log_entries WHERE tenant_id = '%s' AND "
             "log_id = '%s' AND bucket = 0 AND entry_id = 2",
             TENANT, log);
    assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
    assert_int_equal(r.nrows, 2);
    for (int32_t i = 0; i < r.nrows; i++)
        assert_true(ann_cql_cell(&r, i, 1)->len < 0);
    ann_cql_result_release(&r);
    /* the insert_id of a revoked entry still deduplicates */
    assert_int_equal(ann_archive_head_load(a, TENANT, log, &h, &err), 0);
    const char *iq[] = {"secret-id-1"};
    size_t il[] = {11};
    uint64_t found[1];
    assert_int_equal(ann_archive_lookup(a, TENANT, log, &h, iq, il, 1, found, &err), 0);
    assert_int_equal(found[0], 2);
    ann_archive_close(old);
    ann_archive_close(a);
}

static void test_delete_log(void **state)
{
    (void)state;
    ann_archive *a = open_archive();
    ann_err err;
    ann_archive_head h, cur;
    const char *log = "log-delete";
    assert_int_equal(ann_archive_claim(a, TENANT, log, &h, &err), 0);
    batch b;
    make_batch(&b, "gone", 4);
    assert_int_equal(ann_archive_append(a, TENANT, log, h.owner_epoch, 1, b.e, 4, NULL, &err), 0);
    assert_int_equal(ann_archive_delete_log(a, TENANT, log, &err), 0);
    assert_int_equal(ann_archive_delete_log(a, TENANT, log, &err), 0); /* idempotent */
    ann_archive_head d;
    assert_int_equal(ann_archive_head_load(a, TENANT, log, &d, &err), 0);
    assert_true(d.deleted);
    /* the owner is fenced, nobody can claim, nothing can be read */
    assert_int_equal(ann_archive_append(a, TENANT, log, h.owner_epoch, 5, b.e, 1, &cur, &err),
                     ANN_ARCHIVE_FENCED);
    assert_int_equal(ann_archive_claim(a, TENANT, log, &h, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    seen s = {0};
    assert_int_equal(ann_archive_read(a, TENANT, log, 1, 10, collect, &s, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    /* the rows are gone from every table */
    const char *tables[] = {"log_entries", "log_insert_ids"};
    for (int t = 0; t < 2; t++) {
        char q[1024];
        snprintf(q, sizeof q,
                 "SELECT COUNT(*) FROM " KS ".%s WHERE tenant_id = '%s' AND log_id = '%s' AND "
                 "bucket IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, "
                 "19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, "
                 "38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, "
                 "57, 58, 59, 60, 61, 62, 63)",
                 tables[t], TENANT, log);
        ann_cql_result r;
        assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
        int64_t n = -1;
        assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &n, &err), 0);
        assert_int_equal(n, 0);
        ann_cql_result_release(&r);
    }
    char q[256];
    snprintf(q, sizeof q,
             "SELECT first_id FROM " KS ".log_heads WHERE tenant_id = '%s' AND log_id = '%s'",
             TENANT, log);
    ann_cql_result r;
    assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
    for (int32_t i = 0; i < r.nrows; i++)
        assert_true(ann_cql_cell(&r, i, 0)->len < 0);
    ann_cql_result_release(&r);
    assert_int_equal(ann_archive_delete_log(a, TENANT, "never-existed", &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    ann_archive_close(a);
}

/* An append across a bucket boundary (ids 65530..65545) lands in two
 * partitions and reads back whole. */
static int count_ids(const ann_entry *e, void *ud)
{
    uint64_t *want = ud;
    if (e->entry_id != *want)
        fail_msg("id %llu, want %llu", (unsigned long long)e->entry_id, (unsigned long long)*want);
    (*want)++;
    return 0;
}

static void test_bucket_boundary(void **state)
{
    (void)state;
    ann_archive *a = open_archive();
    ann_err err;
    ann_archive_head h;
    const char *log = "log-buckets";
    assert_int_equal(ann_archive_claim(a, TENANT, log, &h, &err), 0);
    enum { FIRST = 65529, SECOND = 16 };
    ann_entry *e = calloc(FIRST, sizeof *e);
    char(*ids)[16] = calloc(FIRST + SECOND, sizeof *ids);
    assert_non_null(e);
    assert_non_null(ids);
    for (size_t i = 0; i < FIRST; i++) {
        snprintf(ids[i], sizeof ids[i], "x%zu", i);
        e[i] = (ann_entry){.insert_id = ids[i],
                           .insert_id_len = strlen(ids[i]),
                           .body = (const uint8_t *)"b",
                           .body_len = 1};
    }
    assert_int_equal(ann_archive_append(a, TENANT, log, h.owner_epoch, 1, e, FIRST, NULL, &err), 0);
    for (size_t i = 0; i < SECOND; i++) {
        snprintf(ids[FIRST + i], sizeof ids[0], "y%zu", i);
        e[i] = (ann_entry){.insert_id = ids[FIRST + i],
                           .insert_id_len = strlen(ids[FIRST + i]),
                           .body = (const uint8_t *)"c",
                           .body_len = 1};
    }
    assert_int_equal(
        ann_archive_append(a, TENANT, log, h.owner_epoch, FIRST + 1, e, SECOND, NULL, &err), 0);
    uint64_t want = 65500;
    assert_int_equal(ann_archive_read(a, TENANT, log, 65500, 70000, count_ids, &want, &err), 0);
    assert_int_equal(want, FIRST + SECOND + 1);
    char q[256];
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM " KS ".log_entries WHERE tenant_id = '%s' AND log_id = '%s' "
             "AND bucket = 1",
             TENANT, log);
    ann_cql_result r;
    assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
    int64_t n = 0;
    assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &n, &err), 0);
    assert_int_equal(n, FIRST + SECOND + 1 - 65536); /* ids 65536..65545 */
    ann_cql_result_release(&r);
    /* a lookup in the second bucket */
    const char *iq[] = {"y15", "x0"};
    size_t il[] = {3, 2};
    uint64_t found[2];
    assert_int_equal(ann_archive_head_load(a, TENANT, log, &h, &err), 0);
    assert_int_equal(ann_archive_lookup(a, TENANT, log, &h, iq, il, 2, found, &err), 0);
    assert_int_equal(found[0], FIRST + SECOND);
    assert_int_equal(found[1], 1);
    free(e);
    free(ids);
    ann_archive_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_claim_append_read),
        cmocka_unit_test(test_fencing),
        cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_delete_log),
        cmocka_unit_test(test_bucket_boundary),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
