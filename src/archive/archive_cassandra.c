/*
 * The Cassandra archive: schema, head/claim, dedup lookups, fenced appends,
 * range reads, revocation and deletion. See archive_cassandra.h.
 */
#include "archive/archive_cassandra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    S_HEAD_GET,
    S_HEAD_CREATE,
    S_HEAD_CLAIM,
    S_COMMIT_HEAD,
    S_COMMIT_ROW,
    S_ENTRY_INS,
    S_ID_INS,
    S_ID_GET,
    S_ENTRY_TOP,
    S_ENTRY_EPOCHS,
    S_ENTRY_RANGE,
    S_REDACT,
    S_DEL_FENCE,
    S_DEL_BUCKET,
    S_DEL_IDS,
    S_DEL_BATCHES,
    S_ENTRY_DEL,
    S_ID_DEL,
    S_COUNT
};

/* Statement texts; %s is the keyspace. */
/* The archive's tables, each with a %s for the keyspace. */
static const char *const schema_text[] = {
    "CREATE TABLE IF NOT EXISTS %s.log_heads (tenant_id text, log_id text, "
    "next_id bigint static, owner_epoch bigint static, deleted boolean static, "
    "create_time timestamp static, first_id bigint, last_id bigint, epoch bigint, "
    "commit_time timestamp, PRIMARY KEY ((tenant_id, log_id), first_id))",
    "CREATE TABLE IF NOT EXISTS %s.log_entries (tenant_id text, log_id text, "
    "bucket bigint, entry_id bigint, epoch bigint, time_ns bigint, "
    "insert_time_ns bigint, severity int, flags int, insert_id text, body blob, "
    "PRIMARY KEY ((tenant_id, log_id, bucket), entry_id, epoch)) "
    "WITH CLUSTERING ORDER BY (entry_id ASC, epoch DESC)",
    "CREATE TABLE IF NOT EXISTS %s.log_insert_ids (tenant_id text, log_id text, "
    "bucket int, insert_id text, epoch bigint, entry_id bigint, "
    "PRIMARY KEY ((tenant_id, log_id, bucket), insert_id, epoch)) "
    "WITH CLUSTERING ORDER BY (insert_id ASC, epoch DESC)",
};

