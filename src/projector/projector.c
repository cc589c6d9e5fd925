#include "projector.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fault.h"
#include "domain/integrity.h"
#include "domain/merkle.h"
#include "domain/note.h"
#include "pg/pg.h"
#include "pg/schema.h"
#include "store/store.h"

typedef Annals__Events__V1__Committed committed;

struct ann_projector {
    ann_projector_kind kind;
    PGconn *c;
    char *conninfo;
    char ns[ANN_PG_NS_MAX + 1];
    int64_t *epochs; /* by partition; 0: not claimed */
    size_t n_epochs;
    uint8_t months[ANN_PG_MONTHS / 8 + 1]; /* month partitions known to exist */
    /* SQL with the schema filled in */
    char sql_claim[512];
    char sql_fence[256];
    char sql_copy[128];
    char sql_insert[1536];
    char sql_log[512];
    char sql_rev_upd[1024];
    char sql_rev_ins[512];
    char sql_del[3][1024];
    int n_del;
    char sql_state[2048];
    char sql_sstate[2][768]; /* search: search_state advanced, created */
    char sql_offsets[512];
};

static int session_setup(ann_projector *p, ann_err *err)
{
    if (p->kind == ANN_PROJECTOR_SEARCH)
        return ann_pg_run(p->c, "staging table",
                          "CREATE TEMP TABLE IF NOT EXISTS ann_sstaging (tenant_id text,"
                          " log_id text, entry_id bigint, ts bigint, insert_ts bigint, doc text)"
                          " ON COMMIT DELETE ROWS",
                          NULL, err);
    return ann_pg_run(p->c, "staging table",
                      "CREATE TEMP TABLE IF NOT EXISTS ann_staging (tenant_id text, log_id text,"
                      " entry_id bigint, ts bigint, insert_ts bigint, severity int, flags int,"
                      " insert_id bytea, body bytea, bhash bytea, leaf bytea)"
                      " ON COMMIT DELETE ROWS",
                      NULL, err);
}

/* A connection, reconnected when the last one broke. */
static int conn_ok(ann_projector *p, ann_err *err)
{
    if (p->c && PQstatus(p->c) == CONNECTION_OK)
        return 0;
    PQfinish(p->c);
    p->c = ann_pg_connect(p->conninfo, err);
    if (!p->c)
        return -1;
    if (session_setup(p, err) != 0) {
        PQfinish(p->c);
        p->c = NULL;
        return -1;
    }
    return 0;
}

int ann_projector_open(const char *conninfo, const char *ns, ann_projector **out, ann_err *err)
{
    return ann_projector_open_kind(conninfo, ns, ANN_PROJECTOR_BROWSE, out, err);
}

static void search_sql(ann_projector *p, const char *ns, const char *mark);

