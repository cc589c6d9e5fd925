/*
 * The Cassandra archive against a real Cassandra (label `cql`): schema,
 * partition claims, heads committed with one conditional batch per partition
 * (fenced by range_id), dedup lookups, range reads over bucket boundaries,
 * revocation with its audit rows, deletion, the API servers' log count.
 * Each run uses a keyspace of its own (t_arch_<hex>), dropped at the end.
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
#include "domain/integrity.h"
#include "domain/event.h"
#include "live.h"

static ann_cql_config CQL;
static ann_archive_config CFG;
static char TENANT[64];
static char KS[32];

static int setup(void **state)
{
    (void)state;
    CQL = live_config();
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(KS, sizeof KS, "t_arch_%08x", (unsigned)rand());
    CFG = (ann_archive_config){.cql = &CQL, .keyspace = KS, .replication_factor = 1};
    snprintf(TENANT, sizeof TENANT, "tenant-%ld-%d", (long)time(NULL), (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ann_cql_conn *c;
    ann_err err;
    if (ann_cql_conn_new(&CQL, &c, &err) == 0) {
        char q[128];
        snprintf(q, sizeof q, "DROP KEYSPACE IF EXISTS %s", KS);
        ann_cql_result r;
        (void)ann_cql_query(c, q, NULL, &r, &err);
        ann_cql_result_release(&r);
        ann_cql_conn_free(c);
    }
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

/* One entry's raw body (binary). */
typedef struct bodies_seen {
    size_t n;
    uint8_t body[128];
    size_t len;
    uint32_t flags;
} bodies_seen;

static int collect_body(const ann_entry *e, void *ud)
{
    bodies_seen *s = ud;
    s->n++;
    s->len = e->body_len < sizeof s->body ? e->body_len : sizeof s->body;
    memcpy(s->body, e->body, s->len);
    s->flags = e->flags;
    return 0;
}

/* A sequencer's step: rows under `epoch` as ids h->next_id.., then the head. */
static int append(ann_archive *a, int32_t part, uint64_t epoch, const char *log,
                  ann_archive_head *h, ann_entry *e, size_t n, uint64_t *cur, ann_err *err)
{
    for (size_t i = 0; i < n; i++)
        e[i].entry_id = h->next_id + i;
    if (ann_archive_write_entries(a, TENANT, log, epoch, e, n, err) < 0)
        return -1;
    ann_archive_head_update u = {
        .tenant_id = TENANT, .log_id = log, .next_id = h->next_id + n, .next_op = h->next_op + 1};
    int rc = ann_archive_commit_heads(a, part, epoch, &u, 1, cur, err);
    if (rc == 0) {
        h->next_id += n;
        h->next_op++;
    }
    return rc;
}