static const char *const stmt_text[S_COUNT] = {
    [S_HEAD_GET] = "SELECT next_id, owner_epoch, deleted FROM %s.log_heads "
                   "WHERE tenant_id = ? AND log_id = ? LIMIT 1",
    [S_HEAD_CREATE] = "INSERT INTO %s.log_heads (tenant_id, log_id, next_id, owner_epoch, "
                      "deleted, create_time) VALUES (?, ?, 1, 0, false, ?) IF NOT EXISTS",
    [S_HEAD_CLAIM] = "UPDATE %s.log_heads SET owner_epoch = ? WHERE tenant_id = ? AND "
                     "log_id = ? IF owner_epoch = ? AND next_id = ? AND deleted = false",
    [S_COMMIT_HEAD] = "UPDATE %s.log_heads SET next_id = ? WHERE tenant_id = ? AND log_id = ? "
                      "IF owner_epoch = ? AND next_id = ?",
    [S_COMMIT_ROW] = "INSERT INTO %s.log_heads (tenant_id, log_id, first_id, last_id, epoch, "
                     "commit_time) VALUES (?, ?, ?, ?, ?, ?)",
    [S_ENTRY_INS] = "INSERT INTO %s.log_entries (tenant_id, log_id, bucket, entry_id, epoch, "
                    "time_ns, insert_time_ns, severity, flags, insert_id, body) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [S_ID_INS] = "INSERT INTO %s.log_insert_ids (tenant_id, log_id, bucket, insert_id, epoch, "
                 "entry_id) VALUES (?, ?, ?, ?, ?, ?)",
    [S_ID_GET] = "SELECT epoch, entry_id FROM %s.log_insert_ids WHERE tenant_id = ? AND "
                 "log_id = ? AND bucket = ? AND insert_id = ?",
    [S_ENTRY_TOP] = "SELECT epoch, insert_id FROM %s.log_entries WHERE tenant_id = ? AND "
                    "log_id = ? AND bucket = ? AND entry_id = ? LIMIT 1",
    [S_ENTRY_EPOCHS] = "SELECT epoch, flags FROM %s.log_entries WHERE tenant_id = ? AND "
                       "log_id = ? AND bucket = ? AND entry_id = ?",
    [S_ENTRY_RANGE] = "SELECT entry_id, epoch, time_ns, insert_time_ns, severity, flags, "
                      "insert_id, body FROM %s.log_entries WHERE tenant_id = ? AND log_id = ? "
                      "AND bucket = ? AND entry_id >= ? AND entry_id < ?",
    [S_REDACT] = "UPDATE %s.log_entries SET body = null, flags = ? WHERE tenant_id = ? AND "
                 "log_id = ? AND bucket = ? AND entry_id = ? AND epoch = ?",
    [S_DEL_FENCE] = "UPDATE %s.log_heads SET deleted = true, owner_epoch = ? WHERE "
                    "tenant_id = ? AND log_id = ? IF owner_epoch = ?",
    [S_DEL_BUCKET] = "DELETE FROM %s.log_entries WHERE tenant_id = ? AND log_id = ? AND "
                     "bucket = ?",
    [S_DEL_IDS] = "DELETE FROM %s.log_insert_ids WHERE tenant_id = ? AND log_id = ? AND "
                  "bucket = ?",
    [S_DEL_BATCHES] = "DELETE FROM %s.log_heads WHERE tenant_id = ? AND log_id = ? AND "
                      "first_id >= 0",
    [S_ENTRY_DEL] = "DELETE FROM %s.log_entries WHERE tenant_id = ? AND log_id = ? AND "
                    "bucket = ? AND entry_id = ? AND epoch = ?",
    [S_ID_DEL] = "DELETE FROM %s.log_insert_ids WHERE tenant_id = ? AND log_id = ? AND "
                 "bucket = ? AND insert_id = ? AND epoch = ?",
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
#define PAGE_ROWS 1000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static int32_t id_bucket(const char *s, size_t n)
{
    return (int32_t)(fnv1a(s, n) % ANN_ARCHIVE_ID_BUCKETS);
}

int32_t ann_archive_insert_id_bucket(const char *insert_id, size_t len)
{
    return id_bucket(insert_id, len);
}

static int64_t entry_bucket(uint64_t id)
{
    return (int64_t)(id / ANN_ARCHIVE_BUCKET_IDS);
}

static bool valid_ident(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 48)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    return s[0] >= 'a' && s[0] <= 'z';
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

int ann_archive_open(const ann_archive_config *cfg, ann_archive **out, ann_err *err)
{
    *out = NULL;
    ann_archive *a = calloc(1, sizeof *a);
    if (!a)
        return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
    const char *ks = cfg->keyspace ? cfg->keyspace : "annals";
    char q[1024];
    if (!valid_ident(ks)) {
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
    if (run(a, q, err) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof schema_text / sizeof schema_text[0]; i++) {
        snprintf(q, sizeof q, schema_text[i], a->ks);
        if (run(a, q, err) < 0)
            goto fail;
    }
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

/* Reads the head at `cl` (SERIAL for a linearizable read). */
static int head_get(ann_archive *a, const char *t, const char *l, uint16_t cl,
                    ann_archive_head *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    ann_cql_value v[] = {ann_cql_vtext(t), ann_cql_vtext(l)};
    ann_cql_params p;
    params(a, &p, v, 2, true);
    p.consistency = cl;
    ann_cql_result r;
    if (ann_cql_execute(a->c, a->ps[S_HEAD_GET], &p, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    if (r.nrows > 0) {
        const ann_cql_bytes *nx = ann_cql_cell(&r, 0, 0);
        if (nx && nx->len >= 0) {
            out->exists = true;
            out->next_id = get_u64(&r, 0, 0);
            out->owner_epoch = get_u64(&r, 0, 1);
            bool d = false;
            if (ann_cql_get_bool(&r, 0, 2, &d, NULL) == 0)
                out->deleted = d;
        }
    }
    ann_cql_result_release(&r);
    return 0;
}

int ann_archive_head_load(ann_archive *a, const char *tenant_id, const char *log_id,
                          ann_archive_head *out, ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    return head_get(a, tenant_id, log_id, a->serial, out, err);
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

int ann_archive_claim(ann_archive *a, const char *tenant_id, const char *log_id,
                      ann_archive_head *out, ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    for (int attempt = 0; attempt < 8; attempt++) {
        ann_archive_head h;
        if (head_get(a, tenant_id, log_id, a->serial, &h, err) < 0)
            return -1;
        if (h.deleted)
            return ann_err_set(err, ANN_ENOTFOUND, "archive: log %s is deleted", log_id);
        bool applied = false;
        if (!h.exists) {
            ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id),
                                 ann_cql_vtimestamp(now_ms())};
            if (exec_lwt(a, S_HEAD_CREATE, v, 3, &applied, err) < 0)
                return -1;
            continue; /* created (or someone else did): read it back */
        }
        ann_cql_value v[] = {ann_cql_vbigint((int64_t)h.owner_epoch + 1), ann_cql_vtext(tenant_id),
                             ann_cql_vtext(log_id), ann_cql_vbigint((int64_t)h.owner_epoch),
                             ann_cql_vbigint((int64_t)h.next_id)};
        if (exec_lwt(a, S_HEAD_CLAIM, v, 5, &applied, err) < 0)
            return -1;
        if (applied) {
            *out = h;
            out->owner_epoch = h.owner_epoch + 1;
            return 0;
        }
    }
    return ann_err_set(err, ANN_EUNAVAIL, "archive: claim of %s lost to other claimers", log_id);
}

/* ---- lookup ---- */

int ann_archive_lookup(ann_archive *a, const char *tenant_id, const char *log_id,
                       const ann_archive_head *head, const char *const *insert_ids,
                       const size_t *lens, size_t n, uint64_t *ids_out, ann_err *err)
{
    int ret = -1;
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    ann_cql_future **f = calloc(n ? n : 1, sizeof *f);
    if (!f)
        return ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
    for (size_t i = 0; i < n; i++) {
        ids_out[i] = 0;
        ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id),
                             ann_cql_vint(id_bucket(insert_ids[i], lens[i])),
                             ann_cql_vtextn(insert_ids[i], lens[i])};
        ann_cql_params p;
        params(a, &p, v, 4, true);
        f[i] = ann_cql_execute_async(a->c, a->ps[S_ID_GET], &p, err);
        if (!f[i])
            goto done;
    }
    ret = 0;
    for (size_t i = 0; i < n; i++) {
        ann_cql_result r;
        ann_cql_future *fi = f[i];
        f[i] = NULL;
        if (ann_cql_future_wait(fi, &r, ret == 0 ? err : NULL) < 0) {
            ret = -1;
            ann_cql_result_release(&r);
            continue;
        }
        /* Candidates, highest epoch first; a candidate counts only if it is
         * committed: below next_id, and the row that wins at its id is this
         * epoch's and holds this insert_id. */
        for (int32_t row = 0; ret == 0 && row < r.nrows && !ids_out[i]; row++) {
            uint64_t epoch = get_u64(&r, row, 0), id = get_u64(&r, row, 1);
            if (id == 0 || id >= head->next_id)
                continue;
            ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id),
                                 ann_cql_vbigint(entry_bucket(id)), ann_cql_vbigint((int64_t)id)};
            ann_cql_params p;
            params(a, &p, v, 4, true);
            ann_cql_result top;
            if (ann_cql_execute(a->c, a->ps[S_ENTRY_TOP], &p, &top, err) < 0) {
                ann_cql_result_release(&top);
                ret = -1;
                break;
            }
            const char *s;
            size_t sl;
            if (top.nrows == 1 && get_u64(&top, 0, 0) == epoch &&
                ann_cql_get_text(&top, 0, 1, &s, &sl, NULL) == 0 && sl == lens[i] &&
                memcmp(s, insert_ids[i], sl) == 0)
                ids_out[i] = id;
            ann_cql_result_release(&top);
        }
        ann_cql_result_release(&r);
    }
done:
    for (size_t i = 0; i < n; i++)
        if (f[i]) {
            ann_cql_result r;
            (void)ann_cql_future_wait(f[i], &r, NULL);
            ann_cql_result_release(&r);
        }
    free(f);
    return ret;
}

/* ---- append ---- */

/* Unlogged single-partition batches, built and submitted as they fill. */
typedef struct batcher {
    ann_archive *a;
    ann_cql_batch_item *items;
    ann_cql_value *vals; /* VPS values per item */
    size_t n, bytes;
    ann_cql_future **futs;
    size_t nfut, capfut;
    int rc;
    ann_err *err;
} batcher;

#define VPS 11

static int batcher_flush(batcher *b)
{
    if (b->n == 0)
        return 0;
    if (b->nfut == b->capfut) {
        size_t cap = b->capfut ? b->capfut * 2 : 16;
        ann_cql_future **nf = realloc(b->futs, cap * sizeof *nf);
        if (!nf)
            return ann_err_set(b->err, ANN_EINTERNAL, "archive: out of memory");
        b->futs = nf;
        b->capfut = cap;
    }
    ann_cql_batch bt = {.type = ANN_CQL_BATCH_UNLOGGED,
                        .items = b->items,
                        .n = b->n,
                        .consistency = b->a->cl,
                        .idempotent = true};
    ann_cql_future *f = ann_cql_batch_async(b->a->c, &bt, b->err);
    b->n = 0;
    b->bytes = 0;
    if (!f)
        return -1;
    b->futs[b->nfut++] = f;
    return 0;
}

static int batcher_wait(batcher *b)
{
    int ret = 0;
    for (size_t i = 0; i < b->nfut; i++) {
        ann_cql_result r;
        if (ann_cql_future_wait(b->futs[i], &r, ret == 0 ? b->err : NULL) < 0)
            ret = -1;
        ann_cql_result_release(&r);
    }
    b->nfut = 0;
    return ret;
}

/* A refused append by a fenced owner: its rows at ids the head has not
 * reached can never become valid (a later owner's rows win there, and the
 * epoch can never commit again), so it removes them, lest a deleted log or a
 * revoked secret keep a copy. Best effort: failures are left to delete_log. */
static void cleanup_refused(ann_archive *a, const char *t, const char *l, uint64_t epoch,
                            uint64_t first_id, const ann_entry *e, size_t n, uint64_t from_id)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t id = first_id + i;
        if (id < from_id)
            continue;
        ann_cql_value ev[] = {ann_cql_vtext(t), ann_cql_vtext(l), ann_cql_vbigint(entry_bucket(id)),
                              ann_cql_vbigint((int64_t)id), ann_cql_vbigint((int64_t)epoch)};
        ann_cql_value iv[] = {ann_cql_vtext(t), ann_cql_vtext(l),
                              ann_cql_vint(id_bucket(e[i].insert_id, e[i].insert_id_len)),
                              ann_cql_vtextn(e[i].insert_id, e[i].insert_id_len),
                              ann_cql_vbigint((int64_t)epoch)};
        ann_cql_params p;
        ann_cql_result r;
        params(a, &p, ev, 5, true);
        ann_cql_future *f1 = ann_cql_execute_async(a->c, a->ps[S_ENTRY_DEL], &p, NULL);
        params(a, &p, iv, 5, true);
        ann_cql_future *f2 = ann_cql_execute_async(a->c, a->ps[S_ID_DEL], &p, NULL);
        if (f1)
            (void)ann_cql_future_wait(f1, &r, NULL);
        ann_cql_result_release(&r);
        if (f2)
            (void)ann_cql_future_wait(f2, &r, NULL);
        ann_cql_result_release(&r);
    }
}

