#include "readmodel.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "domain/body.h"
#include "domain/limits.h"
#include "pg.h"
#include "schema.h"

#define PAGE 1000

struct ann_readmodel {
    ann_pg_pool *pool;
    char ns[ANN_PG_NS_MAX + 1];
    char *conninfo;
    /* SQL, with the schema filled in */
    char sql_exists[256];
    char sql_list[1024];
    char sql_after[1024];
    char sql_logs[1024];
    char sql_search[1536];
    char sql_isearch[2][4096]; /* the search projection's: LIKE, ILIKE */
    char sql_state[512];
    char sql_ckpt[512];
    char sql_leaves[512];
    bool walk_only; /* ann_readmodel_search_walk_only */
    /* the listener */
    pthread_t th;
    bool listening;
    atomic_int stop;
    ann_rm_visible_fn cb;
    void *cb_ud;
};

static int64_t clamp_u64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

int ann_readmodel_open(const char *conninfo, const char *ns, size_t pool_size, ann_readmodel **out,
                       ann_err *err)
{
    if (!ann_namespace_valid(ns))
        return ann_err_set(err, ANN_EINVAL, "namespace: must be [a-z][a-z0-9_]{0,39}");
    PGconn *c = ann_pg_connect(conninfo, err);
    if (!c)
        return -1;
    int rc = ann_pg_schema_ensure(c, ns, err);
    PQfinish(c);
    if (rc != 0)
        return -1;
    ann_readmodel *rm = ann_xcalloc(1, sizeof *rm);
    if (ann_pg_pool_open(conninfo, pool_size ? pool_size : 4, &rm->pool, err) != 0) {
        free(rm);
        return -1;
    }
    snprintf(rm->ns, sizeof rm->ns, "%s", ns);
    rm->conninfo = strdup(conninfo);
    if (!rm->conninfo)
        abort();
#define ENTRY_COLS                                                                                 \
    "e.entry_id, e.ts, e.insert_ts, e.severity, e.flags, e.insert_id, e.body, r.actor, "           \
    "r.reason, r.time_ns"
#define REV_JOIN(ns)                                                                               \
    " LEFT JOIN \"" ns "\".revocations r ON r.tenant_id = e.tenant_id AND r.log_id = e.log_id"     \
    " AND r.entry_id = e.entry_id"
    snprintf(rm->sql_exists, sizeof rm->sql_exists,
             "SELECT 1 FROM \"%s\".logs WHERE tenant_id = $1 AND log_id = $2 AND NOT deleted", ns);
    snprintf(rm->sql_list, sizeof rm->sql_list,
             "SELECT " ENTRY_COLS " FROM \"%1$s\".entries e" REV_JOIN(
                 "%1$s") " WHERE e.tenant_id = $1 AND e.log_id = $2 AND e.ts >= $3 AND e.ts < $4"
                         " AND e.entry_id <= $5 AND (e.ts, e.entry_id) > ($6, $7)"
                         " ORDER BY e.ts, e.entry_id LIMIT $8",
             ns);
    snprintf(rm->sql_after, sizeof rm->sql_after,
             "SELECT " ENTRY_COLS " FROM \"%1$s\".entries e" REV_JOIN(
                 "%1$s") " WHERE e.tenant_id = $1 AND e.log_id = $2 AND e.entry_id > $3"
                         " ORDER BY e.entry_id LIMIT $4",
             ns);
    snprintf(rm->sql_logs, sizeof rm->sql_logs,
             "SELECT l.log_id, l.create_ts, l.labels, coalesce(s.visible_count, 0)"
             " FROM \"%1$s\".logs l LEFT JOIN \"%1$s\".log_state s"
             " ON s.tenant_id = l.tenant_id AND s.log_id = l.log_id"
             " WHERE l.tenant_id = $1 AND NOT l.deleted AND l.create_ts >= $2"
             " AND l.create_ts < $3 AND l.label_set @> $4::text[]"
             " AND (NOT $5 OR l.create_ts < $6 OR (l.create_ts = $6 AND l.log_id > $7))"
             " ORDER BY l.create_ts DESC, l.log_id LIMIT $8",
             ns);
    snprintf(rm->sql_search, sizeof rm->sql_search,
             "SELECT " ENTRY_COLS ", e.log_id FROM \"%1$s\".entries e"
             " JOIN \"%1$s\".logs l ON l.tenant_id = e.tenant_id AND l.log_id = e.log_id" REV_JOIN(
                 "%1$s") " WHERE e.tenant_id = $1 AND NOT l.deleted AND l.label_set @> $2::text[]"
                         " AND ($3::text[] = '{}' OR e.log_id = ANY($3::text[]))"
                         " AND e.ts >= $4 AND e.ts < $5 AND e.insert_ts <= $6"
                         " AND (e.ts, e.log_id, e.entry_id) > ($7, $8 COLLATE \"C\", $9)"
                         " ORDER BY e.ts, e.log_id, e.entry_id LIMIT $10",
             ns);
    /* Candidates: docs the pattern pre-filters among each log's indexed ids (at most $12,
     * counted), and the not-yet-indexed rest of each log straight from entries (only when
     * all logs' rests together are at most $13 entries); the first $10 in walk order,
     * joined to entries for the real rows. One row at least: the counts. */
    for (int k = 0; k < 2; k++)
        snprintf(
            rm->sql_isearch[k], sizeof rm->sql_isearch[k],
            "WITH lg AS MATERIALIZED (SELECT l.log_id, coalesce(ss.indexed, 0) AS ix,"
            " coalesce(st.visible_count, 0) AS vc FROM \"%1$s\".logs l"
            " LEFT JOIN \"%1$s\".search_state ss ON ss.tenant_id = l.tenant_id"
            " AND ss.log_id = l.log_id LEFT JOIN \"%1$s\".log_state st"
            " ON st.tenant_id = l.tenant_id AND st.log_id = l.log_id"
            " WHERE l.tenant_id = $1 AND NOT l.deleted AND l.label_set @> $2::text[]"
            " AND ($3::text[] = '{}' OR l.log_id = ANY($3::text[]))),"
            " m AS MATERIALIZED (SELECT coalesce(sum(vc - ix), 0)::bigint AS nr FROM lg WHERE vc > "
            "ix),"
            " d0 AS MATERIALIZED (SELECT d.ts, d.log_id, d.entry_id FROM \"%1$s\".search_docs d"
            " WHERE d.tenant_id = $1 AND d.doc %2$s $11 AND d.ts >= $4 AND d.ts < $5"
            " AND d.insert_ts <= $6 AND (d.ts, d.log_id, d.entry_id) > ($7, $8 COLLATE \"C\", $9)"
            " LIMIT $12),"
            " cand AS (SELECT d0.* FROM d0 JOIN lg ON lg.log_id = d0.log_id"
            " WHERE d0.entry_id <= lg.ix),"
            " rest AS (SELECT x.ts, x.log_id, x.entry_id FROM lg CROSS JOIN LATERAL"
            " (SELECT e.ts, e.log_id, e.entry_id FROM \"%1$s\".entries e WHERE e.tenant_id = $1"
            " AND e.log_id = lg.log_id AND e.entry_id BETWEEN lg.ix + 1 AND lg.vc"
            " AND e.ts >= $4 AND e.ts < $5"
            " AND e.insert_ts <= $6 AND (e.ts, e.log_id, e.entry_id) > ($7, $8 COLLATE \"C\", $9))"
            " x WHERE lg.vc > lg.ix AND (SELECT nr FROM m) <= $13),"
            " top AS (SELECT * FROM cand UNION ALL SELECT * FROM rest ORDER BY 1, 2, 3"
            " LIMIT $10)"
            " SELECT " ENTRY_COLS ", t.log_id, (SELECT count(*) FROM d0), (SELECT nr FROM m),"
            " t.ts, t.entry_id FROM (SELECT 1) one LEFT JOIN (top t LEFT JOIN \"%1$s\".entries e"
            " ON e.tenant_id = $1 AND e.log_id = t.log_id AND e.entry_id = t.entry_id"
            " AND e.ts = t.ts" REV_JOIN("%1$s") ") ON true ORDER BY t.ts, t.log_id, t.entry_id",
            ns, k ? "ILIKE" : "LIKE");
    snprintf(rm->sql_state, sizeof rm->sql_state,
             "SELECT l.create_ts, l.labels, s.visible_count, s.applied_op,"
             " coalesce(s.deleted, false) OR coalesce(l.deleted, false),"
             " coalesce(s.sealed, false)"
             " FROM (SELECT $1::text COLLATE \"C\" AS t, $2::text COLLATE \"C\" AS g) k"
             " LEFT JOIN \"%1$s\".logs l ON l.tenant_id = k.t AND l.log_id = k.g"
             " LEFT JOIN \"%1$s\".log_state s ON s.tenant_id = k.t AND s.log_id = k.g",
             ns);
    snprintf(rm->sql_ckpt, sizeof rm->sql_ckpt,
             "SELECT s.checkpoint, s.ckpt_size FROM \"%1$s\".logs l JOIN \"%1$s\".log_state s"
             " ON s.tenant_id = l.tenant_id AND s.log_id = l.log_id WHERE l.tenant_id = $1"
             " AND l.log_id = $2 AND NOT l.deleted AND NOT s.deleted",
             ns);
    snprintf(rm->sql_leaves, sizeof rm->sql_leaves,
             "SELECT entry_id, leaf FROM \"%s\".entries WHERE tenant_id = $1 AND log_id = $2"
             " AND entry_id >= $3 AND entry_id <= $4 ORDER BY entry_id",
             ns);
    *out = rm;
    return 0;
}