/* Creates a log's head (next_id 1, next_op 2 after the create). */
static void create(ann_archive *a, int32_t part, uint64_t epoch, const char *log,
                   ann_archive_head *h)
{
    ann_err err;
    ann_archive_head_update u = {.tenant_id = TENANT, .log_id = log, .next_id = 1, .next_op = 2};
    assert_int_equal(ann_archive_commit_heads(a, part, epoch, &u, 1, NULL, &err), 0);
    *h = (ann_archive_head){.exists = true, .next_id = 1, .next_op = 2};
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
    const int32_t part = 1;
    assert_int_equal(ann_archive_head_load(a, part, TENANT, log, true, &h, &err), 0);
    assert_false(h.exists);
    uint64_t epoch = 0, e2 = 0, now = 0;
    assert_int_equal(ann_archive_partition_epoch(a, part, &now, &err), 0);
    assert_int_equal(now, 0);
    assert_int_equal(ann_archive_claim_partition(a, part, &epoch, &err), 0);
    assert_int_equal(epoch, 1);
    assert_int_equal(ann_archive_claim_partition(a, part, &e2, &err), 0);
    assert_int_equal(e2, 2);
    epoch = e2;
    create(a, part, epoch, log, &h);

    batch b;
    make_batch(&b, "a", 3);
    assert_int_equal(append(a, part, epoch, log, &h, b.e, 3, NULL, &err), 0);
    make_batch(&b, "b", 2);
    assert_int_equal(append(a, part, epoch, log, &h, b.e, 2, NULL, &err), 0);
    ann_archive_head got;
    assert_int_equal(ann_archive_head_load(a, part, TENANT, log, false, &got, &err), 0);
    assert_true(got.exists);
    assert_false(got.deleted);
    assert_int_equal(got.next_id, 6);
    assert_int_equal(got.next_op, 4);

    seen s = {0};
    assert_int_equal(ann_archive_read_at(a, TENANT, log, got.next_id, 1, 100, collect, &s, &err),
                     0);
    assert_int_equal(s.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(s.id[i], i + 1);
    assert_string_equal(s.body[0], "a-0");
    assert_string_equal(s.body[3], "b-0");
    assert_int_equal(s.time_ns[1], 1001);
    memset(&s, 0, sizeof s);
    assert_int_equal(ann_archive_read_at(a, TENANT, log, got.next_id, 2, 4, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.id[0], 2);

    /* lookups: known ids resolve, unknown are 0; lookup_many mixes logs */
    const char *q[] = {"a-id-1", "b-id-1", "nope"};
    size_t ql[] = {6, 6, 4};
    uint64_t ids[3];
    assert_int_equal(ann_archive_lookup(a, TENANT, log, &got, q, ql, 3, ids, &err), 0);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 5);
    assert_int_equal(ids[2], 0);
    ann_archive_iid_query mq[] = {
        {.tenant_id = TENANT,
         .log_id = log,
         .next_id = 6,
         .insert_id = "b-id-0",
         .insert_id_len = 6},
        {.tenant_id = TENANT,
         .log_id = "other",
         .next_id = 6,
         .insert_id = "b-id-0",
         .insert_id_len = 6},
        /* a committed id only counts below the next_id the caller holds */
        {.tenant_id = TENANT,
         .log_id = log,
         .next_id = 4,
         .insert_id = "b-id-0",
         .insert_id_len = 6},
    };
    assert_int_equal(ann_archive_lookup_many(a, mq, 3, &err), 0);
    assert_int_equal(mq[0].id_out, 4);
    assert_int_equal(mq[1].id_out, 0);
    assert_int_equal(mq[2].id_out, 0);

    /* several heads of one partition in one conditional batch */
    ann_archive_head_update u[] = {
        {.tenant_id = TENANT, .log_id = "multi-1", .next_id = 1, .next_op = 2},
        {.tenant_id = TENANT, .log_id = "multi-2", .next_id = 1, .next_op = 2},
        {.tenant_id = TENANT, .log_id = log, .next_id = 6, .next_op = 5},
    };
    assert_int_equal(ann_archive_commit_heads(a, part, epoch, u, 3, NULL, &err), 0);
    const char *ts[] = {TENANT, TENANT, TENANT, TENANT};
    const char *ls[] = {"multi-1", "multi-2", log, "none"};
    ann_archive_head hs[4];
    assert_int_equal(ann_archive_heads_load(a, part, ts, ls, 4, false, hs, &err), 0);
    assert_true(hs[0].exists && hs[1].exists && hs[2].exists);
    assert_false(hs[3].exists);
    assert_int_equal(hs[2].next_op, 5);

    /* the API servers' count (at the log's own partition, 4 partitions) */
    bool exists = true, deleted = true;
    uint64_t count = 99;
    assert_int_equal(
        ann_archive_log_count(a, 4, TENANT, "nowhere", &exists, &deleted, &count, &err), 0);
    assert_false(exists);
    assert_int_equal(count, 0);

    /* bad input */
    assert_int_equal(ann_archive_commit_heads(a, part, 0, u, 1, NULL, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_int_equal(ann_archive_read(a, 4, TENANT, "no-such-log", 1, 10, collect, &s, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    ann_archive_close(a);
}

/* A zombie (stale owner of the partition) cannot commit; its rows never
 * become visible, never count as duplicates, and the new owner's rows win. */
static void test_fencing(void **state)
{
    (void)state;
    ann_archive *old = open_archive(), *neu = open_archive();
    ann_err err;
    const char *log = "log-fenced";
    const int32_t part = 2;
    uint64_t e1 = 0, e2 = 0, cur = 0;
    ann_archive_head h1, h2;
    assert_int_equal(ann_archive_claim_partition(old, part, &e1, &err), 0);
    create(old, part, e1, log, &h1);
    batch b;
    make_batch(&b, "first", 2);
    assert_int_equal(append(old, part, e1, log, &h1, b.e, 2, NULL, &err), 0);

    /* a new sequencer takes the partition over */
    assert_int_equal(ann_archive_claim_partition(neu, part, &e2, &err), 0);
    assert_int_equal(e2, e1 + 1);
    assert_int_equal(ann_archive_head_load(neu, part, TENANT, log, false, &h2, &err), 0);
    assert_int_equal(h2.next_id, 3);

    /* the zombie writes ids 3..4 and is refused at its commit */
    batch z;
    make_batch(&z, "zombie", 2);
    ann_archive_head zh = h1;
    assert_int_equal(append(old, part, e1, log, &zh, z.e, 2, &cur, &err), ANN_ARCHIVE_FENCED);
    assert_int_equal(cur, e2);
    ann_archive_head now;
    assert_int_equal(ann_archive_head_load(neu, part, TENANT, log, true, &now, &err), 0);
    assert_int_equal(now.next_id, 3);
    /* the refusal covers every head of the partition, not just this log's */
    ann_archive_head_update other = {.tenant_id = TENANT, .log_id = "other", .next_id = 1};
    assert_int_equal(ann_archive_commit_heads(old, part, e1, &other, 1, NULL, &err),
                     ANN_ARCHIVE_FENCED);

    /* its rows are not visible, and its insert_ids are not duplicates */
    seen s = {0};
    assert_int_equal(ann_archive_read(neu, 1, TENANT, log, 1, 100, collect, &s, &err), -1);
    assert_int_equal(ann_archive_read_at(neu, TENANT, log, now.next_id, 1, 100, collect, &s, &err),
                     0);
    assert_int_equal(s.n, 2);
    const char *q[] = {"zombie-id-0", "first-id-1"};
    size_t ql[] = {11, 10};
    uint64_t ids[2];
    assert_int_equal(ann_archive_lookup(neu, TENANT, log, &now, q, ql, 2, ids, &err), 0);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 2);

    /* the new owner writes ids 3..5 over the zombie's rows and wins */
    batch n;
    make_batch(&n, "owner", 3);
    assert_int_equal(append(neu, part, e2, log, &h2, n.e, 3, NULL, &err), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(ann_archive_read_at(neu, TENANT, log, h2.next_id, 1, 100, collect, &s, &err),
                     0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.body[2], "owner-0");
    assert_string_equal(s.body[3], "owner-1");
    assert_string_equal(s.body[4], "owner-2");
    /* the zombie's insert_ids still do not resolve, even below next_id */
    const char *q2[] = {"zombie-id-1", "owner-id-2"};
    size_t ql2[] = {11, 10};
    assert_int_equal(ann_archive_lookup(neu, TENANT, log, &h2, q2, ql2, 2, ids, &err), 0);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 5);
    /* rows a crashed zombie left behind do not count: an insert_id row of
     * the old epoch pointing at a committed id, and one past next_id */
    {
        const char *ghosts[] = {"ghost-a", "ghost-b"};
        uint64_t at[] = {4, 9};
        for (int g = 0; g < 2; g++) {
            char cq[512];
            snprintf(cq, sizeof cq,
                     "INSERT INTO %s.log_insert_ids (tenant_id, log_id, bucket, insert_id, "
                     "epoch, entry_id) VALUES ('%s', '%s', %d, '%s', %llu, %llu)",
                     KS, TENANT, log, ann_archive_insert_id_bucket(ghosts[g], 7), ghosts[g],
                     (unsigned long long)e1, (unsigned long long)at[g]);
            ann_cql_result r;
            assert_int_equal(ann_cql_query(ann_archive_conn(neu), cq, NULL, &r, &err), 0);
            ann_cql_result_release(&r);
        }
        size_t gl[] = {7, 7};
        assert_int_equal(ann_archive_lookup(neu, TENANT, log, &h2, ghosts, gl, 2, ids, &err), 0);
        assert_int_equal(ids[0], 0);
        assert_int_equal(ids[1], 0);
    }
    /* and the zombie stays fenced */
    assert_int_equal(append(old, part, e1, log, &zh, z.e, 2, &cur, &err), ANN_ARCHIVE_FENCED);
    ann_archive_close(old);
    ann_archive_close(neu);
}

/* A keyspace of the layout before the batch rows (a log_entries table) is refused by name,
 * not opened with its entries unseen. */
static void test_old_layout_refused(void **state)
{
    (void)state;
    char ks[64], q[256];
    snprintf(ks, sizeof ks, "%s_old", KS);
    ann_cql_conn *c;
    ann_err err;
    ann_cql_result r;
    if (ann_cql_conn_new(&CQL, &c, &err) != 0)
        fail_msg("connect: %s", err.msg);
    snprintf(q, sizeof q,
             "CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', "
             "'replication_factor': 1}",
             ks);
    assert_int_equal(ann_cql_query(c, q, NULL, &r, &err), 0);
    ann_cql_result_release(&r);
    snprintf(q, sizeof q, "CREATE TABLE %s.log_entries (k text PRIMARY KEY, v blob)", ks);
    assert_int_equal(ann_cql_query(c, q, NULL, &r, &err), 0);
    ann_cql_result_release(&r);

    ann_archive_config cfg = CFG;
    cfg.keyspace = ks;
    ann_archive *a = NULL;
    int rc = ann_archive_open(&cfg, &a, &err);
    snprintf(q, sizeof q, "DROP KEYSPACE IF EXISTS %s", ks);
    (void)ann_cql_query(c, q, NULL, &r, NULL);
    ann_cql_result_release(&r);
    ann_cql_conn_free(c);
    assert_int_equal(rc, -1);
    assert_null(a);
    assert_int_equal(err.code, ANN_EPRECOND);
    assert_non_null(strstr(err.msg, "older annals"));
    assert_non_null(strstr(err.msg, ks));

    /* the current layout opens, and opens again */
    a = open_archive();
    ann_archive_close(a);
    a = open_archive();
    ann_archive_close(a);
}

/* The integrity tree's state rides on the head (docs/integrity.md): tree, checkpoint and
 * sealed come back as committed, and a commit without them clears them. A revocation of an
 * entry whose body carries its salt field leaves exactly the body_hash field. */
static void test_head_tree_and_salted_redaction(void **state)
{
    (void)state;
    ann_archive *a = open_archive();
    ann_err err;
    ann_archive_head h;
    const char *log = "log-tree";
    const int32_t part = 4;
    uint64_t epoch = 0;
    assert_int_equal(ann_archive_claim_partition(a, part, &epoch, &err), 0);
    create(a, part, epoch, log, &h);
    const uint8_t tree[] = {1, 0, 0, 0, 0, 0, 0, 0, 0}, note[] = "annals/log-tree\n0\n";
    ann_archive_head_update u = {.tenant_id = TENANT,
                                 .log_id = log,
                                 .next_id = 1,
                                 .next_op = 3,
                                 .tree = tree,
                                 .tree_len = sizeof tree,
                                 .checkpoint = note,
                                 .checkpoint_len = sizeof note - 1,
                                 .sealed = true};
    assert_int_equal(ann_archive_commit_heads(a, part, epoch, &u, 1, NULL, &err), 0);
    ann_archive_head got;
    assert_int_equal(ann_archive_head_load(a, part, TENANT, log, false, &got, &err), 0);
    assert_true(got.exists && got.sealed);
    assert_int_equal(got.tree_len, sizeof tree);
    assert_memory_equal(got.tree, tree, sizeof tree);
    assert_int_equal(got.checkpoint_len, sizeof note - 1);
    assert_memory_equal(got.checkpoint, note, sizeof note - 1);
    ann_archive_head_release(&got);
    assert_null(got.tree);
    u.tree = u.checkpoint = NULL;
    u.tree_len = u.checkpoint_len = 0;
    u.sealed = false;
    assert_int_equal(ann_archive_commit_heads(a, part, epoch, &u, 1, NULL, &err), 0);
    assert_int_equal(ann_archive_head_load(a, part, TENANT, log, true, &got, &err), 0);
    assert_true(got.exists && !got.sealed && !got.tree && !got.checkpoint);

    /* a body with its salt field; revoked, the body_hash field alone */
    uint8_t body[64], salt[32], want_hash[32], want[ANN_INTEGRITY_FIELD_LEN];
    memcpy(body, "\xf2\x01\x06secret", 9); /* LogEntry.text_payload (30) = "secret" */
    for (int i = 0; i < 32; i++)
        salt[i] = (uint8_t)(i * 7 + 1);
    ann_integrity_field(ANN_INTEGRITY_SALT, salt, body + 9);
    size_t blen = 9 + ANN_INTEGRITY_FIELD_LEN;
    assert_int_equal(ann_integrity_body_hash(body, blen, want_hash, &err), 0);
    ann_integrity_field(ANN_INTEGRITY_HASH, want_hash, want);
    ann_entry e = {.time_ns = 5,
                   .insert_time_ns = 6,
                   .insert_id = "t-1",
                   .insert_id_len = 3,
                   .body = body,
                   .body_len = blen};
    assert_int_equal(append(a, part, epoch, log, &h, &e, 1, NULL, &err), 0);
    uint64_t id = 1;
    assert_int_equal(ann_archive_revoke(a, TENANT, log, &id, 1, "x", "y", 1, &err), 0);
    bodies_seen bs = {0};
    assert_int_equal(ann_archive_read_at(a, TENANT, log, h.next_id, 1, 2, collect_body, &bs, &err),
                     0);
    assert_int_equal(bs.n, 1);
    assert_true(bs.flags & ANN_ENTRY_REDACTED);
    assert_int_equal(bs.len, ANN_INTEGRITY_FIELD_LEN);
    assert_memory_equal(bs.body, want, ANN_INTEGRITY_FIELD_LEN);
    /* again: the hash field stays as it is */
    assert_int_equal(ann_archive_revoke(a, TENANT, log, &id, 1, "x", "y", 1, &err), 0);
    memset(&bs, 0, sizeof bs);
    assert_int_equal(ann_archive_read_at(a, TENANT, log, h.next_id, 1, 2, collect_body, &bs, &err),
                     0);
    assert_memory_equal(bs.body, want, ANN_INTEGRITY_FIELD_LEN);
    ann_archive_close(a);
}

static void test_revoke(void **state)
{
    (void)state;
    ann_archive *a = open_archive();
    ann_err err;
    ann_archive_head h;
    const char *log = "log-revoke";
    const int32_t part = 3;
    uint64_t e1 = 0, e2 = 0;
    assert_int_equal(ann_archive_claim_partition(a, part, &e1, &err), 0);
    assert_int_equal(ann_archive_claim_partition(a, part, &e2, &err), 0);
    create(a, part, e2, log, &h);
    batch z;
    make_batch(&z, "secret", 3);
    assert_int_equal(append(a, part, e2, log, &h, z.e, 3, NULL, &err), 0);
    /* a zombie (epoch e1) that died between writing its rows and its
     * (refused) commit left a copy of the secret at id 2, in a row of its own */
    {
        batch zc;
        make_batch(&zc, "secret", 2);
        zc.e[1].entry_id = 2;
        assert_int_equal(ann_archive_write_entries(a, TENANT, log, e1, &zc.e[1], 1, &err), 0);
    }
    uint64_t zero[] = {0};
    assert_int_equal(ann_archive_revoke(a, TENANT, log, zero, 1, "x", "y", 1, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);

    uint64_t ids[] = {2};
    assert_int_equal(ann_archive_revoke(a, TENANT, log, ids, 1, "alice", "leak", 111, &err), 0);
    /* again: harmless, and the first revocation is the one kept */
    assert_int_equal(ann_archive_revoke(a, TENANT, log, ids, 1, "bob", "again", 222, &err), 0);
    seen s = {0};
    assert_int_equal(ann_archive_read_at(a, TENANT, log, h.next_id, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.id[1], 2);
    assert_true(s.flags[1] & ANN_ENTRY_REDACTED);
    assert_string_equal(s.body[1], "");
    assert_int_equal(s.time_ns[1], 1001); /* id and times stay */
    assert_string_equal(s.body[0], "secret-0");
    assert_int_equal(s.flags[0] & ANN_ENTRY_REDACTED, 0);
    bool found = false;
    char actor[32], reason[32];
    int64_t t = 0;
    assert_int_equal(ann_archive_revocation(a, TENANT, log, 2, &found, actor, sizeof actor, reason,
                                            sizeof reason, &t, &err),
                     0);
    assert_true(found);
    assert_string_equal(actor, "alice");
    assert_string_equal(reason, "leak");
    assert_int_equal(t, 111);
    assert_int_equal(ann_archive_revocation(a, TENANT, log, 1, &found, actor, sizeof actor, reason,
                                            sizeof reason, &t, &err),
                     0);
    assert_false(found);

    /* every stored row of id 2 is purged, the zombie's copy included: no live blob holds
     * the secret's bytes, the other entries' bodies stay */
    ann_cql_result r;
    char q[256];
    snprintf(q, sizeof q,
             "SELECT first_id, epoch, packed FROM %s.log_batches WHERE tenant_id = '%s' AND "
             "log_id = '%s' AND bucket = 0",
             KS, TENANT, log);
    assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
    assert_int_equal(r.nrows, 2);
    bool other_body = false;
    for (int32_t i = 0; i < r.nrows; i++) {
        const uint8_t *blob = NULL;
        size_t bl = 0;
        assert_int_equal(ann_cql_get_blob(&r, i, 2, &blob, &bl, &err), 0);
        assert_null(memmem(blob, bl, "secret-1", 8));
        other_body = other_body || memmem(blob, bl, "secret-2", 8) != NULL;
    }
    assert_true(other_body);
    ann_cql_result_release(&r);
    /* the insert_id of a revoked entry still deduplicates */
    const char *iq[] = {"secret-id-1"};
    size_t il[] = {11};
    uint64_t got[1];
    assert_int_equal(ann_archive_lookup(a, TENANT, log, &h, iq, il, 1, got, &err), 0);
    assert_int_equal(got[0], 2);
    ann_archive_close(a);
}

static void test_delete_log(void **state)
{
    (void)state;
    ann_archive *a = open_archive();
    ann_err err;
    ann_archive_head h;
    const char *log = "log-delete";
    /* the log's own partition, so that the API servers' count finds it */
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(TENANT, log, key);
    const int32_t part = ann_event_partition(key, strlen(key), 4);
    uint64_t epoch = 0;
    assert_int_equal(ann_archive_claim_partition(a, part, &epoch, &err), 0);
    create(a, part, epoch, log, &h);
    batch b;
    make_batch(&b, "gone", 4);
    assert_int_equal(append(a, part, epoch, log, &h, b.e, 4, NULL, &err), 0);
    uint64_t rid[] = {3};
    assert_int_equal(ann_archive_revoke(a, TENANT, log, rid, 1, "a", "r", 5, &err), 0);
    bool exists = false, deleted = true;
    uint64_t count = 0;
    assert_int_equal(ann_archive_log_count(a, 4, TENANT, log, &exists, &deleted, &count, &err), 0);
    assert_true(exists);
    assert_false(deleted);
    assert_int_equal(count, 4);
    seen s = {0};
    assert_int_equal(ann_archive_read(a, 4, TENANT, log, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.n, 4);

    /* the sequencer marks the head deleted in its fenced batch, then removes rows */
    ann_archive_head_update u = {.tenant_id = TENANT,
                                 .log_id = log,
                                 .next_id = h.next_id,
                                 .next_op = h.next_op + 1,
                                 .deleted = true};
    assert_int_equal(ann_archive_commit_heads(a, part, epoch, &u, 1, NULL, &err), 0);
    assert_int_equal(ann_archive_delete_rows(a, TENANT, log, h.next_id, &err), 0);
    assert_int_equal(ann_archive_delete_rows(a, TENANT, log, h.next_id, &err), 0); /* idempotent */
    assert_int_equal(ann_archive_log_count(a, 4, TENANT, log, &exists, &deleted, &count, &err), 0);
    assert_true(exists);
    assert_true(deleted);
    memset(&s, 0, sizeof s);
    assert_int_equal(ann_archive_read(a, 4, TENANT, log, 1, 10, collect, &s, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    /* the rows are gone from every table */
    const char *tables[] = {"log_batches", "log_insert_ids", "log_requests"};
    for (int t = 0; t < 3; t++) {
        char q[1024];
        snprintf(q, sizeof q,
                 "SELECT COUNT(*) FROM %s.%s WHERE tenant_id = '%s' AND log_id = '%s' AND "
                 "bucket IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, "
                 "19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, "
                 "38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, "
                 "57, 58, 59, 60, 61, 62, 63)",
                 KS, tables[t], TENANT, log);
        ann_cql_result r;
        assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
        int64_t n = -1;
        assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &n, &err), 0);
        assert_int_equal(n, 0);
        ann_cql_result_release(&r);
    }
    bool found = true;
    assert_int_equal(
        ann_archive_revocation(a, TENANT, log, 3, &found, NULL, 0, NULL, 0, NULL, &err), 0);
    assert_false(found);
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
    const int32_t part = 5;
    uint64_t epoch = 0;
    assert_int_equal(ann_archive_claim_partition(a, part, &epoch, &err), 0);
    create(a, part, epoch, log, &h);
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
    assert_int_equal(append(a, part, epoch, log, &h, e, FIRST, NULL, &err), 0);
    for (size_t i = 0; i < SECOND; i++) {
        snprintf(ids[FIRST + i], sizeof ids[0], "y%zu", i);
        e[i] = (ann_entry){.insert_id = ids[FIRST + i],
                           .insert_id_len = strlen(ids[FIRST + i]),
                           .body = (const uint8_t *)"c",
                           .body_len = 1};
    }
    assert_int_equal(append(a, part, epoch, log, &h, e, SECOND, NULL, &err), 0);
    uint64_t want = 65500;
    assert_int_equal(
        ann_archive_read_at(a, TENANT, log, h.next_id, 65500, 70000, count_ids, &want, &err), 0);
    assert_int_equal(want, FIRST + SECOND + 1);
    /* the second append (65530..65545) is one row in bucket 0 that crosses into bucket 1:
     * a read from inside bucket 1 finds it there */
    want = 65540;
    assert_int_equal(
        ann_archive_read_at(a, TENANT, log, h.next_id, 65540, 65542, count_ids, &want, &err), 0);
    assert_int_equal(want, 65542);
    const int64_t rows_in[2] = {(FIRST + ANN_ARCHIVE_BATCH_IDS - 1) / ANN_ARCHIVE_BATCH_IDS + 1, 0};
    for (int bk = 0; bk < 2; bk++) {
        char q[256];
        snprintf(q, sizeof q,
                 "SELECT COUNT(*) FROM %s.log_batches WHERE tenant_id = '%s' AND log_id = '%s' "
                 "AND bucket = %d",
                 KS, TENANT, log, bk);
        ann_cql_result r;
        assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
        int64_t n = 0;
        assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &n, &err), 0);
        assert_int_equal(n, rows_in[bk]);
        ann_cql_result_release(&r);
    }
    /* a lookup in the second bucket */
    const char *iq[] = {"y15", "x0"};
    size_t il[] = {3, 2};
    uint64_t found[2];
    assert_int_equal(ann_archive_lookup(a, TENANT, log, &h, iq, il, 2, found, &err), 0);
    assert_int_equal(found[0], FIRST + SECOND);
    assert_int_equal(found[1], 1);
    free(e);
    free(ids);
    ann_archive_close(a);
}

/* A lookup of thousands of insert_ids at once (the sequencer's dedup of a batch): every
 * bucket, more distinct ids in one bucket than one query carries, the same insert_id asked
 * twice, asked for another log, and ids never written. */
static void test_lookup_many_large(void **state)
{
    (void)state;
    ann_archive *a = open_archive();
    ann_err err;
    const int32_t part = 11;
    uint64_t epoch = 0;
    assert_int_equal(ann_archive_claim_partition(a, part, &epoch, &err), 0);
    const char *log = "large-lookup";
    ann_archive_head h;
    create(a, part, epoch, log, &h);
    enum { N = 10000 };
    static char ids[N][24];
    static ann_entry e[N];
    for (size_t i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "big-%zu", i);
        e[i] = (ann_entry){.time_ns = 1,
                           .insert_id = ids[i],
                           .insert_id_len = strlen(ids[i]),
                           .body = (const uint8_t *)"x",
                           .body_len = 1};
    }
    /* the first half written; the second half never */
    assert_int_equal(append(a, part, epoch, log, &h, e, N / 2, NULL, &err), 0);
    static ann_archive_iid_query q[N + 3];
    for (size_t i = 0; i < N; i++)
        q[i] = (ann_archive_iid_query){.tenant_id = TENANT,
                                       .log_id = log,
                                       .next_id = h.next_id,
                                       .insert_id = ids[i],
                                       .insert_id_len = strlen(ids[i])};
    q[N] = q[7]; /* asked twice */
    q[N + 1] = q[8];
    q[N + 1].log_id = "other"; /* another log: not there */
    q[N + 2] = q[9];
    q[N + 2].next_id = 5; /* committed id 10 is not below this next_id */
    assert_int_equal(ann_archive_lookup_many(a, q, N + 3, &err), 0);
    size_t buckets[ANN_ARCHIVE_ID_BUCKETS] = {0};
    for (size_t i = 0; i < N; i++) {
        buckets[ann_archive_insert_id_bucket(ids[i], strlen(ids[i]))]++;
        assert_int_equal(q[i].id_out, i < N / 2 ? i + 1 : 0);
    }
    size_t most = 0;
    for (int b = 0; b < ANN_ARCHIVE_ID_BUCKETS; b++) {
        assert_true(buckets[b] > 0);
        most = buckets[b] > most ? buckets[b] : most;
    }
    assert_true(most > 128); /* one bucket needed more than one query */
    assert_int_equal(q[N].id_out, 8);
    assert_int_equal(q[N + 1].id_out, 0);
    assert_int_equal(q[N + 2].id_out, 0);
    ann_archive_close(a);
}

/* COUNT(*) of a table's rows for the test log in buckets 0..nb-1. */
static int64_t count_rows(ann_archive *a, const char *table, const char *log, int nb)
{
    int64_t total = 0;
    ann_err err;
    for (int bk = 0; bk < nb; bk++) {
        char q[256];
        snprintf(q, sizeof q,
                 "SELECT COUNT(*) FROM %s.%s WHERE tenant_id = '%s' AND log_id = '%s' AND "
                 "bucket = %d",
                 KS, table, TENANT, log, bk);
        ann_cql_result r;
        assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
        int64_t n = 0;
        assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &n, &err), 0);
        total += n;
        ann_cql_result_release(&r);
    }
    return total;
}

/* Rows per entry: a command of 3,000 entries is 3 batch rows; its client insert_ids a row
 * each, its server-made ones one log_requests row. Reads by id inside a batch, and across
 * rows a zombie left with other boundaries and a lower epoch. */
static void test_batch_rows(void **state)
{
    (void)state;
    ann_archive *a = open_archive();
    ann_err err;
    const int32_t part = 13;
    uint64_t e1 = 0, e2 = 0;
    assert_int_equal(ann_archive_claim_partition(a, part, &e1, &err), 0);
    assert_int_equal(ann_archive_claim_partition(a, part, &e2, &err), 0);
    enum { N = 3000 };
    static char ids[N][48], bodies[N][16];
    static ann_entry e[N];
    const char *logs[] = {"rows-client", "rows-server"};
    for (int g = 0; g < 2; g++) {
        ann_archive_head h;
        create(a, part, e2, logs[g], &h);
        for (size_t i = 0; i < N; i++) {
            if (g == 0)
                snprintf(ids[i], sizeof ids[i], "client-%zu", i);
            else
                snprintf(ids[i], sizeof ids[i], "0b0c7a3e-1111-4222-8333-444455556666/%zu", i);
            snprintf(bodies[i], sizeof bodies[i], "body-%zu", i);
            e[i] = (ann_entry){.time_ns = (int64_t)i,
                               .flags = g == 1 ? ANN_ENTRY_GENERATED_ID : 0,
                               .insert_id = ids[i],
                               .insert_id_len = strlen(ids[i]),
                               .body = (const uint8_t *)bodies[i],
                               .body_len = strlen(bodies[i])};
        }
        assert_int_equal(append(a, part, e2, logs[g], &h, e, N, NULL, &err), 0);
        assert_int_equal(count_rows(a, "log_batches", logs[g], 1),
                         (N + ANN_ARCHIVE_BATCH_IDS - 1) / ANN_ARCHIVE_BATCH_IDS);
        int64_t iid_rows = 0;
        {
            char q[1024];
            int o = snprintf(q, sizeof q,
                             "SELECT COUNT(*) FROM %s.log_insert_ids WHERE tenant_id = '%s' AND "
                             "log_id = '%s' AND bucket IN (",
                             KS, TENANT, logs[g]);
            for (int bk = 0; bk < ANN_ARCHIVE_ID_BUCKETS; bk++)
                o += snprintf(q + o, sizeof q - (size_t)o, bk ? ", %d" : "%d", bk);
            snprintf(q + o, sizeof q - (size_t)o, ")");
            ann_cql_result r;
            assert_int_equal(ann_cql_query(ann_archive_conn(a), q, NULL, &r, &err), 0);
            assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &iid_rows, &err), 0);
            ann_cql_result_release(&r);
        }
        assert_int_equal(iid_rows, g == 0 ? N : 0);
        assert_int_equal(count_rows(a, "log_requests", logs[g], ANN_ARCHIVE_ID_BUCKETS), g);
        /* a read by id inside a batch row, and one across two rows */
        seen s = {0};
        assert_int_equal(
            ann_archive_read_at(a, TENANT, logs[g], h.next_id, 1500, 1501, collect, &s, &err), 0);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.id[0], 1500);
        assert_string_equal(s.body[0], "body-1499");
        uint64_t want = 1020;
        assert_int_equal(
            ann_archive_read_at(a, TENANT, logs[g], h.next_id, 1020, 1030, count_ids, &want, &err),
            0);
        assert_int_equal(want, 1030);
        /* every id resolves: client ones by their rows, server-made ones (no row of their
         * own) through their request's row; one past the request's entries does not */
        char past[64];
        snprintf(past, sizeof past, "0b0c7a3e-1111-4222-8333-444455556666/%d", N);
        const char *pq[] = {ids[0], ids[5], ids[N - 1], past};
        size_t pl[] = {strlen(ids[0]), strlen(ids[5]), strlen(ids[N - 1]), strlen(past)};
        uint64_t got[4];
        assert_int_equal(ann_archive_lookup(a, TENANT, logs[g], &h, pq, pl, 4, got, &err), 0);
        assert_int_equal(got[0], 1);
        assert_int_equal(got[1], 6);
        assert_int_equal(got[2], N);
        assert_int_equal(got[3], 0);
    }
    /* a zombie (epoch e1) left rows with other boundaries inside the committed ones, one
     * starting mid-row: every id still reads from the highest epoch */
    {
        batch z;
        make_batch(&z, "zombie", 4);
        for (size_t i = 0; i < 4; i++)
            z.e[i].entry_id = 1500 + i;
        assert_int_equal(ann_archive_write_entries(a, TENANT, logs[0], e1, z.e, 4, &err), 0);
        ann_archive_head h;
        assert_int_equal(ann_archive_head_load(a, part, TENANT, logs[0], false, &h, &err), 0);
        seen s = {0};
        assert_int_equal(
            ann_archive_read_at(a, TENANT, logs[0], h.next_id, 1499, 1505, collect, &s, &err), 0);
        assert_int_equal(s.n, 6);
        for (size_t i = 0; i < 6; i++) {
            char want[16];
            snprintf(want, sizeof want, "body-%zu", 1498 + i);
            assert_int_equal(s.id[i], 1499 + i);
            assert_string_equal(s.body[i], want);
        }
        /* and a newer epoch's uncommitted row past next_id is not read */
        uint64_t e3 = 0;
        assert_int_equal(ann_archive_claim_partition(a, part, &e3, &err), 0);
        z.e[0].entry_id = N + 1;
        assert_int_equal(ann_archive_write_entries(a, TENANT, logs[0], e3, z.e, 1, &err), 0);
        memset(&s, 0, sizeof s);
        assert_int_equal(
            ann_archive_read_at(a, TENANT, logs[0], h.next_id, N - 1, N + 5, collect, &s, &err), 0);
        assert_int_equal(s.n, 2);
        assert_int_equal(s.id[1], N);
    }
    ann_archive_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_claim_append_read),
        cmocka_unit_test(test_fencing),
        cmocka_unit_test(test_old_layout_refused),
        cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_head_tree_and_salted_redaction),
        cmocka_unit_test(test_delete_log),
        cmocka_unit_test(test_bucket_boundary),
        cmocka_unit_test(test_lookup_many_large),
        cmocka_unit_test(test_batch_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