int ann_archive_append(ann_archive *a, const char *tenant_id, const char *log_id, uint64_t epoch,
                       uint64_t first_id, const ann_entry *e, size_t n, ann_archive_head *cur_out,
                       ann_err *err)
{
    int ret = -1, staged = 0;
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    if (n == 0 || n > ANN_ARCHIVE_MAX_APPEND)
        return ann_err_set(err, ANN_EINVAL, "archive: append of %zu entries (1..%d)", n,
                           ANN_ARCHIVE_MAX_APPEND);
    if (first_id == 0 || epoch == 0)
        return ann_err_set(err, ANN_EINVAL, "archive: first_id and epoch start at 1");
    for (size_t i = 0; i < n; i++)
        if (!e[i].insert_id || e[i].insert_id_len == 0 || e[i].body_len > INT32_MAX)
            return ann_err_set(err, ANN_EINVAL, "archive: entries[%zu]: insert_id or body", i);

    /* Entry rows go to (at most two) buckets in id order; insert_id rows are
     * grouped by their bucket. Each group becomes unlogged batches. */
    size_t *order = malloc(n * sizeof *order);
    batcher b = {.a = a, .err = err};
    b.items = calloc(CHUNK_ROWS, sizeof *b.items);
    b.vals = calloc((size_t)CHUNK_ROWS * VPS, sizeof *b.vals);
    if (!order || !b.items || !b.vals) {
        ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
        goto done;
    }
    int64_t cur_bucket = entry_bucket(first_id);
    for (size_t i = 0; i < n; i++) {
        uint64_t id = first_id + i;
        if (entry_bucket(id) != cur_bucket || b.n == CHUNK_ROWS || b.bytes > CHUNK_BYTES) {
            if (batcher_flush(&b) < 0) {
                staged = -1;
                goto wait;
            }
            cur_bucket = entry_bucket(id);
        }
        ann_cql_value *v = &b.vals[b.n * VPS];
        v[0] = ann_cql_vtext(tenant_id);
        v[1] = ann_cql_vtext(log_id);
        v[2] = ann_cql_vbigint(entry_bucket(id));
        v[3] = ann_cql_vbigint((int64_t)id);
        v[4] = ann_cql_vbigint((int64_t)epoch);
        v[5] = ann_cql_vbigint(e[i].time_ns);
        v[6] = ann_cql_vbigint(e[i].insert_time_ns);
        v[7] = ann_cql_vint(e[i].severity);
        v[8] = ann_cql_vint((int32_t)(e[i].flags & ~(uint32_t)ANN_ENTRY_REDACTED));
        v[9] = ann_cql_vtextn(e[i].insert_id, e[i].insert_id_len);
        v[10] =
            ann_cql_vblob(e[i].body ? (const void *)e[i].body : (const void *)"", e[i].body_len);
        b.items[b.n++] =
            (ann_cql_batch_item){.ps = a->ps[S_ENTRY_INS], .values = v, .nvalues = VPS};
        b.bytes += e[i].body_len + e[i].insert_id_len + 64;
    }
    if (batcher_flush(&b) < 0) {
        staged = -1;
        goto wait;
    }
    /* The flushed batches were encoded at submission: the value arrays can be
     * reused now. Insert ids, grouped by bucket (counting sort). */
    {
        size_t start[ANN_ARCHIVE_ID_BUCKETS + 1] = {0};
        int32_t *bk = malloc(n * sizeof *bk);
        if (!bk) {
            ann_err_set(err, ANN_EINTERNAL, "archive: out of memory");
            {
                staged = -1;
                goto wait;
            }
        }
        for (size_t i = 0; i < n; i++) {
            bk[i] = id_bucket(e[i].insert_id, e[i].insert_id_len);
            start[bk[i] + 1]++;
        }
        for (int k = 0; k < ANN_ARCHIVE_ID_BUCKETS; k++)
            start[k + 1] += start[k];
        size_t fill[ANN_ARCHIVE_ID_BUCKETS];
        memcpy(fill, start, sizeof fill);
        for (size_t i = 0; i < n; i++)
            order[fill[bk[i]]++] = i;
        int32_t prev = -1;
        for (size_t j = 0; j < n; j++) {
            size_t i = order[j];
            if ((bk[i] != prev && b.n) || b.n == CHUNK_ROWS) {
                if (batcher_flush(&b) < 0) {
                    free(bk);
                    staged = -1;
                    goto wait;
                }
            }
            prev = bk[i];
            ann_cql_value *v = &b.vals[b.n * VPS];
            v[0] = ann_cql_vtext(tenant_id);
            v[1] = ann_cql_vtext(log_id);
            v[2] = ann_cql_vint(bk[i]);
            v[3] = ann_cql_vtextn(e[i].insert_id, e[i].insert_id_len);
            v[4] = ann_cql_vbigint((int64_t)epoch);
            v[5] = ann_cql_vbigint((int64_t)(first_id + i));
            b.items[b.n++] = (ann_cql_batch_item){.ps = a->ps[S_ID_INS], .values = v, .nvalues = 6};
        }
        free(bk);
        if (batcher_flush(&b) < 0) {
            staged = -1;
            goto wait;
        }
    }
wait:
    if (batcher_wait(&b) < 0 || staged < 0)
        goto done;

    /* The commit: one conditional batch on the head's partition. */
    {
        uint64_t next = first_id + n;
        ann_cql_value hv[] = {ann_cql_vbigint((int64_t)next), ann_cql_vtext(tenant_id),
                              ann_cql_vtext(log_id), ann_cql_vbigint((int64_t)epoch),
                              ann_cql_vbigint((int64_t)first_id)};
        ann_cql_value rv[] = {
            ann_cql_vtext(tenant_id),           ann_cql_vtext(log_id),
            ann_cql_vbigint((int64_t)first_id), ann_cql_vbigint((int64_t)(next - 1)),
            ann_cql_vbigint((int64_t)epoch),    ann_cql_vtimestamp(now_ms())};
        ann_cql_batch_item items[] = {{.ps = a->ps[S_COMMIT_HEAD], .values = hv, .nvalues = 5},
                                      {.ps = a->ps[S_COMMIT_ROW], .values = rv, .nvalues = 6}};
        ann_cql_batch bt = {.type = ANN_CQL_BATCH_LOGGED,
                            .items = items,
                            .n = 2,
                            .consistency = a->cl,
                            .serial_consistency = a->serial};
        ann_cql_result r;
        bool applied = false;
        if (ann_cql_batch_run(a->c, &bt, &r, err) < 0 || ann_cql_applied(&r, &applied, err) < 0) {
            ann_cql_result_release(&r);
            goto done;
        }
        if (!applied) {
            ann_archive_head cur = {0};
            int32_t ci = ann_cql_column_index(&r, "next_id");
            int32_t ce = ann_cql_column_index(&r, "owner_epoch");
            cur.exists = ci >= 0 && ann_cql_cell(&r, 0, ci) && ann_cql_cell(&r, 0, ci)->len >= 0;
            if (ci >= 0)
                cur.next_id = get_u64(&r, 0, ci);
            if (ce >= 0)
                cur.owner_epoch = get_u64(&r, 0, ce);
            ann_cql_result_release(&r);
            if (cur.owner_epoch != epoch)
                cleanup_refused(a, tenant_id, log_id, epoch, first_id, e, n, cur.next_id);
            if (cur_out)
                *cur_out = cur;
            ret = ANN_ARCHIVE_FENCED;
            goto done;
        }
        ann_cql_result_release(&r);
    }
    ret = 0;
done:
    free(b.futs);
    free(b.items);
    free(b.vals);
    free(order);
    return ret;
}

