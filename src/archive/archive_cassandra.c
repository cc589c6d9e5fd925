/*
 * The Cassandra archive: schema, partition claims, heads, fenced head commits,
 * batch rows (packed entries, batch_codec.h) and insert_id rows, dedup lookups,
 * range reads, revocation (batch rows rewritten), deletion.
 * See archive_cassandra.h and docs/cql.md.
 */
#include "archive/archive_cassandra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/batch_codec.h"
#include "domain/event.h"
#include "domain/integrity.h"

enum {
    S_PART_GET,
    S_PART_INIT,
    S_PART_CLAIM,
    S_HEAD_GET,
    S_HEAD_SET,
    S_BATCH_INS,
    S_ID_INS,
    S_ID_GET,
    S_REQ_INS,
    S_REQ_GET,
    S_DEL_REQS,
    S_BATCH_META,
    S_BATCH_GET,
    S_BATCH_SET,
    S_REV_INS,
    S_REV_GET,
    S_DEL_BUCKET,
    S_DEL_IDS,
    S_DEL_REVS,
    S_COUNT
};

/* The archive's tables, each with a %s for the keyspace. */
static const char *const schema_text[] = {
    "CREATE TABLE IF NOT EXISTS %s.seq_heads (partition int, tenant_id text, log_id text, "
    "range_id bigint static, next_id bigint, next_op bigint, deleted boolean, tree blob, "
    "checkpoint blob, sealed boolean, PRIMARY KEY ((partition), tenant_id, log_id))",
    "CREATE TABLE IF NOT EXISTS %s.log_batches (tenant_id text, log_id text, "
    "bucket bigint, first_id bigint, epoch bigint, n int, packed blob, "
    "PRIMARY KEY ((tenant_id, log_id, bucket), first_id, epoch)) "
    "WITH CLUSTERING ORDER BY (first_id ASC, epoch DESC)",
    "CREATE TABLE IF NOT EXISTS %s.log_insert_ids (tenant_id text, log_id text, "
    "bucket int, insert_id text, epoch bigint, entry_id bigint, "
    "PRIMARY KEY ((tenant_id, log_id, bucket), insert_id, epoch)) "
    "WITH CLUSTERING ORDER BY (insert_id ASC, epoch DESC)",
    "CREATE TABLE IF NOT EXISTS %s.log_requests (tenant_id text, log_id text, "
    "bucket int, request text, epoch bigint, first_id bigint, "
    "PRIMARY KEY ((tenant_id, log_id, bucket), request, epoch)) "
    "WITH CLUSTERING ORDER BY (request ASC, epoch DESC)",
    "CREATE TABLE IF NOT EXISTS %s.revocations (tenant_id text, log_id text, "
    "entry_id bigint, actor text, reason text, time_ns bigint, "
    "PRIMARY KEY ((tenant_id, log_id), entry_id))",
};

static const char *const stmt_text[S_COUNT] = {
    [S_PART_GET] = "SELECT range_id FROM %s.seq_heads WHERE partition = ? LIMIT 1",
    [S_PART_INIT] = "INSERT INTO %s.seq_heads (partition, range_id) VALUES (?, 1) IF NOT EXISTS",
    [S_PART_CLAIM] = "UPDATE %s.seq_heads SET range_id = ? WHERE partition = ? IF range_id = ?",
    [S_HEAD_GET] = "SELECT next_id, next_op, deleted, tree, checkpoint, sealed FROM "
                   "%s.seq_heads WHERE partition = ? AND tenant_id = ? AND log_id = ?",
    [S_HEAD_SET] = "UPDATE %s.seq_heads SET next_id = ?, next_op = ?, deleted = ?, tree = ?, "
                   "checkpoint = ?, sealed = ? WHERE partition = ? AND tenant_id = ? AND "
                   "log_id = ? IF range_id = ?",
    [S_BATCH_INS] = "INSERT INTO %s.log_batches (tenant_id, log_id, bucket, first_id, epoch, n, "
                    "packed) VALUES (?, ?, ?, ?, ?, ?, ?)",
    [S_ID_INS] = "INSERT INTO %s.log_insert_ids (tenant_id, log_id, bucket, insert_id, epoch, "
                 "entry_id) VALUES (?, ?, ?, ?, ?, ?)",
    [S_ID_GET] = "SELECT insert_id, epoch, entry_id FROM %s.log_insert_ids WHERE tenant_id = ? "
                 "AND log_id = ? AND bucket = ? AND insert_id IN ?",
    [S_REQ_INS] = "INSERT INTO %s.log_requests (tenant_id, log_id, bucket, request, epoch, "
                  "first_id) VALUES (?, ?, ?, ?, ?, ?)",
    [S_REQ_GET] = "SELECT request, epoch, first_id FROM %s.log_requests WHERE tenant_id = ? "
                  "AND log_id = ? AND bucket = ? AND request IN ?",
    [S_DEL_REQS] = "DELETE FROM %s.log_requests WHERE tenant_id = ? AND log_id = ? AND "
                   "bucket = ?",
    [S_BATCH_META] = "SELECT first_id, epoch, n FROM %s.log_batches WHERE tenant_id = ? AND "
                     "log_id = ? AND bucket = ? AND first_id > ? AND first_id < ?",
    [S_BATCH_GET] = "SELECT packed FROM %s.log_batches WHERE tenant_id = ? AND log_id = ? AND "
                    "bucket = ? AND first_id = ? AND epoch = ?",
    [S_BATCH_SET] = "UPDATE %s.log_batches SET packed = ? WHERE tenant_id = ? AND log_id = ? AND "
                    "bucket = ? AND first_id = ? AND epoch = ?",
    [S_REV_INS] = "INSERT INTO %s.revocations (tenant_id, log_id, entry_id, actor, reason, "
                  "time_ns) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    [S_REV_GET] = "SELECT actor, reason, time_ns FROM %s.revocations WHERE tenant_id = ? AND "
                  "log_id = ? AND entry_id = ?",
    [S_DEL_BUCKET] = "DELETE FROM %s.log_batches WHERE tenant_id = ? AND log_id = ? AND "
                     "bucket = ?",
    [S_DEL_IDS] = "DELETE FROM %s.log_insert_ids WHERE tenant_id = ? AND log_id = ? AND "
                  "bucket = ?",
    [S_DEL_REVS] = "DELETE FROM %s.revocations WHERE tenant_id = ? AND log_id = ?",
};

struct ann_archive {
    ann_cql_conn *c;
    char ks[49];
    uint16_t cl, serial;
    ann_cql_prepared *ps[S_COUNT];
};

/* Rows per unlogged single-partition batch, and their bytes. */
#define CHUNK_ROWS 256
#define CHUNK_BYTES (1u << 20)

static int32_t id_bucket(const char *s, size_t n)
{
    return (int32_t)(ann_fnv1a32(s, n) % ANN_ARCHIVE_ID_BUCKETS);
}

int32_t ann_archive_insert_id_bucket(const char *insert_id, size_t len)
{
    return id_bucket(insert_id, len);
}

static int64_t entry_bucket(uint64_t id)
{
    return (int64_t)(id / ANN_ARCHIVE_BUCKET_IDS);
}

static void params(ann_archive *a, ann_cql_params *p, const ann_cql_value *v, size_t n,
                   bool idempotent)
{
    ann_cql_params_init(p);
    p->consistency = a->cl;
    p->values = v;
    p->nvalues = n;
    p->idempotent = idempotent;
}

static int run(ann_archive *a, const char *cql, ann_err *err)
{
    ann_cql_result r;
    int rc = ann_cql_query(a->c, cql, NULL, &r, err);
    ann_cql_result_release(&r);
    return rc;
}

/* A keyspace made before the batch rows (docs/distributed.md) has a log_entries table, and
 * its entries would silently not be seen: refused, never migrated (there were no
 * deployments). The keyspace name was checked (ann_namespace_valid) before it is quoted. */