void ann_readmodel_close(ann_readmodel *rm)
{
    if (!rm)
        return;
    ann_readmodel_listen_stop(rm);
    ann_pg_pool_close(rm->pool);
    free(rm->conninfo);
    free(rm);
}

/* ANN_ENOTFOUND unless the log exists and is not deleted. */
static int log_visible(ann_readmodel *rm, PGconn *c, const char *tenant, const char *log,
                       ann_err *err)
{
    ann_pg_params p = {0};
    ann_pg_param_text(&p, tenant);
    ann_pg_param_text(&p, log);
    PGresult *r = ann_pg_exec(c, "log lookup", rm->sql_exists, &p, true, err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    if (n == 0)
        return ann_err_set(err, ANN_ENOTFOUND, "log %s not found", log);
    return 0;
}

/* Row `i` of an entry result (ENTRY_COLS) into e; rev holds the revocation record. */
static void row_entry(const PGresult *r, int i, ann_entry *e, ann_revocation *rev)
{
    memset(e, 0, sizeof *e);
    e->entry_id = (uint64_t)ann_pg_get_i64(r, i, 0);
    e->time_ns = ann_pg_get_i64(r, i, 1);
    e->insert_time_ns = ann_pg_get_i64(r, i, 2);
    e->severity = ann_pg_get_i32(r, i, 3);
    e->flags = (uint32_t)ann_pg_get_i32(r, i, 4);
    e->insert_id = PQgetvalue(r, i, 5);
    e->insert_id_len = (size_t)PQgetlength(r, i, 5);
    e->body = (const uint8_t *)PQgetvalue(r, i, 6);
    e->body_len = (size_t)PQgetlength(r, i, 6);
    if ((e->flags & ANN_ENTRY_REDACTED) && !PQgetisnull(r, i, 7)) {
        rev->actor = PQgetvalue(r, i, 7);
        rev->reason = PQgetvalue(r, i, 8);
        rev->time_ns = ann_pg_get_i64(r, i, 9);
        e->revocation = rev;
    }
}

int ann_readmodel_list(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                       const ann_list_query *q, ann_entry_visit_fn visit, void *ud,
                       ann_list_result *res, ann_err *err)
{
    ann_list_result ignored;
    if (!res)
        res = &ignored;
    PGconn *c = ann_pg_pool_get(rm->pool, err);
    if (!c)
        return -1;
    int rc = log_visible(rm, c, tenant_id, log_id, err);
    int64_t cur_t = q->has_cursor ? q->cursor_time_ns : INT64_MIN;
    int64_t cur_id = q->has_cursor ? clamp_u64(q->cursor_id) : 0;
    size_t listed = 0;
    uint64_t examined = 0;
    bool done = rc != 0 || q->limit == 0;
    int64_t grow = q->filter ? 64 : PAGE;
    while (!done) {
        /* Pages grow: a filter or a search may need few rows or many. */
        int64_t page = grow < PAGE ? grow : PAGE;
        if (grow < PAGE)
            grow *= 4;
        /* Without a filter every row counts: no more than the rest of the limit. With one,
         * rows may be refused, so the page keeps its size. */
        if (!q->filter && q->limit - listed < (size_t)page)
            page = (int64_t)(q->limit - listed) + 1;
        if (q->budget && q->budget - examined < (uint64_t)page)
            page = (int64_t)(q->budget - examined) + 1;
        ann_pg_params p = {0};
        ann_pg_param_text(&p, tenant_id);
        ann_pg_param_text(&p, log_id);
        ann_pg_param_i64(&p, q->start_ns);
        ann_pg_param_i64(&p, q->end_ns);
        ann_pg_param_i64(&p, q->max_id ? clamp_u64(q->max_id) : INT64_MAX);
        ann_pg_param_i64(&p, cur_t);
        ann_pg_param_i64(&p, cur_id);
        ann_pg_param_i64(&p, page);
        PGresult *r = ann_pg_exec(c, "list", rm->sql_list, &p, true, err);
        if (!r) {
            rc = -1;
            break;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n && !done; i++) {
            ann_entry e;
            ann_revocation rev;
            row_entry(r, i, &e, &rev);
            cur_t = e.time_ns;
            cur_id = (int64_t)e.entry_id;
            if (listed >= q->limit) {
                done = true;
                break;
            }
            if (q->budget && examined == q->budget) {
                res->budget_hit = true;
                done = true;
                break;
            }
            examined++;
            res->last_time_ns = e.time_ns;
            res->last_id = e.entry_id;
            if (q->filter && !q->filter(&e, q->filter_ud))
                continue;
            listed++;
            if (visit(&e, ud))
                done = true;
        }
        PQclear(r);
        if (n < page || listed >= q->limit)
            done = true;
    }
    ann_pg_pool_put(rm->pool, c);
    return rc;
}

int ann_readmodel_read_after(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                             uint64_t after_id, size_t limit, ann_entry_visit_fn visit, void *ud,
                             ann_err *err)
{
    PGconn *c = ann_pg_pool_get(rm->pool, err);
    if (!c)
        return -1;
    int rc = log_visible(rm, c, tenant_id, log_id, err);
    int64_t cur = clamp_u64(after_id);
    size_t seen = 0;
    bool done = rc != 0;
    while (!done) {
        int64_t page = PAGE;
        if (limit && (uint64_t)page > (uint64_t)(limit - seen))
            page = (int64_t)(limit - seen);
        ann_pg_params p = {0};
        ann_pg_param_text(&p, tenant_id);
        ann_pg_param_text(&p, log_id);
        ann_pg_param_i64(&p, cur);
        ann_pg_param_i64(&p, page);
        PGresult *r = ann_pg_exec(c, "read_after", rm->sql_after, &p, true, err);
        if (!r) {
            rc = -1;
            break;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n && !done; i++) {
            ann_entry e;
            ann_revocation rev;
            row_entry(r, i, &e, &rev);
            cur = (int64_t)e.entry_id;
            seen++;
            if (visit(&e, ud))
                done = true;
        }
        PQclear(r);
        if (n < page || (limit && seen >= limit))
            done = true;
    }
    ann_pg_pool_put(rm->pool, c);
    return rc;
}

int ann_readmodel_logs_list(ann_readmodel *rm, const char *tenant_id, const ann_logs_query *q,
                            ann_log_visit_fn visit, void *ud, ann_err *err)
{
    if (q->limit == 0)
        return 0;
    PGconn *c = ann_pg_pool_get(rm->pool, err);
    if (!c)
        return -1;
    ann_buf set = ANN_BUF_INIT;
    ann_pg_label_set_of_pairs(&set, q->labels, q->n_labels);
    ann_pg_params p = {0};
    ann_pg_param_text(&p, tenant_id);
    ann_pg_param_i64(&p, q->start_ns);
    ann_pg_param_i64(&p, q->end_ns);
    ann_pg_param_raw(&p, (const char *)set.data);
    ann_pg_param_bool(&p, q->has_cursor);
    ann_pg_param_i64(&p, q->has_cursor ? q->cursor_create_ns : 0);
    ann_pg_param_text(&p, q->has_cursor ? q->cursor_id : "");
    ann_pg_param_i64(&p, q->limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)q->limit);
    int rc = 0;
    PGresult *r = ann_pg_exec(c, "logs_list", rm->sql_logs, &p, true, err);
    if (!r) {
        rc = -1;
    } else {
        for (int i = 0; i < PQntuples(r); i++) {
            ann_log_meta m = {0};
            snprintf(m.id, sizeof m.id, "%s", PQgetvalue(r, i, 0));
            m.create_time_ns = ann_pg_get_i64(r, i, 1);
            m.labels = (uint8_t *)PQgetvalue(r, i, 2);
            m.labels_len = (size_t)PQgetlength(r, i, 2);
            m.entry_count = (uint64_t)ann_pg_get_i64(r, i, 3);
            if (visit(&m, ud))
                break;
        }
        PQclear(r);
    }
    ann_buf_release(&set);
    ann_pg_pool_put(rm->pool, c);
    return rc;
}