/* ---- read ---- */

int ann_archive_read(ann_archive *a, const char *tenant_id, const char *log_id, uint64_t from_id,
                     uint64_t to_id, ann_entry_visit_fn visit, void *ud, ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    ann_archive_head h;
    if (head_get(a, tenant_id, log_id, a->cl, &h, err) < 0)
        return -1;
    if (!h.exists || h.deleted)
        return ann_err_set(err, ANN_ENOTFOUND, "archive: no log %s", log_id);
    if (from_id == 0)
        from_id = 1;
    if (to_id > h.next_id)
        to_id = h.next_id;
    uint8_t ps_buf[1024];
    for (uint64_t lo = from_id; lo < to_id;) {
        int64_t bucket = entry_bucket(lo);
        uint64_t hi = (uint64_t)(bucket + 1) * ANN_ARCHIVE_BUCKET_IDS;
        if (hi > to_id)
            hi = to_id;
        ann_cql_bytes ps = {NULL, -1};
        uint64_t last_id = 0; /* rows of lower epochs at an id already seen are skipped */
        for (;;) {
            ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id),
                                 ann_cql_vbigint(bucket), ann_cql_vbigint((int64_t)lo),
                                 ann_cql_vbigint((int64_t)hi)};
            ann_cql_params p;
            params(a, &p, v, 5, true);
            p.page_size = PAGE_ROWS;
            p.paging_state = ps;
            ann_cql_result r;
            if (ann_cql_execute(a->c, a->ps[S_ENTRY_RANGE], &p, &r, err) < 0) {
                ann_cql_result_release(&r);
                return -1;
            }
            for (int32_t row = 0; row < r.nrows; row++) {
                uint64_t id = get_u64(&r, row, 0);
                if (id == last_id)
                    continue;
                last_id = id;
                ann_entry e = {0};
                int64_t t = 0;
                int32_t i32 = 0;
                e.entry_id = id;
                if (ann_cql_get_bigint(&r, row, 2, &t, NULL) == 0)
                    e.time_ns = t;
                if (ann_cql_get_bigint(&r, row, 3, &t, NULL) == 0)
                    e.insert_time_ns = t;
                if (ann_cql_get_int(&r, row, 4, &i32, NULL) == 0)
                    e.severity = i32;
                if (ann_cql_get_int(&r, row, 5, &i32, NULL) == 0)
                    e.flags = (uint32_t)i32;
                (void)ann_cql_get_text(&r, row, 6, &e.insert_id, &e.insert_id_len, NULL);
                if (ann_cql_get_blob(&r, row, 7, &e.body, &e.body_len, NULL) != 0) {
                    e.body = NULL;
                    e.body_len = 0;
                }
                if (visit(&e, ud)) {
                    ann_cql_result_release(&r);
                    return 0;
                }
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
        lo = hi;
    }
    return 0;
}