int ann_projector_open_kind(const char *conninfo, const char *ns, ann_projector_kind kind,
                            ann_projector **out, ann_err *err)
{
    if (!ann_namespace_valid(ns))
        return ann_err_set(err, ANN_EINVAL, "namespace: must be [a-z][a-z0-9_]{0,39}");
    ann_projector *p = ann_xcalloc(1, sizeof *p);
    p->kind = kind;
    p->conninfo = strdup(conninfo);
    if (!p->conninfo)
        abort();
    snprintf(p->ns, sizeof p->ns, "%s", ns);
    if (conn_ok(p, err) != 0 || ann_pg_schema_ensure(p->c, ns, err) != 0) {
        ann_projector_close(p);
        return -1;
    }
    /* The partitions a revocation or delete changed wait for the purger's VACUUM FULL:
     * the old row versions keep the bytes until their partition is rewritten. */
    /* A redacted entry's body: its body_hash field (domain/integrity.h), built from the
     * stored hash; nothing for an entry stored without one. */
    char gone[160], gone_s[160];
    {
        uint8_t f[ANN_INTEGRITY_FIELD_LEN] = {0}, zero[32] = {0};
        char hex[2 * 5 + 1];
        ann_integrity_field(ANN_INTEGRITY_HASH, zero, f);
        for (int i = 0; i < ANN_INTEGRITY_FIELD_LEN - 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", f[i]);
        snprintf(gone, sizeof gone,
                 "CASE WHEN bhash IS NULL THEN ''::bytea ELSE '\\x%s'::bytea || bhash END", hex);
        snprintf(gone_s, sizeof gone_s,
                 "CASE WHEN s.bhash IS NULL THEN ''::bytea ELSE '\\x%s'::bytea || s.bhash END",
                 hex);
    }
    char mark[512];
    snprintf(mark, sizeof mark,
             "INSERT INTO \"%s\".purge_pending AS q (rel) SELECT DISTINCT"
             " format('%%I.%%I', n.nspname, c.relname) FROM u JOIN pg_class c"
             " ON c.oid = u.tableoid JOIN pg_namespace n ON n.oid = c.relnamespace"
             " ON CONFLICT (rel) DO UPDATE SET gen = q.gen + 1",
             ns);
    snprintf(p->sql_claim, sizeof p->sql_claim,
             "INSERT INTO \"%1$s\".projector_offsets AS o (partition, next_offset, epoch)"
             " VALUES ($1, 0, 1) ON CONFLICT (partition) DO UPDATE SET epoch = o.epoch + 1"
             " RETURNING epoch, next_offset",
             ns);
    snprintf(p->sql_fence, sizeof p->sql_fence,
             "SELECT partition, epoch FROM \"%s\".projector_offsets"
             " WHERE partition = ANY($1::int[]) FOR UPDATE",
             ns);
    snprintf(p->sql_copy, sizeof p->sql_copy, "COPY ann_staging FROM STDIN (FORMAT binary)");
    snprintf(p->sql_insert, sizeof p->sql_insert,
             "INSERT INTO \"%1$s\".entries (tenant_id, log_id, entry_id, ts, insert_ts, severity,"
             " flags, insert_id, body, bhash, leaf) SELECT s.tenant_id, s.log_id, s.entry_id,"
             " s.ts, s.insert_ts, s.severity,"
             " CASE WHEN r.entry_id IS NULL THEN s.flags ELSE s.flags | %2$d END, s.insert_id,"
             " CASE WHEN r.entry_id IS NULL THEN s.body ELSE %3$s END, s.bhash, s.leaf"
             " FROM ann_staging s"
             " LEFT JOIN \"%1$s\".revocations r ON r.tenant_id = s.tenant_id"
             " AND r.log_id = s.log_id AND r.entry_id = s.entry_id"
             " WHERE NOT EXISTS (SELECT 1 FROM \"%1$s\".logs l WHERE l.tenant_id = s.tenant_id"
             " AND l.log_id = s.log_id AND l.deleted) ON CONFLICT DO NOTHING",
             ns, ANN_ENTRY_REDACTED, gone_s);
    snprintf(p->sql_log, sizeof p->sql_log,
             "INSERT INTO \"%s\".logs (tenant_id, log_id, create_ts, labels, label_set)"
             " VALUES ($1, $2, $3, $4, $5::text[]) ON CONFLICT DO NOTHING",
             ns);
    snprintf(p->sql_rev_upd, sizeof p->sql_rev_upd,
             "WITH u AS (UPDATE \"%1$s\".entries SET body = %4$s, flags = flags | %2$d"
             " WHERE tenant_id = $1 AND log_id = $2 AND entry_id = ANY($3::bigint[])"
             " RETURNING tableoid) %3$s",
             ns, ANN_ENTRY_REDACTED, mark, gone);
    snprintf(p->sql_rev_ins, sizeof p->sql_rev_ins,
             "INSERT INTO \"%s\".revocations (tenant_id, log_id, entry_id, actor, reason,"
             " time_ns) SELECT $1, $2, unnest($3::bigint[]), $4, $5, $6 ON CONFLICT DO NOTHING",
             ns);
    snprintf(p->sql_del[0], sizeof p->sql_del[0],
             "WITH u AS (DELETE FROM \"%s\".entries WHERE tenant_id = $1 AND log_id = $2"
             " RETURNING tableoid) %s",
             ns, mark);
    snprintf(p->sql_del[1], sizeof p->sql_del[1],
             "DELETE FROM \"%s\".revocations WHERE tenant_id = $1 AND log_id = $2", ns);
    snprintf(p->sql_del[2], sizeof p->sql_del[2],
             "UPDATE \"%s\".logs SET deleted = true WHERE tenant_id = $1 AND log_id = $2", ns);
    snprintf(p->sql_state, sizeof p->sql_state,
             "WITH u AS (INSERT INTO \"%1$s\".log_state AS s (tenant_id, log_id, visible_count,"
             " applied_op, deleted, ckpt_size, checkpoint, sealed) SELECT * FROM"
             " unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bool[],"
             " $6::bigint[], $7::text[], $8::bool[])"
             " ON CONFLICT (tenant_id, log_id) DO UPDATE SET"
             " sealed = s.sealed OR EXCLUDED.sealed,"
             " visible_count = GREATEST(s.visible_count, EXCLUDED.visible_count),"
             " applied_op = GREATEST(s.applied_op, EXCLUDED.applied_op),"
             " deleted = s.deleted OR EXCLUDED.deleted,"
             " checkpoint = CASE WHEN EXCLUDED.ckpt_size > s.ckpt_size THEN EXCLUDED.checkpoint"
             " ELSE s.checkpoint END,"
             " ckpt_size = GREATEST(s.ckpt_size, EXCLUDED.ckpt_size)"
             " RETURNING tenant_id, log_id, visible_count, applied_op, deleted)"
             " SELECT count(pg_notify('%1$s_visible', u.tenant_id || '/' || u.log_id || ' ' ||"
             " u.visible_count || ' ' || u.applied_op || ' ' ||"
             " CASE WHEN u.deleted THEN '1' ELSE '0' END)) FROM u",
             ns);
    snprintf(p->sql_offsets, sizeof p->sql_offsets,
             "UPDATE \"%s\".projector_offsets o SET next_offset = v.n"
             " FROM unnest($1::int[], $2::bigint[]) v(p, n) WHERE o.partition = v.p",
             ns);
    p->n_del = 3;
    if (kind == ANN_PROJECTOR_SEARCH)
        search_sql(p, ns, mark);
    *out = p;
    return 0;
}

/* The search projection's statements: the same fence on search_offsets, docs instead of
 * entries, search_state instead of log_state (docs/distributed.md, "Search"). */
static void search_sql(ann_projector *p, const char *ns, const char *mark)
{
    snprintf(p->sql_claim, sizeof p->sql_claim,
             "INSERT INTO \"%1$s\".search_offsets AS o (partition, next_offset, epoch)"
             " VALUES ($1, 0, 1) ON CONFLICT (partition) DO UPDATE SET epoch = o.epoch + 1"
             " RETURNING epoch, next_offset",
             ns);
    snprintf(p->sql_fence, sizeof p->sql_fence,
             "SELECT partition, epoch FROM \"%s\".search_offsets"
             " WHERE partition = ANY($1::int[]) FOR UPDATE",
             ns);
    snprintf(p->sql_copy, sizeof p->sql_copy, "COPY ann_sstaging FROM STDIN (FORMAT binary)");
    /* An entry a revocation names (the browse projection's record) never gets a doc. */
    snprintf(p->sql_insert, sizeof p->sql_insert,
             "INSERT INTO \"%1$s\".search_docs (tenant_id, log_id, entry_id, ts, insert_ts, doc)"
             " SELECT s.tenant_id, s.log_id, s.entry_id, s.ts, s.insert_ts, s.doc"
             " FROM ann_sstaging s WHERE NOT EXISTS (SELECT 1 FROM \"%1$s\".revocations r"
             " WHERE r.tenant_id = s.tenant_id AND r.log_id = s.log_id"
             " AND r.entry_id = s.entry_id) AND NOT EXISTS (SELECT 1 FROM \"%1$s\".logs l"
             " WHERE l.tenant_id = s.tenant_id AND l.log_id = s.log_id AND l.deleted)"
             " ON CONFLICT DO NOTHING",
             ns);
    snprintf(p->sql_rev_upd, sizeof p->sql_rev_upd,
             "WITH u AS (DELETE FROM \"%1$s\".search_docs WHERE tenant_id = $1 AND log_id = $2"
             " AND entry_id = ANY($3::bigint[]) RETURNING tableoid) %2$s",
             ns, mark);
    snprintf(p->sql_del[0], sizeof p->sql_del[0],
             "WITH u AS (DELETE FROM \"%s\".search_docs WHERE tenant_id = $1 AND log_id = $2"
             " RETURNING tableoid) %s",
             ns, mark);
    snprintf(p->sql_del[1], sizeof p->sql_del[1],
             "DELETE FROM \"%s\".search_state WHERE tenant_id = $1 AND log_id = $2", ns);
    p->n_del = 2;
    /* indexed moves to hi when the batch's run lo..hi of the log joins what is indexed. */
    snprintf(p->sql_sstate[0], sizeof p->sql_sstate[0],
             "UPDATE \"%s\".search_state s SET indexed = v.hi FROM unnest($1::text[],"
             " $2::text[], $3::bigint[], $4::bigint[]) v(t, l, lo, hi) WHERE s.tenant_id = v.t"
             " AND s.log_id = v.l AND v.lo <= s.indexed + 1 AND v.hi > s.indexed",
             ns);
    snprintf(p->sql_sstate[1], sizeof p->sql_sstate[1],
             "INSERT INTO \"%s\".search_state (tenant_id, log_id, indexed) SELECT v.t, v.l,"
             " CASE WHEN v.lo <= 1 THEN v.hi ELSE 0 END FROM unnest($1::text[], $2::text[],"
             " $3::bigint[], $4::bigint[]) v(t, l, lo, hi) ON CONFLICT DO NOTHING",
             ns);
    snprintf(p->sql_offsets, sizeof p->sql_offsets,
             "UPDATE \"%s\".search_offsets o SET next_offset = v.n"
             " FROM unnest($1::int[], $2::bigint[]) v(p, n) WHERE o.partition = v.p",
             ns);
}

void ann_projector_close(ann_projector *p)
{
    if (!p)
        return;
    PQfinish(p->c);
    free(p->epochs);
    free(p->conninfo);
    free(p);
}

int ann_projector_claim(ann_projector *p, int32_t partition, int64_t *next_offset, ann_err *err)
{
    if (partition < 0)
        return ann_err_set(err, ANN_EINVAL, "projector: partition %d", (int)partition);
    if (conn_ok(p, err) != 0)
        return -1;
    ann_pg_params pr = {0};
    ann_pg_param_i32(&pr, partition);
    PGresult *r = ann_pg_exec(p->c, "claim partition", p->sql_claim, &pr, true, err);
    if (!r)
        return -1;
    int64_t epoch = ann_pg_get_i64(r, 0, 0);
    *next_offset = ann_pg_get_i64(r, 0, 1);
    PQclear(r);
    if ((size_t)partition >= p->n_epochs) {
        size_t n = (size_t)partition + 16;
        p->epochs = ann_xrealloc(p->epochs, n * sizeof *p->epochs);
        memset(p->epochs + p->n_epochs, 0, (n - p->n_epochs) * sizeof *p->epochs);
        p->n_epochs = n;
    }
    p->epochs[partition] = epoch;
    return 0;
}

void ann_projector_forget(ann_projector *p)
{
    if (p->n_epochs)
        memset(p->epochs, 0, p->n_epochs * sizeof *p->epochs);
}

/* ---- the batch's per-log state and per-partition offsets ---- */

typedef struct logagg {
    const char *tenant, *log;
    uint64_t visible, op;
    bool deleted;
    uint64_t lo, hi; /* search: the ids lo..hi all staged in this batch (lo 0: none) */
    const Annals__Events__V1__Checkpoint *ckpt; /* the batch's largest checkpoint, or NULL */
    bool sealed;
} logagg;

typedef struct aggs {
    logagg *v;
    size_t n;
    int32_t *slots; /* open addressing: index + 1, 0 empty */
    size_t cap;     /* power of two */
} aggs;

static uint32_t key_hash(const char *t, const char *l)
{
    uint32_t h = 2166136261u;
    for (const char *s = t; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (const char *s = l; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static logagg *agg_get(aggs *a, const char *t, const char *l)
{
    size_t i = key_hash(t, l) & (a->cap - 1);
    for (;; i = (i + 1) & (a->cap - 1)) {
        int32_t s = a->slots[i];
        if (s == 0)
            break;
        logagg *g = &a->v[s - 1];
        if (strcmp(g->tenant, t) == 0 && strcmp(g->log, l) == 0)
            return g;
    }
    a->slots[i] = (int32_t)++a->n;
    logagg *g = &a->v[a->n - 1];
    *g = (logagg){.tenant = t, .log = l};
    return g;
}

typedef struct batch {
    ann_projector *p;
    ann_buf copy; /* binary COPY data of the staged entries */
    size_t staged;
    ann_buf tmp;
    ann_buf doc;
} batch;

static int flush(batch *b, ann_err *err)
{
    if (b->staged == 0)
        return 0;
    ann_pg_copy_trailer(&b->copy);
    int rc =
        ann_pg_copy_in(b->p->c, "copy entries", b->p->sql_copy, b->copy.data, b->copy.len, err);
    if (rc == 0)
        rc = ann_pg_run(b->p->c, "insert entries", b->p->sql_insert, NULL, err);
    if (rc == 0)
        rc = ann_pg_run(b->p->c, "truncate staging",
                        b->p->kind == ANN_PROJECTOR_SEARCH ? "TRUNCATE ann_sstaging"
                                                           : "TRUNCATE ann_staging",
                        NULL, err);
    b->copy.len = 0;
    b->staged = 0;
    return rc;
}

static void stage(batch *b, const committed *c, const Annals__Events__V1__Entry *e)
{
    if (b->staged == 0) {
        b->copy.len = 0;
        ann_pg_copy_header(&b->copy);
    }
    if (b->p->kind == ANN_PROJECTOR_SEARCH) {
        ann_pg_copy_tuple(&b->copy, 6);
        ann_pg_copy_bytes(&b->copy, c->tenant_id, strlen(c->tenant_id));
        ann_pg_copy_bytes(&b->copy, c->log_id, strlen(c->log_id));
        ann_pg_copy_i64(&b->copy, (int64_t)e->entry_id);
        ann_pg_copy_i64(&b->copy, e->time_ns);
        ann_pg_copy_i64(&b->copy, e->insert_time_ns);
        b->doc.len = 0;
        ann_body_search_doc(e->body.data, e->body.len, &b->doc);
        ann_pg_copy_bytes(&b->copy, b->doc.data, b->doc.len);
        b->staged++;
        return;
    }
    ann_pg_copy_tuple(&b->copy, 11);
    ann_pg_copy_bytes(&b->copy, c->tenant_id, strlen(c->tenant_id));
    ann_pg_copy_bytes(&b->copy, c->log_id, strlen(c->log_id));
    ann_pg_copy_i64(&b->copy, (int64_t)e->entry_id);
    ann_pg_copy_i64(&b->copy, e->time_ns);
    ann_pg_copy_i64(&b->copy, e->insert_time_ns);
    ann_pg_copy_i32(&b->copy, e->severity);
    ann_pg_copy_i32(&b->copy, 0);
    ann_pg_copy_bytes(&b->copy, e->insert_id.data, e->insert_id.len);
    ann_pg_copy_bytes(&b->copy, e->body.data, e->body.len);
    uint8_t bhash[ANN_HASH_LEN], leaf[ANN_HASH_LEN];
    if (ann_integrity_entry_leaf(e->entry_id, e->time_ns, e->insert_time_ns, e->severity,
                                 e->insert_id.data, e->insert_id.len, e->body.data, e->body.len,
                                 bhash, leaf) == 0) { /* else: stored before the tree */
        ann_pg_copy_bytes(&b->copy, bhash, sizeof bhash);
        ann_pg_copy_bytes(&b->copy, leaf, sizeof leaf);
    } else {
        ann_pg_copy_null(&b->copy);
        ann_pg_copy_null(&b->copy);
    }
    b->staged++;
}

static void id_array(ann_buf *b, const uint64_t *ids, size_t n)
{
    char num[24];
    b->len = 0;
    ann_buf_add_byte(b, '{');
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(num, sizeof num, "%s%llu", i ? "," : "", (unsigned long long)ids[i]);
        ann_buf_add(b, num, (size_t)k);
    }
    ann_buf_add(b, "}", 2);
}

static int apply_one(batch *b, const committed *c, ann_err *err)
{
    ann_projector *p = b->p;
    ann_pg_params pr = {0};
    switch (c->op_case) {
    case ANNALS__EVENTS__V1__COMMITTED__OP_WRITE:
        for (size_t i = 0; i < c->write->n_entries; i++)
            stage(b, c, c->write->entries[i]);
        return 0;
    case ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG: {
        if (p->kind == ANN_PROJECTOR_SEARCH)
            return 0; /* logs is the browse projection's: never a row both write */
        const Annals__Events__V1__CreateLog *cl = c->create_log;
        ann_pg_label_set_of_labels(&b->tmp, cl->labels.data, cl->labels.len, 2);
        ann_pg_param_text(&pr, c->tenant_id);
        ann_pg_param_text(&pr, c->log_id);
        ann_pg_param_i64(&pr, cl->create_time_ns);
        ann_pg_param_bytes(&pr, cl->labels.data, cl->labels.len);
        ann_pg_param_raw(&pr, (const char *)b->tmp.data);
        return ann_pg_run(p->c, "create log", p->sql_log, &pr, err);
    }
    case ANNALS__EVENTS__V1__COMMITTED__OP_REVOKE: {
        const Annals__Events__V1__Revoke *rv = c->revoke;
        if (flush(b, err) != 0)
            return -1;
        id_array(&b->tmp, rv->entry_ids, rv->n_entry_ids);
        ann_pg_param_text(&pr, c->tenant_id);
        ann_pg_param_text(&pr, c->log_id);
        ann_pg_param_raw(&pr, (const char *)b->tmp.data);
        if (ann_pg_run(p->c, "revoke", p->sql_rev_upd, &pr, err) != 0)
            return -1;
        if (p->kind == ANN_PROJECTOR_SEARCH)
            return 0; /* the revocation record is the browse projection's */
        ann_pg_param_text(&pr, rv->actor ? rv->actor : "");
        ann_pg_param_text(&pr, rv->reason ? rv->reason : "");
        ann_pg_param_i64(&pr, rv->time_ns);
        return ann_pg_run(p->c, "revocation record", p->sql_rev_ins, &pr, err);
    }
    case ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG:
        if (flush(b, err) != 0)
            return -1;
        ann_pg_param_text(&pr, c->tenant_id);
        ann_pg_param_text(&pr, c->log_id);
        for (int i = 0; i < p->n_del; i++)
            if (ann_pg_run(p->c, "delete log", p->sql_del[i], &pr, err) != 0)
                return -1;
        return 0;
    default:
        return 0; /* an op this version does not know: nothing to project */
    }
}

static void add_text_elem(ann_buf *b, const char *s)
{
    if (b->len > 1)
        ann_buf_add_byte(b, ',');
    ann_buf_add_byte(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            ann_buf_add_byte(b, '\\');
        ann_buf_add_byte(b, (uint8_t)*s);
    }
    ann_buf_add_byte(b, '"');
}

static void add_num_elem(ann_buf *b, long long v)
{
    char num[24];
    int k = snprintf(num, sizeof num, "%s%lld", b->len > 1 ? "," : "", v);
    ann_buf_add(b, num, (size_t)k);
}

static void open_arr(ann_buf *b)
{
    b->len = 0;
    ann_buf_add_byte(b, '{');
}

static void close_arr(ann_buf *b)
{
    ann_buf_add(b, "}", 2);
}

static bool ok_text(const char *s)
{
    return s && *s;
}

/* A note to keep as text: bounded, with no NUL (its signature is checked by readers). */
static bool ok_note(const ProtobufCBinaryData *n)
{
    return n->len > 0 && n->len <= ANN_NOTE_MAX_BYTES && !memchr(n->data, 0, n->len);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids lo..hi of a Write that are all in it, hi its highest (lo 0: none). A write
 * carries its new ids (consecutive, up to the log's count) and any it repeated (older). */
static void write_run(const Annals__Events__V1__Write *w, uint64_t *lo, uint64_t *hi)
{
    *lo = *hi = 0;
    if (!w || w->n_entries == 0)
        return;
    uint64_t *ids = ann_xcalloc(w->n_entries, sizeof *ids);
    for (size_t i = 0; i < w->n_entries; i++)
        ids[i] = w->entries[i]->entry_id;
    qsort(ids, w->n_entries, sizeof *ids, cmp_u64);
    size_t k = w->n_entries - 1;
    while (k > 0 && ids[k - 1] + 1 >= ids[k])
        k--;
    *lo = ids[k];
    *hi = ids[w->n_entries - 1];
    free(ids);
}

/* Joins a write's run to the batch's run of its log; a gap starts the run over (only the
 * last run can extend what is indexed: safe, never more than what holds). */
static void run_join(logagg *g, uint64_t lo, uint64_t hi)
{
    if (lo == 0)
        return;
    if (g->lo == 0 || lo > g->hi + 1) {
        g->lo = lo;
        g->hi = hi;
    } else if (hi > g->hi) {
        g->hi = hi;
    }
}

/* search_state: indexed moves up to each log's run when the run joins it. */
static int search_state(ann_projector *p, const aggs *ag, ann_buf *a1, ann_buf *a2, ann_buf *a3,
                        ann_buf *a4, ann_err *err)
{
    open_arr(a1), open_arr(a2), open_arr(a3), open_arr(a4);
    size_t k = 0;
    for (size_t i = 0; i < ag->n; i++) {
        if (ag->v[i].deleted || ag->v[i].lo == 0)
            continue;
        add_text_elem(a1, ag->v[i].tenant);
        add_text_elem(a2, ag->v[i].log);
        add_num_elem(a3, (long long)ag->v[i].lo);
        add_num_elem(a4, (long long)ag->v[i].hi);
        k++;
    }
    close_arr(a1), close_arr(a2), close_arr(a3), close_arr(a4);
    if (k == 0)
        return 0;
    ann_pg_params pr = {0};
    ann_pg_param_raw(&pr, (const char *)a1->data);
    ann_pg_param_raw(&pr, (const char *)a2->data);
    ann_pg_param_raw(&pr, (const char *)a3->data);
    ann_pg_param_raw(&pr, (const char *)a4->data);
    if (ann_pg_run(p->c, "search state", p->sql_sstate[0], &pr, err) != 0)
        return -1;
    return ann_pg_run(p->c, "search state", p->sql_sstate[1], &pr, err);
}

static void rollback(PGconn *c)
{
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
}

int ann_projector_apply(ann_projector *p, const ann_projector_record *v, size_t n, ann_err *err)
{
    if (n == 0)
        return 0;
    /* Every partition of the batch must be ours. */
    for (size_t i = 0; i < n; i++)
        if (v[i].partition < 0 || (size_t)v[i].partition >= p->n_epochs ||
            p->epochs[v[i].partition] == 0)
            return ANN_PROJECTOR_FENCED;
    if (conn_ok(p, err) != 0)
        return -1;
    /* Month partitions first, each in its own transaction (idempotent). */
    for (size_t i = 0; i < n; i++) {
        const committed *c = v[i].rec;
        if (!c || c->op_case != ANNALS__EVENTS__V1__COMMITTED__OP_WRITE)
            continue;
        for (size_t k = 0; k < c->write->n_entries; k++) {
            int m = ann_pg_month_of(c->write->entries[k]->time_ns);
            if (m < 0 || (p->months[m / 8] & (1u << (m % 8))))
                continue;
            if (ann_pg_month_ensure(p->c, p->ns, m, err) != 0)
                return -1;
            p->months[m / 8] |= (uint8_t)(1u << (m % 8));
        }
    }

    int rc = -1;
    batch b = {.p = p, .copy = ANN_BUF_INIT, .tmp = ANN_BUF_INIT, .doc = ANN_BUF_INIT};
    ann_buf a1 = ANN_BUF_INIT, a2 = ANN_BUF_INIT, a3 = ANN_BUF_INIT, a4 = ANN_BUF_INIT,
            a5 = ANN_BUF_INIT, a6 = ANN_BUF_INIT, a7 = ANN_BUF_INIT, a8 = ANN_BUF_INIT,
            note = ANN_BUF_INIT;
    aggs ag = {0};
    for (ag.cap = 16; ag.cap < 2 * n; ag.cap *= 2)
        ;
    ag.slots = ann_xcalloc(ag.cap, sizeof *ag.slots);
    ag.v = ann_xcalloc(n, sizeof *ag.v);
    /* The batch's partitions and their next offsets (records of a partition in order). */
    int32_t *parts = ann_xcalloc(n, sizeof *parts);
    int64_t *next = ann_xcalloc(n, sizeof *next);
    size_t n_parts = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        for (k = 0; k < n_parts && parts[k] != v[i].partition; k++)
            ;
        if (k == n_parts)
            parts[n_parts++] = v[i].partition;
        if (v[i].offset + 1 > next[k])
            next[k] = v[i].offset + 1;
    }

    if (ann_pg_run(p->c, "begin", "BEGIN", NULL, err) != 0)
        goto out;
    /* The fence: lock our partitions' rows and check their epochs. A claim by another
     * projector waits for our COMMIT, and after it we see its epoch. */
    open_arr(&a1);
    for (size_t k = 0; k < n_parts; k++)
        add_num_elem(&a1, parts[k]);
    close_arr(&a1);
    {
        ann_pg_params pr = {0};
        ann_pg_param_raw(&pr, (const char *)a1.data);
        PGresult *r = ann_pg_exec(p->c, "fence", p->sql_fence, &pr, true, err);
        if (!r)
            goto out;
        int mine = 0;
        for (int i = 0; i < PQntuples(r); i++) {
            int32_t part = ann_pg_get_i32(r, i, 0);
            if (part >= 0 && (size_t)part < p->n_epochs &&
                p->epochs[part] == ann_pg_get_i64(r, i, 1))
                mine++;
        }
        PQclear(r);
        if ((size_t)mine != n_parts) {
            rollback(p->c);
            rc = ANN_PROJECTOR_FENCED;
            goto out;
        }
    }

    for (size_t i = 0; i < n; i++) {
        const committed *c = v[i].rec;
        if (!c || !ok_text(c->tenant_id) || !ok_text(c->log_id))
            continue; /* undecodable: only its offset counts */
        if (apply_one(&b, c, err) != 0)
            goto out;
        logagg *g = agg_get(&ag, c->tenant_id, c->log_id);
        if (c->entry_count > g->visible)
            g->visible = c->entry_count;
        if (c->op_seq > g->op)
            g->op = c->op_seq;
        if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG)
            g->deleted = true;
        if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_SEAL)
            g->sealed = true;
        if (c->checkpoint && c->checkpoint->size < INT64_MAX && ok_note(&c->checkpoint->note) &&
            (!g->ckpt || c->checkpoint->size >= g->ckpt->size))
            g->ckpt = c->checkpoint;
        if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_WRITE) {
            uint64_t lo, hi;
            write_run(c->write, &lo, &hi);
            run_join(g, lo, hi);
        }
    }
    if (flush(&b, err) != 0)
        goto out;
    if (p->kind == ANN_PROJECTOR_BROWSE)
        ANN_FAULT_POINT("proj.rows_applied");

    if (p->kind == ANN_PROJECTOR_SEARCH) {
        if (search_state(p, &ag, &a1, &a2, &a3, &a4, err) != 0)
            goto out;
    } else if (ag.n) {
        open_arr(&a1), open_arr(&a2), open_arr(&a3), open_arr(&a4), open_arr(&a5);
        open_arr(&a6), open_arr(&a7), open_arr(&a8);
        for (size_t i = 0; i < ag.n; i++) {
            add_text_elem(&a1, ag.v[i].tenant);
            add_text_elem(&a2, ag.v[i].log);
            add_num_elem(&a3, (long long)ag.v[i].visible);
            add_num_elem(&a4, (long long)ag.v[i].op);
            if (a5.len > 1)
                ann_buf_add_byte(&a5, ',');
            ann_buf_add_byte(&a5, ag.v[i].deleted ? 't' : 'f');
            if (a8.len > 1)
                ann_buf_add_byte(&a8, ',');
            ann_buf_add_byte(&a8, ag.v[i].sealed ? 't' : 'f');
            const Annals__Events__V1__Checkpoint *ck = ag.v[i].ckpt;
            add_num_elem(&a6, ck ? (long long)ck->size : -1);
            if (ck) {
                note.len = 0;
                ann_buf_add(&note, ck->note.data, ck->note.len);
                ann_buf_add_byte(&note, 0);
                add_text_elem(&a7, (const char *)note.data);
            } else {
                ann_buf_add(&a7, a7.len > 1 ? ",NULL" : "NULL", a7.len > 1 ? 5 : 4);
            }
        }
        close_arr(&a1), close_arr(&a2), close_arr(&a3), close_arr(&a4), close_arr(&a5);
        close_arr(&a6), close_arr(&a7), close_arr(&a8);
        ann_pg_params pr = {0};
        ann_pg_param_raw(&pr, (const char *)a1.data);
        ann_pg_param_raw(&pr, (const char *)a2.data);
        ann_pg_param_raw(&pr, (const char *)a3.data);
        ann_pg_param_raw(&pr, (const char *)a4.data);
        ann_pg_param_raw(&pr, (const char *)a5.data);
        ann_pg_param_raw(&pr, (const char *)a6.data);
        ann_pg_param_raw(&pr, (const char *)a7.data);
        ann_pg_param_raw(&pr, (const char *)a8.data);
        if (ann_pg_run(p->c, "log state", p->sql_state, &pr, err) != 0)
            goto out;
    }

    open_arr(&a1), open_arr(&a2);
    for (size_t k = 0; k < n_parts; k++) {
        add_num_elem(&a1, parts[k]);
        add_num_elem(&a2, next[k]);
    }
    close_arr(&a1), close_arr(&a2);
    {
        ann_pg_params pr = {0};
        ann_pg_param_raw(&pr, (const char *)a1.data);
        ann_pg_param_raw(&pr, (const char *)a2.data);
        if (ann_pg_run(p->c, "offsets", p->sql_offsets, &pr, err) != 0)
            goto out;
    }
    if (ann_pg_run(p->c, "commit", "COMMIT", NULL, err) != 0)
        goto out;
    if (p->kind == ANN_PROJECTOR_BROWSE)
        ANN_FAULT_POINT("proj.committed");
    rc = 0;
out:
    if (rc < 0)
        rollback(p->c);
    ann_buf_release(&b.copy);
    ann_buf_release(&b.tmp);
    ann_buf_release(&b.doc);
    ann_buf_release(&a1), ann_buf_release(&a2), ann_buf_release(&a3), ann_buf_release(&a4),
        ann_buf_release(&a5), ann_buf_release(&a6), ann_buf_release(&a7), ann_buf_release(&a8);
    ann_buf_release(&note);
    free(ag.slots);
    free(ag.v);
    free(parts);
    free(next);
    return rc;
}