void ann_readmodel_search_walk_only(ann_readmodel *rm, bool on)
{
    rm->walk_only = on;
}

/* The search projection pays off when the pattern holds a trigram: three ASCII letters or
 * digits in a row (pg_trgm extracts none from shorter words or punctuation alone, and
 * would then scan every doc). */
static bool has_trigram(const ann_matcher *m)
{
    size_t run = 0;
    for (size_t i = 0; i < m->n; i++) {
        uint8_t c = m->q[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        run = alnum ? run + 1 : 0;
        if (run >= 3)
            return true;
    }
    return false;
}

/* The index path's limits: more pre-filtered docs after the cursor than cand_max (ten
 * pages of hits, 1,000 to 10,000), or more not-yet-indexed entries than REST_MAX, and the
 * call walks entries instead (bounded by the budget): a common token costs a page of the
 * walk, which finds its hits quickly, not a sort of all its hits on every page. */
#define CAND_MIN 1000
#define CAND_MAX 10000
#define REST_MAX (ANN_WORK_BUDGET / 2)

int ann_readmodel_search(ann_readmodel *rm, const char *tenant_id, const ann_search_query *q,
                         ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err)
{
    memset(res, 0, sizeof *res);
    if (q->has_cursor)
        res->resume = q->cursor;
    else
        res->resume = (ann_search_pos){.time_ns = INT64_MIN};
    PGconn *c = ann_pg_pool_get(rm->pool, err);
    if (!c)
        return -1;
    ann_buf set = ANN_BUF_INIT, ids = ANN_BUF_INIT, pat = ANN_BUF_INIT;
    ann_pg_label_set_of_pairs(&set, q->labels, q->n_labels);
    const char **idv = ann_xcalloc(q->n_log_ids + 1, sizeof *idv);
    for (size_t i = 0; i < q->n_log_ids; i++)
        idv[i] = q->log_ids[i];
    ann_pg_text_array(&ids, idv, q->n_log_ids);
    free(idv);
    /* Under 3 bytes (or no trigram): the plain walk. Else the first page of the walk (a
     * common token fills the call there, cheaply), then the search projection, and the
     * walk again if that finds too many candidates. */
    bool can_index = q->match->n >= 3 && has_trigram(q->match) && !rm->walk_only;
    bool indexed = false;
    if (can_index)
        ann_search_like_pattern(q->match->q, q->match->n, &pat);
    /* The walk position: (time, log id, entry id) of the last row read. */
    int64_t cur_t = res->resume.time_ns;
    char cur_log[ANN_UUID_LEN + 1];
    memcpy(cur_log, res->resume.log_id, sizeof cur_log);
    cur_log[ANN_UUID_LEN] = '\0';
    int64_t cur_id = clamp_u64(res->resume.entry_id);
    size_t found = 0;
    int rc = 0;
    bool done = false;
    int64_t grow = q->limit < PAGE / 8 ? 8 * (int64_t)q->limit + 8 : PAGE;
    int64_t cand_max = q->limit < CAND_MAX / 10 ? 10 * (int64_t)q->limit : CAND_MAX;
    if (cand_max < CAND_MIN)
        cand_max = CAND_MIN;
    while (!done) {
        int64_t page = grow < PAGE ? grow : PAGE;
        if (grow < PAGE)
            grow *= 4;
        if (q->budget - res->examined < (uint64_t)page)
            page = (int64_t)(q->budget - res->examined) + 1;
        ann_pg_params p = {0};
        ann_pg_param_text(&p, tenant_id);
        ann_pg_param_raw(&p, (const char *)set.data);
        ann_pg_param_raw(&p, (const char *)ids.data);
        ann_pg_param_i64(&p, q->start_ns);
        ann_pg_param_i64(&p, q->end_ns);
        ann_pg_param_i64(&p, q->snapshot_ns);
        ann_pg_param_i64(&p, cur_t);
        ann_pg_param_text(&p, cur_log);
        ann_pg_param_i64(&p, cur_id);
        ann_pg_param_i64(&p, page);
        if (indexed) {
            ann_pg_param_text(&p, (const char *)pat.data);
            ann_pg_param_i64(&p, cand_max + 1);
            ann_pg_param_i64(&p, REST_MAX);
        }
        const char *sql = indexed ? rm->sql_isearch[q->match->icase] : rm->sql_search;
        PGresult *r = ann_pg_exec(c, "search", sql, &p, true, err);
        if (!r) {
            rc = -1;
            break;
        }
        int n = PQntuples(r);
        if (indexed && n > 0 &&
            (ann_pg_get_i64(r, 0, 11) > cand_max || ann_pg_get_i64(r, 0, 12) > REST_MAX)) {
            /* Too many candidates, or too much not indexed yet: walk from here. */
            PQclear(r);
            indexed = can_index = false;
            continue;
        }
        int rows = 0; /* walk rows (the index path's count row is not one) */
        for (int i = 0; i < n && !done; i++) {
            if (indexed && PQgetisnull(r, i, 13))
                continue; /* no candidate at all: only the counts */
            rows++;
            if (indexed && PQgetisnull(r, i, 0)) {
                /* A doc whose entry the browse projection has not shown yet: not part of
                 * the walk, as in entries; step over it. */
                if (res->examined == q->budget || found == q->limit) {
                    res->more = true;
                    done = true;
                    break;
                }
                cur_t = ann_pg_get_i64(r, i, 13);
                snprintf(cur_log, sizeof cur_log, "%s", PQgetvalue(r, i, 10));
                cur_id = ann_pg_get_i64(r, i, 14);
                res->resume.time_ns = cur_t;
                snprintf(res->resume.log_id, sizeof res->resume.log_id, "%s", cur_log);
                res->resume.entry_id = (uint64_t)cur_id;
                continue;
            }
            ann_entry e;
            ann_revocation rev;
            row_entry(r, i, &e, &rev);
            const char *lid = PQgetvalue(r, i, 10);
            cur_t = e.time_ns;
            snprintf(cur_log, sizeof cur_log, "%s", lid);
            cur_id = (int64_t)e.entry_id;
            if (res->examined == q->budget || found == q->limit) {
                res->more = true;
                done = true;
                break;
            }
            res->examined++;
            if (!(e.flags & ANN_ENTRY_REDACTED) && ann_body_matches(q->match, e.body, e.body_len)) {
                if (visit(lid, &e, ud)) {
                    res->more = true;
                    done = true;
                    break;
                }
                found++;
            }
            res->resume.time_ns = e.time_ns;
            snprintf(res->resume.log_id, sizeof res->resume.log_id, "%s", lid);
            res->resume.entry_id = e.entry_id;
        }
        PQclear(r);
        if (rows < page)
            done = true;
        if (can_index && !indexed && !done) {
            indexed = true;
            grow = PAGE / 8 > 8 * (int64_t)q->limit + 8 ? PAGE / 8 : 8 * (int64_t)q->limit + 8;
        }
    }
    ann_buf_release(&set);
    ann_buf_release(&ids);
    ann_buf_release(&pat);
    ann_pg_pool_put(rm->pool, c);
    return rc;
}

/* One statement about one log ($1 tenant, $2 log, then `more`, if any) on a pooled
 * connection: its result, or NULL with err. */
static PGresult *log_query(ann_readmodel *rm, const char *what, const char *sql,
                           const char *tenant_id, const char *log_id, const int64_t *more,
                           int nmore, ann_err *err)
{
    PGconn *c = ann_pg_pool_get(rm->pool, err);
    if (!c)
        return NULL;
    ann_pg_params p = {0};
    ann_pg_param_text(&p, tenant_id);
    ann_pg_param_text(&p, log_id);
    for (int i = 0; i < nmore; i++)
        ann_pg_param_i64(&p, more[i]);
    PGresult *r = ann_pg_exec(c, what, sql, &p, true, err);
    ann_pg_pool_put(rm->pool, c);
    return r;
}

int ann_readmodel_log_state(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                            ann_rm_log_state *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    PGresult *r = log_query(rm, "log state", rm->sql_state, tenant_id, log_id, NULL, 0, err);
    if (!r)
        return -1;
    if (PQntuples(r) == 1) {
        out->exists = !PQgetisnull(r, 0, 0) || !PQgetisnull(r, 0, 2);
        out->create_time_ns = ann_pg_get_i64(r, 0, 0);
        if (!PQgetisnull(r, 0, 1)) {
            out->labels_len = (size_t)PQgetlength(r, 0, 1);
            out->labels = ann_xmalloc(out->labels_len + 1);
            memcpy(out->labels, PQgetvalue(r, 0, 1), out->labels_len);
        }
        out->visible_count = (uint64_t)ann_pg_get_i64(r, 0, 2);
        out->applied_op = (uint64_t)ann_pg_get_i64(r, 0, 3);
        out->deleted = ann_pg_get_bool(r, 0, 4);
        out->sealed = ann_pg_get_bool(r, 0, 5);
    }
    PQclear(r);
    return 0;
}

int ann_readmodel_checkpoint(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                             ann_buf *note, uint64_t *size, ann_err *err)
{
    PGresult *r = log_query(rm, "checkpoint", rm->sql_ckpt, tenant_id, log_id, NULL, 0, err);
    if (!r)
        return -1;
    int rc = 0;
    if (PQntuples(r) != 1)
        rc = ann_err_set(err, ANN_ENOTFOUND, "log %s not found", log_id);
    else if (PQgetisnull(r, 0, 0) || ann_pg_get_i64(r, 0, 1) < 0)
        rc = ann_err_set(err, ANN_EPRECOND,
                         "log %s has no tree: its entries were written before checkpoints", log_id);
    else {
        ann_buf_add(note, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
        *size = (uint64_t)ann_pg_get_i64(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

int ann_readmodel_leaves(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                         uint64_t first, size_t n, uint8_t (*out)[32], ann_err *err)
{
    if (n == 0)
        return 0;
    int64_t range[2] = {clamp_u64(first), clamp_u64(first + n - 1)};
    PGresult *r = log_query(rm, "leaves", rm->sql_leaves, tenant_id, log_id, range, 2, err);
    if (!r)
        return -1;
    int rc = 0;
    if ((size_t)PQntuples(r) != n)
        rc = ann_err_set(err, ANN_EUNAVAIL, "log %s: entries %llu to %llu are not all projected",
                         log_id, (unsigned long long)first, (unsigned long long)(first + n - 1));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((uint64_t)ann_pg_get_i64(r, (int)i, 0) != first + i || PQgetisnull(r, (int)i, 1) ||
            PQgetlength(r, (int)i, 1) != 32)
            rc = ann_err_set(err, ANN_ECORRUPT, "log %s: entry %llu has no leaf hash", log_id,
                             (unsigned long long)(first + i));
        else
            memcpy(out[i], PQgetvalue(r, (int)i, 1), 32);
    }
    PQclear(r);
    return rc;
}

void ann_readmodel_log_state_release(ann_rm_log_state *s)
{
    free(s->labels);
    s->labels = NULL;
    s->labels_len = 0;
}

/* ---- the listener ---- */

static void nap_ms(ann_readmodel *rm, int ms)
{
    for (int i = 0; i < ms / 50 && !atomic_load(&rm->stop); i++)
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
}

static void deliver(ann_readmodel *rm, const char *payload)
{
    char key[256];
    unsigned long long vis = 0, op = 0;
    int del = 0;
    if (sscanf(payload, "%255s %llu %llu %d", key, &vis, &op, &del) != 4)
        return; /* not ours */
    char *slash = strchr(key, '/');
    if (!slash)
        return;
    *slash = '\0';
    rm->cb(rm->cb_ud, key, slash + 1, vis, op, del != 0);
}

static void *listen_main(void *arg)
{
    ann_readmodel *rm = arg;
    char sql[128];
    snprintf(sql, sizeof sql, "LISTEN \"%s_visible\"", rm->ns);
    while (!atomic_load(&rm->stop)) {
        ann_err err;
        PGconn *c = ann_pg_connect(rm->conninfo, &err);
        if (!c || ann_pg_run(c, "listen", sql, NULL, &err) != 0) {
            fprintf(stderr, "annals readmodel listener: %s\n", err.msg);
            PQfinish(c);
            nap_ms(rm, 500);
            continue;
        }
        rm->cb(rm->cb_ud, NULL, NULL, 0, 0, false); /* whatever was missed: re-check */
        while (!atomic_load(&rm->stop)) {
            struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
            if (pfd.fd < 0)
                break;
            int pr = poll(&pfd, 1, 100);
            if (pr < 0)
                continue;
            if (pr > 0 && !PQconsumeInput(c))
                break; /* connection lost: reconnect */
            PGnotify *n;
            while ((n = PQnotifies(c)) != NULL) {
                deliver(rm, n->extra);
                PQfreemem(n);
            }
            if (PQstatus(c) != CONNECTION_OK)
                break;
        }
        if (!atomic_load(&rm->stop))
            fprintf(stderr, "annals readmodel listener: connection lost, reconnecting\n");
        PQfinish(c);
        if (!atomic_load(&rm->stop))
            nap_ms(rm, 200);
    }
    return NULL;
}

int ann_readmodel_listen_start(ann_readmodel *rm, ann_rm_visible_fn cb, void *ud, ann_err *err)
{
    if (rm->listening)
        return ann_err_set(err, ANN_EEXISTS, "readmodel: listener already running");
    rm->cb = cb;
    rm->cb_ud = ud;
    atomic_store(&rm->stop, 0);
    if (pthread_create(&rm->th, NULL, listen_main, rm) != 0)
        return ann_err_set(err, ANN_EINTERNAL, "readmodel: cannot start the listener thread");
    rm->listening = true;
    return 0;
}

void ann_readmodel_listen_stop(ann_readmodel *rm)
{
    if (!rm->listening)
        return;
    atomic_store(&rm->stop, 1);
    pthread_join(rm->th, NULL);
    rm->listening = false;
}