/* ---- revoke ---- */

int ann_archive_revoke(ann_archive *a, const char *tenant_id, const char *log_id,
                       const uint64_t *ids, size_t n, ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    ann_archive_head h;
    if (head_get(a, tenant_id, log_id, a->cl, &h, err) < 0)
        return -1;
    if (!h.exists || h.deleted)
        return ann_err_set(err, ANN_ENOTFOUND, "archive: no log %s", log_id);
    for (size_t i = 0; i < n; i++)
        if (ids[i] == 0 || ids[i] >= h.next_id)
            return ann_err_set(err, ANN_ENOTFOUND, "ids[%zu]: no entry %llu", i,
                               (unsigned long long)ids[i]);
    for (size_t i = 0; i < n; i++) {
        ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id),
                             ann_cql_vbigint(entry_bucket(ids[i])),
                             ann_cql_vbigint((int64_t)ids[i])};
        ann_cql_params p;
        params(a, &p, v, 4, true);
        ann_cql_result r;
        if (ann_cql_execute(a->c, a->ps[S_ENTRY_EPOCHS], &p, &r, err) < 0) {
            ann_cql_result_release(&r);
            return -1;
        }
        /* Every row stored for the id: the committed one and any a fenced
         * writer left, which may hold the same secret. */
        for (int32_t row = 0; row < r.nrows; row++) {
            int32_t flags = 0;
            (void)ann_cql_get_int(&r, row, 1, &flags, NULL);
            ann_cql_value u[] = {ann_cql_vint(flags | ANN_ENTRY_REDACTED),
                                 ann_cql_vtext(tenant_id),
                                 ann_cql_vtext(log_id),
                                 ann_cql_vbigint(entry_bucket(ids[i])),
                                 ann_cql_vbigint((int64_t)ids[i]),
                                 ann_cql_vbigint((int64_t)get_u64(&r, row, 0))};
            ann_cql_params up;
            params(a, &up, u, 6, true);
            ann_cql_result ur;
            int rc = ann_cql_execute(a->c, a->ps[S_REDACT], &up, &ur, err);
            ann_cql_result_release(&ur);
            if (rc < 0) {
                ann_cql_result_release(&r);
                return -1;
            }
        }
        ann_cql_result_release(&r);
    }
    return 0;
}