static int refuse_old_layout(ann_archive *a, ann_err *err)
{
    char q[256];
    snprintf(q, sizeof q,
             "SELECT table_name FROM system_schema.tables WHERE keyspace_name = '%s' AND "
             "table_name = 'log_entries'",
             a->ks);
    ann_cql_result r;
    if (ann_cql_query(a->c, q, NULL, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    int32_t n = r.nrows;
    ann_cql_result_release(&r);
    if (n > 0)
        return ann_err_set(err, ANN_EPRECOND,
                           "archive: keyspace %s has the layout of an older annals (a "
                           "log_entries table), whose entries this one would not see: drop it "
                           "(annals-dist drop --ns NAME) or choose another namespace",
                           a->ks);
    return 0;
}

int ann_archive_open(const ann_archive_config *cfg, ann_archive **out, ann_err *err)
{
    *out = NULL;
    ann_archive *a = calloc(1, sizeof *a);
    if (!a)
        return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
    const char *ks = cfg->keyspace ? cfg->keyspace : "annals";
    char q[1024];
    if (!ann_namespace_valid(ks)) {
        ann_err_set(err, ANN_EINVAL, "archive: keyspace: lower-case letters, digits, _");
        goto fail;
    }
    snprintf(a->ks, sizeof a->ks, "%s", ks);
    a->cl = cfg->consistency ? cfg->consistency : ANN_CQL_LOCAL_QUORUM;
    a->serial = cfg->serial_consistency ? cfg->serial_consistency : ANN_CQL_LOCAL_SERIAL;
    if (cfg->replication && strchr(cfg->replication, ';')) {
        ann_err_set(err, ANN_EINVAL, "archive: replication: bad map");
        goto fail;
    }
    ann_cql_config cc = *cfg->cql;
    cc.keyspace = NULL;
    if (ann_cql_conn_new(&cc, &a->c, err) < 0)
        goto fail;

    char repl[512];
    if (cfg->replication)
        snprintf(repl, sizeof repl, "%s", cfg->replication);
    else
        snprintf(repl, sizeof repl, "{'class': 'SimpleStrategy', 'replication_factor': %d}",
                 cfg->replication_factor > 0 ? cfg->replication_factor : 1);
    snprintf(q, sizeof q, "CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", a->ks, repl);
    if (run(a, q, err) < 0 || refuse_old_layout(a, err) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof schema_text / sizeof schema_text[0]; i++) {
        snprintf(q, sizeof q, schema_text[i], a->ks);
        if (run(a, q, err) < 0)
            goto fail;
    }
    /* seq_heads made before the tree (docs/integrity.md) */
    if (ann_cql_add_columns(a->c, a->ks, "seq_heads", "tree", "tree blob, checkpoint blob", err) <
            0 ||
        ann_cql_add_columns(a->c, a->ks, "seq_heads", "sealed", "sealed boolean", err) < 0)
        goto fail;
    for (int i = 0; i < S_COUNT; i++) {
        snprintf(q, sizeof q, stmt_text[i], a->ks);
        if (ann_cql_prepare(a->c, q, &a->ps[i], err) < 0)
            goto fail;
    }
    *out = a;
    return 0;
fail:
    ann_archive_close(a);
    return -1;
}

void ann_archive_close(ann_archive *a)
{
    if (!a)
        return;
    ann_cql_conn_free(a->c);
    free(a);
}

ann_cql_conn *ann_archive_conn(ann_archive *a)
{
    return a->c;
}

static int check_ids(const char *tenant_id, const char *log_id, ann_err *err)
{
    if (!tenant_id || !*tenant_id || strlen(tenant_id) > 256)
        return ann_err_set(err, ANN_EINVAL, "archive: tenant_id: 1..256 bytes");
    if (!log_id || !*log_id || strlen(log_id) > 256)
        return ann_err_set(err, ANN_EINVAL, "archive: log_id: 1..256 bytes");
    return 0;
}

static uint64_t get_u64(const ann_cql_result *r, int32_t row, int32_t col)
{
    int64_t v = 0;
    if (ann_cql_get_bigint(r, row, col, &v, NULL) != 0)
        return 0;
    return v < 0 ? 0 : (uint64_t)v;
}

/* Runs a conditional statement; *applied says whether it took. */
static int exec_lwt(ann_archive *a, int s, const ann_cql_value *v, size_t n, bool *applied,
                    ann_err *err)
{
    ann_cql_params p;
    params(a, &p, v, n, false);
    p.serial_consistency = a->serial;
    ann_cql_result r;
    int rc = ann_cql_execute(a->c, a->ps[s], &p, &r, err);
    if (rc == 0)
        rc = ann_cql_applied(&r, applied, err);
    ann_cql_result_release(&r);
    return rc;
}

static int exec_simple(ann_archive *a, int s, const ann_cql_value *v, size_t n, ann_err *err)
{
    ann_cql_params p;
    params(a, &p, v, n, true);
    ann_cql_result r;
    int rc = ann_cql_execute(a->c, a->ps[s], &p, &r, err);
    ann_cql_result_release(&r);
    return rc;
}

/* Waits for n futures (NULL ones skipped); the first error is kept. */
static int wait_all(ann_cql_future **f, size_t n, ann_err *err)
{
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        if (!f[i])
            continue;
        ann_cql_result r;
        if (ann_cql_future_wait(f[i], &r, ret == 0 ? err : NULL) < 0)
            ret = -1;
        ann_cql_result_release(&r);
        f[i] = NULL;
    }
    return ret;
}

/* Requests in flight at once from one call (the connection has 1024 streams). */
#define WINDOW 256

/* ---- the partition fence ---- */

int ann_archive_partition_epoch(ann_archive *a, int32_t partition, uint64_t *out, ann_err *err)
{
    *out = 0;
    ann_cql_value v[] = {ann_cql_vint(partition)};
    ann_cql_params p;
    params(a, &p, v, 1, true);
    p.consistency = a->serial;
    ann_cql_result r;
    if (ann_cql_execute(a->c, a->ps[S_PART_GET], &p, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    if (r.nrows > 0)
        *out = get_u64(&r, 0, 0);
    ann_cql_result_release(&r);
    return 0;
}

int ann_archive_claim_partition(ann_archive *a, int32_t partition, uint64_t *epoch_out,
                                ann_err *err)
{
    if (partition < 0)
        return ann_err_set(err, ANN_EINVAL, "archive: partition %d", (int)partition);
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t cur = 0;
        if (ann_archive_partition_epoch(a, partition, &cur, err) < 0)
            return -1;
        bool applied = false;
        if (cur == 0) {
            ann_cql_value v[] = {ann_cql_vint(partition)};
            if (exec_lwt(a, S_PART_INIT, v, 1, &applied, err) < 0)
                return -1;
            if (applied) {
                *epoch_out = 1;
                return 0;
            }
            continue;
        }
        ann_cql_value v[] = {ann_cql_vbigint((int64_t)cur + 1), ann_cql_vint(partition),
                             ann_cql_vbigint((int64_t)cur)};
        if (exec_lwt(a, S_PART_CLAIM, v, 3, &applied, err) < 0)
            return -1;
        if (applied) {
            *epoch_out = cur + 1;
            return 0;
        }
    }
    return ann_err_set(err, ANN_EUNAVAIL, "archive: claim of partition %d lost to other claimers",
                       (int)partition);
}

/* ---- heads ---- */

static ann_cql_future *head_submit(ann_archive *a, int32_t partition, const char *t, const char *l,
                                   bool serial, ann_cql_value v[3], ann_err *err)
{
    v[0] = ann_cql_vint(partition);
    v[1] = ann_cql_vtext(t);
    v[2] = ann_cql_vtext(l);
    ann_cql_params p;
    params(a, &p, v, 3, true);
    if (serial)
        p.consistency = a->serial;
    return ann_cql_execute_async(a->c, a->ps[S_HEAD_GET], &p, err);
}

/* Column col of row 0 as a malloc'd copy, or NULL when null or empty. */
static uint8_t *blob_copy(const ann_cql_result *r, int col, size_t *len)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    *len = 0;
    if (ann_cql_get_blob(r, 0, col, &p, &n, NULL) != 0 || !p || n == 0)
        return NULL;
    uint8_t *c = malloc(n);
    if (!c)
        abort();
    memcpy(c, p, n);
    *len = n;
    return c;
}

static int head_finish(ann_cql_future *f, ann_archive_head *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    ann_cql_result r;
    if (ann_cql_future_wait(f, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    if (r.nrows > 0) {
        const ann_cql_bytes *nx = ann_cql_cell(&r, 0, 0);
        if (nx && nx->len >= 0) {
            out->exists = true;
            out->next_id = get_u64(&r, 0, 0);
            out->next_op = get_u64(&r, 0, 1);
            bool d = false;
            if (ann_cql_get_bool(&r, 0, 2, &d, NULL) == 0)
                out->deleted = d;
            out->tree = blob_copy(&r, 3, &out->tree_len);
            out->checkpoint = blob_copy(&r, 4, &out->checkpoint_len);
            bool sealed = false;
            if (ann_cql_get_bool(&r, 0, 5, &sealed, NULL) == 0)
                out->sealed = sealed;
        }
    }
    ann_cql_result_release(&r);
    return 0;
}

void ann_archive_head_release(ann_archive_head *h)
{
    free(h->tree);
    free(h->checkpoint);
    h->tree = h->checkpoint = NULL;
    h->tree_len = h->checkpoint_len = 0;
}

int ann_archive_heads_load(ann_archive *a, int32_t partition, const char *const *t,
                           const char *const *l, size_t n, bool serial, ann_archive_head *out,
                           ann_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (check_ids(t[i], l[i], err) < 0)
            return -1;
    ann_cql_future *f[WINDOW];
    int ret = 0;
    for (size_t base = 0; base < n && ret == 0; base += WINDOW) {
        size_t m = n - base < WINDOW ? n - base : WINDOW;
        memset(f, 0, sizeof f);
        for (size_t i = 0; i < m; i++) {
            ann_cql_value v[3];
            f[i] = head_submit(a, partition, t[base + i], l[base + i], serial, v, err);
            if (!f[i]) {
                ret = -1;
                break;
            }
        }
        for (size_t i = 0; i < m; i++) {
            if (!f[i])
                continue;
            ann_cql_future *fi = f[i];
            f[i] = NULL;
            if (ret == 0) {
                if (head_finish(fi, &out[base + i], err) < 0)
                    ret = -1;
            } else {
                ann_cql_future *one[1] = {fi};
                (void)wait_all(one, 1, NULL);
            }
        }
    }
    return ret;
}

int ann_archive_head_load(ann_archive *a, int32_t partition, const char *tenant_id,
                          const char *log_id, bool serial, ann_archive_head *out, ann_err *err)
{
    return ann_archive_heads_load(a, partition, &tenant_id, &log_id, 1, serial, out, err);
}

ann_cql_future *ann_archive_commit_heads_submit(ann_archive *a, int32_t partition, uint64_t epoch,
                                                const ann_archive_head_update *u, size_t n,
                                                ann_err *err)
{
    if (n == 0) {
        ann_err_set(err, ANN_EINVAL, "archive: commit of no heads");
        return NULL;
    }
    if (epoch == 0) {
        ann_err_set(err, ANN_EINVAL, "archive: commit without a claim");
        return NULL;
    }
    ann_cql_value *v = calloc(n * 10, sizeof *v);
    ann_cql_batch_item *items = calloc(n, sizeof *items);
    ann_cql_future *f = NULL;
    if (!v || !items) {
        ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (check_ids(u[i].tenant_id, u[i].log_id, err) < 0)
            goto done;
        ann_cql_value *x = &v[i * 10];
        x[0] = ann_cql_vbigint((int64_t)u[i].next_id);
        x[1] = ann_cql_vbigint((int64_t)u[i].next_op);
        x[2] = ann_cql_vbool(u[i].deleted);
        x[3] = u[i].tree ? ann_cql_vblob(u[i].tree, u[i].tree_len) : ann_cql_vnull();
        x[4] =
            u[i].checkpoint ? ann_cql_vblob(u[i].checkpoint, u[i].checkpoint_len) : ann_cql_vnull();
        x[5] = ann_cql_vbool(u[i].sealed);
        x[6] = ann_cql_vint(partition);
        x[7] = ann_cql_vtext(u[i].tenant_id);
        x[8] = ann_cql_vtext(u[i].log_id);
        x[9] = ann_cql_vbigint((int64_t)epoch);
        items[i] = (ann_cql_batch_item){.ps = a->ps[S_HEAD_SET], .values = x, .nvalues = 10};
    }
    ann_cql_batch bt = {.type = ANN_CQL_BATCH_LOGGED,
                        .items = items,
                        .n = n,
                        .consistency = a->cl,
                        .serial_consistency = a->serial};
    f = ann_cql_batch_async(a->c, &bt, err); /* encoded at submission */
done:
    free(v);
    free(items);
    return f;
}

int ann_archive_commit_heads_finish(ann_cql_future *f, uint64_t *cur_epoch, ann_err *err)
{
    ann_cql_result r;
    bool applied = false;
    if (ann_cql_future_wait(f, &r, err) < 0 || ann_cql_applied(&r, &applied, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    if (!applied) {
        int32_t ce = ann_cql_column_index(&r, "range_id");
        if (cur_epoch)
            *cur_epoch = ce >= 0 && r.nrows > 0 ? get_u64(&r, 0, ce) : 0;
        ann_cql_result_release(&r);
        return ANN_ARCHIVE_FENCED;
    }
    ann_cql_result_release(&r);
    return 0;
}

int ann_archive_commit_heads(ann_archive *a, int32_t partition, uint64_t epoch,
                             const ann_archive_head_update *u, size_t n, uint64_t *cur_epoch,
                             ann_err *err)
{
    if (n == 0)
        return 0;
    ann_cql_future *f = ann_archive_commit_heads_submit(a, partition, epoch, u, n, err);
    return f ? ann_archive_commit_heads_finish(f, cur_epoch, err) : -1;
}

/* ---- rows ---- */

#define VPS 7
#define META_PAGE 5000

/* Unlogged single-partition batches, built and submitted as they fill. Items of one
 * batch are of one statement and one Cassandra partition (pk_*). */
struct ann_archive_writer {
    ann_archive *a;
    ann_cql_batch_item items[CHUNK_ROWS];
    ann_cql_value vals[CHUNK_ROWS * VPS];
    size_t n, bytes;
    int pk_stmt;
    const char *pk_t, *pk_l;
    int64_t pk_bucket;
    uint8_t *blobs[CHUNK_ROWS]; /* the packed rows of the pending batch, owned */
    size_t nblobs;
    ann_cql_future **futs;
    size_t nfut, capfut;
    int32_t *bk;
    size_t *order;
    size_t cap_tmp;
};

ann_archive_writer *ann_archive_writer_new(ann_archive *a, ann_err *err)
{
    ann_archive_writer *w = calloc(1, sizeof *w);
    if (!w) {
        ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        return NULL;
    }
    w->a = a;
    return w;
}

static void writer_drop_blobs(ann_archive_writer *w)
{
    for (size_t i = 0; i < w->nblobs; i++)
        free(w->blobs[i]);
    w->nblobs = 0;
}

static int writer_flush(ann_archive_writer *w, ann_err *err)
{
    if (w->n == 0)
        return 0;
    if (w->nfut == w->capfut) {
        size_t cap = w->capfut ? w->capfut * 2 : 16;
        ann_cql_future **nf = realloc(w->futs, cap * sizeof *nf);
        if (!nf) {
            writer_drop_blobs(w);
            w->n = 0;
            w->bytes = 0;
            return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        }
        w->futs = nf;
        w->capfut = cap;
    }
    ann_cql_batch bt = {.type = ANN_CQL_BATCH_UNLOGGED,
                        .items = w->items,
                        .n = w->n,
                        .consistency = w->a->cl,
                        .idempotent = true};
    /* Encoded at submission: the value arrays and blobs can be reused at once. */
    ann_cql_future *f = ann_cql_batch_async(w->a->c, &bt, err);
    w->n = 0;
    w->bytes = 0;
    writer_drop_blobs(w);
    if (!f)
        return -1;
    w->futs[w->nfut++] = f;
    return 0;
}

/* Makes room for one more item of statement s in partition (t, l, bucket): flushes the
 * pending batch first when it is of another partition or full. */
static int writer_room(ann_archive_writer *w, int s, const char *t, const char *l, int64_t bucket,
                       ann_err *err)
{
    bool same = w->n > 0 && w->pk_stmt == s && w->pk_bucket == bucket && strcmp(w->pk_t, t) == 0 &&
                strcmp(w->pk_l, l) == 0;
    if ((w->n && !same) || w->n == CHUNK_ROWS || w->bytes > CHUNK_BYTES)
        if (writer_flush(w, err) < 0)
            return -1;
    w->pk_stmt = s;
    w->pk_t = t;
    w->pk_l = l;
    w->pk_bucket = bucket;
    return 0;
}

int ann_archive_writer_add(ann_archive_writer *w, const char *tenant_id, const char *log_id,
                           uint64_t epoch, const ann_entry *e, size_t n, ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    if (epoch == 0)
        return ann_err_set(err, ANN_EINVAL, "archive: write without a claim");
    for (size_t i = 0; i < n; i++)
        if (!e[i].insert_id || e[i].insert_id_len == 0 || e[i].body_len > INT32_MAX ||
            e[i].insert_id_len > INT32_MAX || e[i].entry_id == 0)
            return ann_err_set(err, ANN_EINVAL, "archive: entries[%zu]: id, insert_id or body", i);
    if (n > w->cap_tmp) {
        int32_t *bk = realloc(w->bk, n * sizeof *bk);
        if (bk)
            w->bk = bk;
        size_t *order = realloc(w->order, n * sizeof *order);
        if (order)
            w->order = order;
        if (!bk || !order)
            return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        w->cap_tmp = n;
    }
    /* Batch rows: runs of consecutive ids, at most ANN_ARCHIVE_BATCH_IDS entries and
     * about ANN_ARCHIVE_BATCH_BYTES each, one row per run in bucket(first id). */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1, bytes = ann_batch_size(&e[i], 1);
        while (j < n && j - i < ANN_ARCHIVE_BATCH_IDS && e[j].entry_id == e[j - 1].entry_id + 1) {
            size_t more = ANN_BATCH_ENTRY_FIXED + e[j].insert_id_len + e[j].body_len;
            if (bytes + more > ANN_ARCHIVE_BATCH_BYTES)
                break;
            bytes += more;
            j++;
        }
        uint8_t *blob = malloc(bytes);
        ann_entry *tmp = malloc((j - i) * sizeof *tmp);
        if (!blob || !tmp) {
            free(blob);
            free(tmp);
            return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        }
        for (size_t k = i; k < j; k++) {
            tmp[k - i] = e[k];
            tmp[k - i].flags &= ~(uint32_t)(ANN_ENTRY_REDACTED | ANN_ENTRY_GENERATED_ID);
        }
        size_t len = ann_batch_encode(tmp, j - i, blob);
        free(tmp);
        int64_t bucket = entry_bucket(e[i].entry_id);
        if (writer_room(w, S_BATCH_INS, tenant_id, log_id, bucket, err) < 0) {
            free(blob);
            return -1;
        }
        w->blobs[w->nblobs++] = blob;
        ann_cql_value *v = &w->vals[w->n * VPS];
        v[0] = ann_cql_vtext(tenant_id);
        v[1] = ann_cql_vtext(log_id);
        v[2] = ann_cql_vbigint(bucket);
        v[3] = ann_cql_vbigint((int64_t)e[i].entry_id);
        v[4] = ann_cql_vbigint((int64_t)epoch);
        v[5] = ann_cql_vint((int32_t)(j - i));
        v[6] = ann_cql_vblob(blob, len);
        w->items[w->n++] =
            (ann_cql_batch_item){.ps = w->a->ps[S_BATCH_INS], .values = v, .nvalues = 7};
        w->bytes += len + 64;
        i = j;
    }
    /* Insert ids: a row for each client-given insert_id. Server-made ones
     * ("<request key>/<index>", ANN_ENTRY_GENERATED_ID) are unique to their command and
     * new together: one log_requests row per request key names the id of its first
     * entry, and a lookup reads the entries after it (ann_archive_lookup_many). Grouped
     * by their bucket (counting sort). */
    size_t start[ANN_ARCHIVE_ID_BUCKETS + 1] = {0};
    size_t m = 0;
    const char *last_req = NULL;
    for (size_t i = 0; i < n; i++) {
        if ((e[i].flags & ANN_ENTRY_GENERATED_ID) &&
            ann_archive_generated_shape(e[i].insert_id, e[i].insert_id_len, NULL)) {
            if (last_req && memcmp(last_req, e[i].insert_id, ANN_ARCHIVE_REQUEST_KEY) == 0)
                continue; /* the same request as the entry before */
            bool seen = false;
            for (size_t k = 0; k < i && !seen; k++)
                seen = (e[k].flags & ANN_ENTRY_GENERATED_ID) &&
                       ann_archive_generated_shape(e[k].insert_id, e[k].insert_id_len, NULL) &&
                       memcmp(e[k].insert_id, e[i].insert_id, ANN_ARCHIVE_REQUEST_KEY) == 0;
            last_req = e[i].insert_id;
            if (seen)
                continue;
            int32_t rb = id_bucket(e[i].insert_id, ANN_ARCHIVE_REQUEST_KEY);
            if (writer_room(w, S_REQ_INS, tenant_id, log_id, rb, err) < 0)
                return -1;
            ann_cql_value *v = &w->vals[w->n * VPS];
            v[0] = ann_cql_vtext(tenant_id);
            v[1] = ann_cql_vtext(log_id);
            v[2] = ann_cql_vint(rb);
            v[3] = ann_cql_vtextn(e[i].insert_id, ANN_ARCHIVE_REQUEST_KEY);
            v[4] = ann_cql_vbigint((int64_t)epoch);
            v[5] = ann_cql_vbigint((int64_t)e[i].entry_id);
            w->items[w->n++] =
                (ann_cql_batch_item){.ps = w->a->ps[S_REQ_INS], .values = v, .nvalues = 6};
            w->bytes += 128;
            continue;
        }
        w->bk[m] = id_bucket(e[i].insert_id, e[i].insert_id_len);
        w->order[m++] = i;
        start[w->bk[m - 1] + 1]++;
    }
    for (int k = 0; k < ANN_ARCHIVE_ID_BUCKETS; k++)
        start[k + 1] += start[k];
    /* w->order[0..m) holds the entry indexes; sort them into sorted[] by bucket */
    size_t *sorted = malloc((m ? m : 1) * sizeof *sorted);
    int32_t *sbk = malloc((m ? m : 1) * sizeof *sbk);
    if (!sorted || !sbk) {
        free(sorted);
        free(sbk);
        return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
    }
    for (size_t k = 0; k < m; k++) {
        size_t at = start[w->bk[k]]++;
        sorted[at] = w->order[k];
        sbk[at] = w->bk[k];
    }
    int ret = 0;
    for (size_t j = 0; j < m && ret == 0; j++) {
        size_t i = sorted[j];
        if (writer_room(w, S_ID_INS, tenant_id, log_id, sbk[j], err) < 0) {
            ret = -1;
            break;
        }
        ann_cql_value *v = &w->vals[w->n * VPS];
        v[0] = ann_cql_vtext(tenant_id);
        v[1] = ann_cql_vtext(log_id);
        v[2] = ann_cql_vint(sbk[j]);
        v[3] = ann_cql_vtextn(e[i].insert_id, e[i].insert_id_len);
        v[4] = ann_cql_vbigint((int64_t)epoch);
        v[5] = ann_cql_vbigint((int64_t)e[i].entry_id);
        w->items[w->n++] =
            (ann_cql_batch_item){.ps = w->a->ps[S_ID_INS], .values = v, .nvalues = 6};
        w->bytes += e[i].insert_id_len + 64;
    }
    free(sorted);
    free(sbk);
    return ret; /* the pending batch goes with the next add or the wait */
}

int ann_archive_writer_wait(ann_archive_writer *w, ann_err *err)
{
    int ret = writer_flush(w, err);
    if (wait_all(w->futs, w->nfut, ret == 0 ? err : NULL) < 0)
        ret = -1;
    w->nfut = 0;
    return ret;
}

void ann_archive_writer_free(ann_archive_writer *w)
{
    if (!w)
        return;
    writer_drop_blobs(w);
    (void)wait_all(w->futs, w->nfut, NULL);
    free(w->futs);
    free(w->bk);
    free(w->order);
    free(w);
}

int ann_archive_write_entries(ann_archive *a, const char *tenant_id, const char *log_id,
                              uint64_t epoch, const ann_entry *entries, size_t n, ann_err *err)
{
    ann_archive_writer *w = ann_archive_writer_new(a, err);
    if (!w)
        return -1;
    int rc = ann_archive_writer_add(w, tenant_id, log_id, epoch, entries, n, err);
    if (ann_archive_writer_wait(w, rc == 0 ? err : NULL) < 0)
        rc = -1;
    ann_archive_writer_free(w);
    return rc;
}

/* ---- read ---- */

/* One log_batches row's key and size (no blob). */
typedef struct bmeta {
    uint64_t first, epoch;
    uint32_t n;
} bmeta;

typedef struct bmetas {
    bmeta *m;
    size_t n, cap;
} bmetas;

static int bmeta_cmp(const void *pa, const void *pb)
{
    const bmeta *a = pa, *b = pb;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return (a->epoch < b->epoch) - (a->epoch > b->epoch); /* epoch DESC */
}

/* Collects the rows (every epoch) with gt < first_id < lt, from every bucket that can
 * hold one, sorted by (first_id, epoch DESC). */
static int meta_scan(ann_archive *a, const char *t, const char *l, int64_t gt, int64_t lt,
                     bmetas *out, ann_err *err)
{
    out->n = 0;
    uint8_t ps_buf[1024];
    int64_t lo_id = gt + 1 > 0 ? gt + 1 : 0;
    if (lt <= lo_id)
        return 0;
    for (int64_t bk = entry_bucket((uint64_t)lo_id); bk <= entry_bucket((uint64_t)(lt - 1)); bk++) {
        ann_cql_bytes ps = {NULL, -1};
        for (;;) {
            ann_cql_value v[] = {ann_cql_vtext(t), ann_cql_vtext(l), ann_cql_vbigint(bk),
                                 ann_cql_vbigint(gt), ann_cql_vbigint(lt)};
            ann_cql_params p;
            params(a, &p, v, 5, true);
            p.page_size = META_PAGE;
            p.paging_state = ps;
            ann_cql_result r;
            if (ann_cql_execute(a->c, a->ps[S_BATCH_META], &p, &r, err) < 0) {
                ann_cql_result_release(&r);
                return -1;
            }
            for (int32_t row = 0; row < r.nrows; row++) {
                int32_t n = 0;
                if (ann_cql_get_int(&r, row, 2, &n, NULL) != 0 || n <= 0 ||
                    n > ANN_ARCHIVE_BATCH_IDS)
                    continue; /* a row whose n is gone (a revocation racing a delete) */
                if (out->n == out->cap) {
                    size_t cap = out->cap ? out->cap * 2 : 64;
                    bmeta *nm = realloc(out->m, cap * sizeof *nm);
                    if (!nm) {
                        ann_cql_result_release(&r);
                        return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
                    }
                    out->m = nm;
                    out->cap = cap;
                }
                out->m[out->n++] = (bmeta){
                    .first = get_u64(&r, row, 0), .epoch = get_u64(&r, row, 1), .n = (uint32_t)n};
            }
            bool more = r.paging_state.len >= 0 && (size_t)r.paging_state.len <= sizeof ps_buf;
            if (more) {
                memcpy(ps_buf, r.paging_state.p, (size_t)r.paging_state.len);
                ps = (ann_cql_bytes){ps_buf, r.paging_state.len};
            } else if (r.paging_state.len >= 0) {
                ann_cql_result_release(&r);
                return ann_err_set(err, ANN_EIO, "archive: paging state too large");
            }
            ann_cql_result_release(&r);
            if (!more)
                break;
        }
    }
    if (out->n > 1)
        qsort(out->m, out->n, sizeof *out->m, bmeta_cmp);
    return 0;
}

/* A run of ids [lo, hi) served by one row. */
typedef struct seg {
    size_t row;
    uint64_t lo, hi;
} seg;

/* Which row serves each id of [lo, hi): per id, the row of the highest epoch covering
 * it (the committed one: a newer owner only writes at or above the committed next_id,
 * a zombie's rows carry an older epoch). Ids no row covers are skipped. Fills segs (at
 * most 2 * m->n + 1 of them). */
static size_t resolve(const bmetas *m, uint64_t lo, uint64_t hi, seg *segs)
{
    size_t ns = 0, s = 0;
    uint64_t cur = lo;
    while (cur < hi) {
        while (s < m->n && m->m[s].first + m->m[s].n <= cur)
            s++;
        size_t best = SIZE_MAX, k = s;
        for (; k < m->n && m->m[k].first <= cur; k++)
            if (m->m[k].first + m->m[k].n > cur &&
                (best == SIZE_MAX || m->m[k].epoch > m->m[best].epoch))
                best = k;
        if (best == SIZE_MAX) {
            if (k >= m->n || m->m[k].first >= hi)
                break;
            cur = m->m[k].first; /* a gap: no row covers these ids */
            continue;
        }
        uint64_t end = m->m[best].first + m->m[best].n;
        if (end > hi)
            end = hi;
        for (; k < m->n && m->m[k].first < end; k++)
            if (m->m[k].epoch > m->m[best].epoch) {
                end = m->m[k].first;
                break;
            }
        segs[ns++] = (seg){.row = best, .lo = cur, .hi = end};
        cur = end;
    }
    return ns;
}

static ann_cql_future *blob_submit(ann_archive *a, const char *t, const char *l, const bmeta *b,
                                   ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(t), ann_cql_vtext(l),
                         ann_cql_vbigint(entry_bucket(b->first)),
                         ann_cql_vbigint((int64_t)b->first), ann_cql_vbigint((int64_t)b->epoch)};
    ann_cql_params p;
    params(a, &p, v, 5, true);
    return ann_cql_execute_async(a->c, a->ps[S_BATCH_GET], &p, err);
}

/* Row fetches in flight during a read. */
#define READ_AHEAD 8

int ann_archive_read_at(ann_archive *a, const char *tenant_id, const char *log_id, uint64_t next_id,
                        uint64_t from_id, uint64_t to_id, ann_entry_visit_fn visit, void *ud,
                        ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    if (from_id == 0)
        from_id = 1;
    if (to_id > next_id)
        to_id = next_id;
    bmetas m = {0};
    seg *segs = NULL;
    size_t capsegs = 0;
    int ret = 0;
    bool stop = false;
    for (uint64_t lo = from_id; lo < to_id && ret == 0 && !stop;) {
        uint64_t hi = (entry_bucket(lo) + 1) * (uint64_t)ANN_ARCHIVE_BUCKET_IDS;
        if (hi > to_id)
            hi = to_id;
        if (meta_scan(a, tenant_id, log_id, (int64_t)lo - ANN_ARCHIVE_BATCH_IDS, (int64_t)hi, &m,
                      err) < 0) {
            ret = -1;
            break;
        }
        if (2 * m.n + 1 > capsegs) {
            capsegs = 2 * m.n + 1;
            seg *ns = realloc(segs, capsegs * sizeof *ns);
            if (!ns) {
                ret = ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
                break;
            }
            segs = ns;
        }
        size_t nsegs = resolve(&m, lo, hi, segs);
        ann_cql_future *f[READ_AHEAD] = {0};
        size_t sent = 0;
        for (size_t i = 0; i < nsegs; i++) {
            while (ret == 0 && !stop && sent < nsegs && sent < i + READ_AHEAD) {
                f[sent % READ_AHEAD] = blob_submit(a, tenant_id, log_id, &m.m[segs[sent].row], err);
                if (!f[sent % READ_AHEAD])
                    ret = -1;
                sent++;
            }
            ann_cql_future *fi = f[i % READ_AHEAD];
            f[i % READ_AHEAD] = NULL;
            if (!fi)
                continue;
            ann_cql_result r;
            if (ann_cql_future_wait(fi, &r, ret == 0 ? err : NULL) < 0 && ret == 0)
                ret = -1;
            const uint8_t *blob = NULL;
            size_t blen = 0;
            if (ret == 0 && !stop && r.nrows > 0 &&
                ann_cql_get_blob(&r, 0, 0, &blob, &blen, NULL) == 0) {
                const bmeta *b = &m.m[segs[i].row];
                ann_batch_reader br;
                ann_entry e;
                int k = ann_batch_reader_init(&br, blob, blen, b->first, b->n);
                while (k >= 0) {
                    if ((k = ann_batch_next(&br, &e)) != 1)
                        break;
                    if (e.entry_id < segs[i].lo)
                        continue;
                    if (e.entry_id >= segs[i].hi)
                        break;
                    if (visit(&e, ud)) {
                        stop = true;
                        break;
                    }
                }
                if (k < 0) {
                    ret = ann_err_set(err, ANN_EIO, "archive: log %.64s: batch row %llu: malformed",
                                      log_id, (unsigned long long)b->first);
                }
            }
            ann_cql_result_release(&r);
        }
        lo = hi;
    }
    free(m.m);
    free(segs);
    return ret;
}

/* ---- lookup ---- */

/* A candidate row to confirm: query q, entry id (an insert_id row's), or the first id of
 * a request's server-made entries (a log_requests row's). */
typedef struct cand {
    size_t q;
    uint64_t id;
} cand;

bool ann_archive_generated_shape(const char *s, size_t n, uint64_t *index)
{
    if (n < ANN_ARCHIVE_REQUEST_KEY + 2 || n > ANN_ARCHIVE_REQUEST_KEY + 10 ||
        s[ANN_ARCHIVE_REQUEST_KEY] != '/')
        return false;
    uint64_t v = 0;
    for (size_t i = ANN_ARCHIVE_REQUEST_KEY + 1; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v >= ANN_ARCHIVE_MAX_APPEND) /* no command holds more: a read stays bounded */
        return false;
    for (size_t i = 0; i < ANN_ARCHIVE_REQUEST_KEY; i++)
        if (s[i] == '/')
            return false;
    if (index)
        *index = v;
    return true;
}

/* Insert ids per IN query (one partition, one request). */
#define IN_IDS 128

/* Sort order of lookups: (tenant, log, bucket, key), so that one IN query per
 * (tenant, log, bucket) answers a run of them. */
typedef struct qkey {
    const ann_archive_iid_query *q;
    const char *key;
    size_t key_len;
    int32_t bucket;
    size_t i;
} qkey;

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

static int qkey_cmp(const void *pa, const void *pb)
{
    const qkey *a = pa, *b = pb;
    int c = strcmp(a->q->tenant_id, b->q->tenant_id);
    if (!c)
        c = strcmp(a->q->log_id, b->q->log_id);
    if (!c)
        c = (a->bucket > b->bucket) - (a->bucket < b->bucket);
    if (!c)
        c = cmp_bytes(a->key, a->key_len, b->key, b->key_len);
    if (!c)
        c = (a->i > b->i) - (a->i < b->i);
    return c;
}

static bool same_partition(const qkey *a, const qkey *b)
{
    return a->bucket == b->bucket && strcmp(a->q->tenant_id, b->q->tenant_id) == 0 &&
           strcmp(a->q->log_id, b->q->log_id) == 0;
}

/* One IN query in flight: the sorted lookups [from, to) and their distinct keys. */
typedef struct inq {
    size_t from, to;
    const char **ids;
    size_t *lens;
    size_t nids;
} inq;

static int add_cand(cand **c, size_t *nc, size_t *capc, size_t q, uint64_t id, ann_err *err)
{
    if (*nc == *capc) {
        size_t cap = *capc ? *capc * 2 : 64;
        cand *n2 = realloc(*c, cap * sizeof **c);
        if (!n2)
            return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        *c = n2;
        *capc = cap;
    }
    (*c)[(*nc)++] = (cand){.q = q, .id = id};
    return 0;
}

/* Round 1: the rows of statement s (key IN ?) for the lookups ord[0..n) (sorted), one
 * IN query per partition (and per IN_IDS distinct keys), all in flight by windows; every
 * row below the lookup's next_id becomes a candidate. */
static int round1(ann_archive *a, int s, qkey *ord, size_t n, cand **c, size_t *nc, size_t *capc,
                  ann_err *err)
{
    int ret = 0;
    ann_cql_future *f[WINDOW];
    inq *iq = calloc(n ? n : 1, sizeof *iq);
    const char **idv = malloc((n ? n : 1) * sizeof *idv);
    size_t *lenv = malloc((n ? n : 1) * sizeof *lenv);
    if (!iq || !idv || !lenv) {
        ret = ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        goto done;
    }
    qsort(ord, n, sizeof *ord, qkey_cmp);
    size_t niq = 0, nid = 0;
    for (size_t i = 0; i < n;) {
        inq *x = &iq[niq++];
        x->from = i;
        x->ids = &idv[nid];
        x->lens = &lenv[nid];
        while (i < n && (i == x->from || same_partition(&ord[x->from], &ord[i]))) {
            bool dup = x->nids > 0 && cmp_bytes(x->ids[x->nids - 1], x->lens[x->nids - 1],
                                                ord[i].key, ord[i].key_len) == 0;
            if (!dup) {
                if (x->nids == IN_IDS)
                    break;
                x->ids[x->nids] = ord[i].key;
                x->lens[x->nids++] = ord[i].key_len;
                nid++;
            }
            i++;
        }
        x->to = i;
    }
    for (size_t base = 0; base < niq; base += WINDOW) {
        size_t m = niq - base < WINDOW ? niq - base : WINDOW;
        memset(f, 0, sizeof f);
        for (size_t j = 0; j < m && ret == 0; j++) {
            const inq *x = &iq[base + j];
            const ann_archive_iid_query *x0 = ord[x->from].q;
            ann_cql_value v[] = {ann_cql_vtext(x0->tenant_id), ann_cql_vtext(x0->log_id),
                                 ann_cql_vint(ord[x->from].bucket),
                                 ann_cql_vlist_text(x->ids, x->lens, x->nids)};
            ann_cql_params p;
            params(a, &p, v, 4, true);
            f[j] = ann_cql_execute_async(a->c, a->ps[s], &p, err);
            if (!f[j])
                ret = -1;
        }
        for (size_t j = 0; j < m; j++) {
            if (!f[j])
                continue;
            const inq *x = &iq[base + j];
            ann_cql_result r;
            if (ann_cql_future_wait(f[j], &r, ret == 0 ? err : NULL) < 0)
                ret = -1;
            for (int32_t row = 0; ret == 0 && row < r.nrows; row++) {
                const char *k;
                size_t kl;
                if (ann_cql_get_text(&r, row, 0, &k, &kl, NULL) != 0)
                    continue;
                uint64_t id = get_u64(&r, row, 2);
                /* the lookups of this key: a run in [from, to) (sorted) */
                size_t lo = x->from, hi = x->to;
                while (lo < hi) {
                    size_t mid = lo + (hi - lo) / 2;
                    if (cmp_bytes(ord[mid].key, ord[mid].key_len, k, kl) < 0)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                for (size_t t = lo;
                     ret == 0 && t < x->to && cmp_bytes(ord[t].key, ord[t].key_len, k, kl) == 0;
                     t++)
                    if (id != 0 && id < ord[t].q->next_id &&
                        add_cand(c, nc, capc, ord[t].i, id, err) < 0)
                        ret = -1;
            }
            ann_cql_result_release(&r);
        }
        if (ret < 0)
            break;
    }
done:
    free(iq);
    free(idv);
    free(lenv);
    return ret;
}

static int cand_cmp_q(const ann_archive_iid_query *q, const cand *a, const cand *b)
{
    int r = strcmp(q[a->q].tenant_id, q[b->q].tenant_id);
    if (!r)
        r = strcmp(q[a->q].log_id, q[b->q].log_id);
    if (!r)
        r = (a->id > b->id) - (a->id < b->id);
    return r;
}

/* A merge sort with the query array passed explicitly (qsort has no context). */
static void cand_merge(const ann_archive_iid_query *q, cand *c, cand *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    cand_merge(q, c, tmp, h);
    cand_merge(q, c + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cand_cmp_q(q, &c[j], &c[i]) < 0 ? c[j++] : c[i++];
    while (i < h)
        tmp[k++] = c[i++];
    while (j < n)
        tmp[k++] = c[j++];
    memcpy(c, tmp, n * sizeof *c);
}

/* The lookups a run of candidates may confirm, sorted by insert_id for bsearch. */
typedef struct want {
    const char *id;
    size_t len;
    size_t q;
} want;

static int want_cmp(const void *pa, const void *pb)
{
    const want *a = pa, *b = pb;
    int c = cmp_bytes(a->id, a->len, b->id, b->len);
    return c ? c : (a->q > b->q) - (a->q < b->q);
}

typedef struct confirm_ctx {
    ann_archive_iid_query *q;
    want *w;
    size_t nw;
} confirm_ctx;

/* Confirms every lookup of the run whose insert_id the visited (winning) entry holds. */
static int confirm_visit(const ann_entry *e, void *ud)
{
    confirm_ctx *x = ud;
    size_t lo = 0, hi = x->nw;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_bytes(x->w[mid].id, x->w[mid].len, e->insert_id, e->insert_id_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo;
         k < x->nw && cmp_bytes(x->w[k].id, x->w[k].len, e->insert_id, e->insert_id_len) == 0;
         k++) {
        ann_archive_iid_query *qq = &x->q[x->w[k].q];
        if (!qq->id_out && e->entry_id < qq->next_id)
            qq->id_out = e->entry_id;
    }
    return 0;
}

/* Round 2: a candidate counts only if the entry that wins at its place (the batch row of
 * the highest epoch covering it) holds the lookup's insert_id. An insert_id row's
 * candidate is its id; a log_requests row's (span) covers its first id and the next
 * `index` ids. Candidates are read back by runs of nearby ids per log, one read each (a
 * retried request's ids are consecutive). */
static int round2(ann_archive *a, ann_archive_iid_query *q, cand *c, size_t nc, bool span,
                  ann_err *err)
{
    int ret = 0;
    cand *tmp = malloc((nc ? nc : 1) * sizeof *tmp);
    want *w = malloc((nc ? nc : 1) * sizeof *w);
    if (!tmp || !w) {
        ret = ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        goto done;
    }
    cand_merge(q, c, tmp, nc);
    for (size_t i = 0; i < nc && ret == 0;) {
        const ann_archive_iid_query *x = &q[c[i].q];
        uint64_t next_id = 0, hi = 0;
        size_t j = i;
        while (j < nc && c[j].id - c[i].id < ANN_ARCHIVE_BUCKET_IDS &&
               strcmp(q[c[j].q].tenant_id, x->tenant_id) == 0 &&
               strcmp(q[c[j].q].log_id, x->log_id) == 0) {
            const ann_archive_iid_query *y = &q[c[j].q];
            uint64_t index = 0, end = c[j].id + 1;
            if (span && ann_archive_generated_shape(y->insert_id, y->insert_id_len, &index))
                end = c[j].id + index + 1;
            hi = end > hi ? end : hi;
            next_id = y->next_id > next_id ? y->next_id : next_id;
            w[j - i] = (want){.id = y->insert_id, .len = y->insert_id_len, .q = c[j].q};
            j++;
        }
        qsort(w, j - i, sizeof *w, want_cmp);
        confirm_ctx cx = {.q = q, .w = w, .nw = j - i};
        if (ann_archive_read_at(a, x->tenant_id, x->log_id, next_id, c[i].id, hi, confirm_visit,
                                &cx, err) < 0)
            ret = -1;
        i = j;
    }
done:
    free(tmp);
    free(w);
    return ret;
}

int ann_archive_lookup_many(ann_archive *a, ann_archive_iid_query *q, size_t n, ann_err *err)
{
    int ret = 0;
    cand *c = NULL, *pc = NULL;
    size_t nc = 0, capc = 0, npc = 0, cappc = 0;
    for (size_t i = 0; i < n; i++) {
        q[i].id_out = 0;
        if (check_ids(q[i].tenant_id, q[i].log_id, err) < 0)
            return -1;
    }
    if (n == 0)
        return 0;
    qkey *ord = malloc(n * sizeof *ord);
    if (!ord)
        return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
    /* the insert_id rows (client-given ids) */
    size_t ne = 0;
    for (size_t i = 0; i < n; i++)
        if (!q[i].generated ||
            !ann_archive_generated_shape(q[i].insert_id, q[i].insert_id_len, NULL))
            ord[ne++] = (qkey){.q = &q[i],
                               .key = q[i].insert_id,
                               .key_len = q[i].insert_id_len,
                               .bucket = id_bucket(q[i].insert_id, q[i].insert_id_len),
                               .i = i};
    if (ne > 0 && (round1(a, S_ID_GET, ord, ne, &c, &nc, &capc, err) < 0 ||
                   round2(a, q, c, nc, false, err) < 0))
        ret = -1;
    /* server-made ids ("<request key>/<index>") not found yet: their request's row */
    size_t ng = 0;
    for (size_t i = 0; ret == 0 && i < n; i++)
        if (!q[i].id_out && ann_archive_generated_shape(q[i].insert_id, q[i].insert_id_len, NULL))
            ord[ng++] = (qkey){.q = &q[i],
                               .key = q[i].insert_id,
                               .key_len = ANN_ARCHIVE_REQUEST_KEY,
                               .bucket = id_bucket(q[i].insert_id, ANN_ARCHIVE_REQUEST_KEY),
                               .i = i};
    if (ret == 0 && ng > 0 &&
        (round1(a, S_REQ_GET, ord, ng, &pc, &npc, &cappc, err) < 0 ||
         round2(a, q, pc, npc, true, err) < 0))
        ret = -1;
    free(c);
    free(pc);
    free(ord);
    return ret;
}

int ann_archive_lookup(ann_archive *a, const char *tenant_id, const char *log_id,
                       const ann_archive_head *head, const char *const *insert_ids,
                       const size_t *lens, size_t n, uint64_t *ids_out, ann_err *err)
{
    ann_archive_iid_query *q = calloc(n ? n : 1, sizeof *q);
    if (!q)
        return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
    for (size_t i = 0; i < n; i++)
        q[i] = (ann_archive_iid_query){.tenant_id = tenant_id,
                                       .log_id = log_id,
                                       .next_id = head->next_id,
                                       .insert_id = insert_ids[i],
                                       .insert_id_len = lens[i]};
    int rc = ann_archive_lookup_many(a, q, n, err);
    for (size_t i = 0; i < n; i++)
        ids_out[i] = rc == 0 ? q[i].id_out : 0;
    free(q);
    return rc;
}

static int32_t log_partition(const char *tenant_id, const char *log_id, int32_t n_partitions)
{
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(tenant_id, log_id, key);
    return ann_event_partition(key, strlen(key), n_partitions);
}

int ann_archive_log_count(ann_archive *a, int32_t n_partitions, const char *tenant_id,
                          const char *log_id, bool *exists, bool *deleted, uint64_t *entry_count,
                          ann_err *err)
{
    if (n_partitions <= 0)
        return ann_err_set(err, ANN_EINVAL, "archive: partition count %d", (int)n_partitions);
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    ann_archive_head h;
    if (ann_archive_head_load(a, log_partition(tenant_id, log_id, n_partitions), tenant_id, log_id,
                              false, &h, err) < 0)
        return -1;
    *exists = h.exists;
    *deleted = h.deleted;
    *entry_count = h.exists && h.next_id > 0 ? h.next_id - 1 : 0;
    ann_archive_head_release(&h);
    return 0;
}

int ann_archive_read(ann_archive *a, int32_t n_partitions, const char *tenant_id,
                     const char *log_id, uint64_t from_id, uint64_t to_id, ann_entry_visit_fn visit,
                     void *ud, ann_err *err)
{
    bool exists = false, deleted = false;
    uint64_t count = 0;
    if (ann_archive_log_count(a, n_partitions, tenant_id, log_id, &exists, &deleted, &count, err) <
        0)
        return -1;
    if (!exists || deleted)
        return ann_err_set(err, ANN_ENOTFOUND, "log %.64s not found", log_id);
    return ann_archive_read_at(a, tenant_id, log_id, count + 1, from_id, to_id, visit, ud, err);
}

/* ---- revoke ---- */

static int u64_cmp(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

/* Rewrites one stored row without the bodies of the ids in ids[0..n) (sorted) that it
 * covers: flags |= ANN_ENTRY_REDACTED, body emptied, the blob written back under the
 * same key (the old cell is shadowed; compaction or garbagecollect -g CELL drops it). */
static int redact_row(ann_archive *a, const char *t, const char *l, const bmeta *b,
                      const uint64_t *ids, size_t n, ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(t), ann_cql_vtext(l),
                         ann_cql_vbigint(entry_bucket(b->first)),
                         ann_cql_vbigint((int64_t)b->first), ann_cql_vbigint((int64_t)b->epoch)};
    ann_cql_params p;
    params(a, &p, v, 5, true);
    ann_cql_result r;
    if (ann_cql_execute(a->c, a->ps[S_BATCH_GET], &p, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    const uint8_t *blob = NULL;
    size_t blen = 0;
    if (r.nrows == 0 || ann_cql_get_blob(&r, 0, 0, &blob, &blen, NULL) != 0) {
        ann_cql_result_release(&r); /* deleted meanwhile */
        return 0;
    }
    ann_entry *es = calloc(b->n, sizeof *es);
    /* a redacted body: its body_hash field (domain/integrity.h), or nothing for an entry
     * stored without a salt */
    uint8_t(*hf)[ANN_INTEGRITY_FIELD_LEN] = malloc(n * ANN_INTEGRITY_FIELD_LEN);
    size_t nhf = 0;
    uint8_t *out = NULL;
    int ret = 0;
    if (!es || !hf) {
        ret = ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        goto done;
    }
    ann_batch_reader br;
    size_t ne = 0;
    bool changed = false;
    int k = ann_batch_reader_init(&br, blob, blen, b->first, b->n);
    while (k >= 0 && ne < b->n && (k = ann_batch_next(&br, &es[ne])) == 1) {
        ann_entry *e = &es[ne++];
        if (bsearch(&e->entry_id, ids, n, sizeof *ids, u64_cmp) &&
            (!(e->flags & ANN_ENTRY_REDACTED) ||
             (e->body_len && !ann_integrity_is_hash_field(e->body, e->body_len)))) {
            uint8_t hash[32];
            bool have = nhf < n && ann_integrity_body_hash(e->body, e->body_len, hash, NULL) == 0;
            e->flags |= ANN_ENTRY_REDACTED;
            e->body = NULL;
            e->body_len = 0;
            if (have) {
                ann_integrity_field(ANN_INTEGRITY_HASH, hash, hf[nhf]);
                e->body = hf[nhf++];
                e->body_len = ANN_INTEGRITY_FIELD_LEN;
            }
            changed = true;
        }
    }
    if (k < 0 || ne != b->n) {
        ret = ann_err_set(err, ANN_EIO, "archive: log %.64s: batch row %llu: malformed", l,
                          (unsigned long long)b->first);
        goto done;
    }
    if (!changed)
        goto done;
    out = malloc(ann_batch_size(es, ne));
    if (!out) {
        ret = ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        goto done;
    }
    size_t len = ann_batch_encode(es, ne, out);
    ann_cql_value u[] = {ann_cql_vblob(out, len),
                         ann_cql_vtext(t),
                         ann_cql_vtext(l),
                         ann_cql_vbigint(entry_bucket(b->first)),
                         ann_cql_vbigint((int64_t)b->first),
                         ann_cql_vbigint((int64_t)b->epoch)};
    if (exec_simple(a, S_BATCH_SET, u, 6, err) < 0)
        ret = -1;
done:
    ann_cql_result_release(&r); /* es point into it until here */
    free(out);
    free(es);
    free(hf);
    return ret;
}

int ann_archive_revoke(ann_archive *a, const char *tenant_id, const char *log_id,
                       const uint64_t *ids_in, size_t n, const char *actor, const char *reason,
                       int64_t time_ns, ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (ids_in[i] == 0)
            return ann_err_set(err, ANN_ENOTFOUND, "entry 0 not found in log %.64s", log_id);
    int ret = 0;
    /* The audit rows first: only the first revocation of an id is kept. */
    for (size_t i = 0; i < n && ret == 0; i++) {
        ann_cql_value v[] = {ann_cql_vtext(tenant_id),
                             ann_cql_vtext(log_id),
                             ann_cql_vbigint((int64_t)ids_in[i]),
                             ann_cql_vtext(actor ? actor : ""),
                             ann_cql_vtext(reason ? reason : ""),
                             ann_cql_vbigint(time_ns)};
        bool applied = false;
        if (exec_lwt(a, S_REV_INS, v, 6, &applied, err) < 0)
            ret = -1;
    }
    if (ret < 0 || n == 0)
        return ret;
    uint64_t *ids = malloc(n * sizeof *ids);
    bmetas m = {0};
    if (!ids)
        return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
    memcpy(ids, ids_in, n * sizeof *ids);
    qsort(ids, n, sizeof *ids, u64_cmp);
    /* Every row stored for each id: the committed one and any a fenced writer left,
     * which may hold the same secret. Ids in runs of at most a bucket's span. */
    for (size_t i = 0; i < n && ret == 0;) {
        size_t j = i + 1;
        while (j < n && ids[j] - ids[i] < ANN_ARCHIVE_BUCKET_IDS)
            j++;
        if (meta_scan(a, tenant_id, log_id, (int64_t)ids[i] - ANN_ARCHIVE_BATCH_IDS,
                      (int64_t)ids[j - 1] + 1, &m, err) < 0) {
            ret = -1;
            break;
        }
        for (size_t k = 0; k < m.n && ret == 0; k++) {
            const bmeta *b = &m.m[k];
            /* the first revoked id at or past the row's first id */
            size_t lo = i, hi = j;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (ids[mid] < b->first)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            size_t end = lo;
            while (end < j && ids[end] < b->first + b->n)
                end++;
            if (end > lo && redact_row(a, tenant_id, log_id, b, ids + lo, end - lo, err) < 0)
                ret = -1;
        }
        i = j;
    }
    free(m.m);
    free(ids);
    return ret;
}

int ann_archive_revocation(ann_archive *a, const char *tenant_id, const char *log_id,
                           uint64_t entry_id, bool *found, char *actor, size_t actor_cap,
                           char *reason, size_t reason_cap, int64_t *time_ns, ann_err *err)
{
    *found = false;
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id),
                         ann_cql_vbigint((int64_t)entry_id)};
    ann_cql_params p;
    params(a, &p, v, 3, true);
    ann_cql_result r;
    if (ann_cql_execute(a->c, a->ps[S_REV_GET], &p, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    if (r.nrows > 0) {
        const char *s;
        size_t sl;
        *found = true;
        if (actor_cap && ann_cql_get_text(&r, 0, 0, &s, &sl, NULL) == 0)
            snprintf(actor, actor_cap, "%.*s", (int)sl, s);
        if (reason_cap && ann_cql_get_text(&r, 0, 1, &s, &sl, NULL) == 0)
            snprintf(reason, reason_cap, "%.*s", (int)sl, s);
        int64_t t = 0;
        if (time_ns && ann_cql_get_bigint(&r, 0, 2, &t, NULL) == 0)
            *time_ns = t;
    }
    ann_cql_result_release(&r);
    return 0;
}

/* ---- delete ---- */

int ann_archive_delete_rows(ann_archive *a, const char *tenant_id, const char *log_id,
                            uint64_t next_id, ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    /* One bucket past the last id: a fenced writer's rows may lie there. */
    int64_t last = entry_bucket(next_id + ANN_ARCHIVE_MAX_APPEND);
    for (int64_t bk = 0; bk <= last; bk++) {
        ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id), ann_cql_vbigint(bk)};
        if (exec_simple(a, S_DEL_BUCKET, v, 3, err) < 0)
            return -1;
    }
    ann_cql_future *f[ANN_ARCHIVE_ID_BUCKETS] = {0};
    int ret = 0;
    for (int32_t bk = 0; bk < ANN_ARCHIVE_ID_BUCKETS && ret == 0; bk++) {
        ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id), ann_cql_vint(bk)};
        ann_cql_params p;
        params(a, &p, v, 3, true);
        if (!(f[bk] = ann_cql_execute_async(a->c, a->ps[S_DEL_IDS], &p, err)))
            ret = -1;
    }
    if (wait_all(f, ANN_ARCHIVE_ID_BUCKETS, ret == 0 ? err : NULL) < 0)
        ret = -1;
    for (int32_t bk = 0; bk < ANN_ARCHIVE_ID_BUCKETS && ret == 0; bk++) {
        ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id), ann_cql_vint(bk)};
        ann_cql_params p;
        params(a, &p, v, 3, true);
        if (!(f[bk] = ann_cql_execute_async(a->c, a->ps[S_DEL_REQS], &p, err)))
            ret = -1;
    }
    if (wait_all(f, ANN_ARCHIVE_ID_BUCKETS, ret == 0 ? err : NULL) < 0)
        ret = -1;
    if (ret < 0)
        return -1;
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id)};
    return exec_simple(a, S_DEL_REVS, v, 2, err);
}