/* ---- delete ---- */

static int exec_simple(ann_archive *a, int s, const ann_cql_value *v, size_t n, ann_err *err)
{
    ann_cql_params p;
    params(a, &p, v, n, true);
    ann_cql_result r;
    int rc = ann_cql_execute(a->c, a->ps[s], &p, &r, err);
    ann_cql_result_release(&r);
    return rc;
}

int ann_archive_delete_log(ann_archive *a, const char *tenant_id, const char *log_id, ann_err *err)
{
    if (check_ids(tenant_id, log_id, err) < 0)
        return -1;
    ann_archive_head h;
    for (int attempt = 0;; attempt++) {
        if (attempt == 8)
            return ann_err_set(err, ANN_EUNAVAIL, "archive: delete of %s lost to claimers", log_id);
        if (head_get(a, tenant_id, log_id, a->serial, &h, err) < 0)
            return -1;
        if (!h.exists)
            return ann_err_set(err, ANN_ENOTFOUND, "archive: no log %s", log_id);
        if (h.deleted)
            break; /* fenced already: finish the sweep */
        ann_cql_value v[] = {ann_cql_vbigint((int64_t)h.owner_epoch + 1), ann_cql_vtext(tenant_id),
                             ann_cql_vtext(log_id), ann_cql_vbigint((int64_t)h.owner_epoch)};
        bool applied = false;
        if (exec_lwt(a, S_DEL_FENCE, v, 4, &applied, err) < 0)
            return -1;
        if (applied)
            break;
    }
    /* One bucket past the last id: a fenced writer's rows may lie there. */
    int64_t last = entry_bucket(h.next_id + ANN_ARCHIVE_MAX_APPEND);
    for (int64_t bk = 0; bk <= last; bk++) {
        ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id), ann_cql_vbigint(bk)};
        if (exec_simple(a, S_DEL_BUCKET, v, 3, err) < 0)
            return -1;
    }
    for (int32_t bk = 0; bk < ANN_ARCHIVE_ID_BUCKETS; bk++) {
        ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id), ann_cql_vint(bk)};
        if (exec_simple(a, S_DEL_IDS, v, 3, err) < 0)
            return -1;
    }
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id)};
    return exec_simple(a, S_DEL_BATCHES, v, 2, err);
}
