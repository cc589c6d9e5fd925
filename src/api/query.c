/* The read RPCs: ListLogEntries, ReadLogEntries, ListLogs, SearchLogEntries, and tails. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/service.h"
#include "api/service_internal.h"
#include "api/wire.h"
#include "domain/limits.h"
#include "domain/rules.h"
#include "domain/text.h"
#include "domain/token.h"

typedef struct list_ctx {
    const char *log_id;
    ann_buf *resp;
    ann_buf tmp;
    size_t limit, count;
    bool more; /* an entry past the page exists */
    ann_page_cursor last;
} list_ctx;

static int list_visit(const ann_entry *e, void *ud)
{
    list_ctx *c = ud;
    size_t before = c->resp->len;
    if (c->count == c->limit) {
        c->more = true;
        return 1;
    }
    svc_encode_entry(c->resp, c->log_id, e, &c->tmp);
    if (c->count > 0 && c->resp->len > ANN_MAX_RESPONSE_BYTES) {
        c->resp->len = before; /* keep the message under clients' receive limit */
        c->more = true;
        return 1;
    }
    c->count++;
    c->last.time_ns = e->time_ns;
    c->last.entry_id = e->entry_id;
    return 0;
}

typedef struct list_filter {
    const uint8_t *text;
    size_t text_len;
    int32_t min_severity;
    const ann_tenant *t; /* a share link's range */
} list_filter;

static bool list_match(const ann_entry *e, void *ud)
{
    const list_filter *f = ud;
    if (!svc_share_covers(f->t, e->entry_id))
        return false;
    if (f->min_severity && e->severity < f->min_severity)
        return false;
    if (f->text_len) {
        const uint8_t *p;
        size_t n;
        if ((e->flags & ANN_ENTRY_REDACTED) ||
            !ann_wire_find_bytes(e->body, e->body_len, 30, &p, &n))
            return false;
        return memmem(p, n, f->text, f->text_len) != NULL;
    }
    return true;
}

int svc_do_list(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1];
    ann_log_meta m = {0};
    list_ctx c = {.log_id = log_id, .resp = resp, .tmp = ANN_BUF_INIT};
    Annals__Wire__V1__ListLogEntriesRequest *r =
        (Annals__Wire__V1__ListLogEntriesRequest *)svc_decode(
            &annals__wire__v1__list_log_entries_request__descriptor, req, len, err);
    if (!r)
        return -1;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0)
        goto done;
    if (r->page_size < 0 || r->page_size > ANN_MAX_PAGE_SIZE) {
        ann_err_set(err, ANN_EINVAL, "page_size: %d, must be between 0 and %d", (int)r->page_size,
                    ANN_MAX_PAGE_SIZE);
        goto done;
    }
    ann_list_query q = {.start_ns = INT64_MIN, .end_ns = INT64_MAX, .filter = list_match};
    if (r->start_time && ann_wire_ts_to_ns(r->start_time, &q.start_ns) != 0) {
        ann_err_set(err, ANN_EINVAL, "start_time: out of range");
        goto done;
    }
    if (r->end_time && ann_wire_ts_to_ns(r->end_time, &q.end_ns) != 0) {
        ann_err_set(err, ANN_EINVAL, "end_time: out of range");
        goto done;
    }
    if (r->text_contains.len > ANN_MAX_TEXT_FILTER_BYTES) {
        ann_err_set(err, ANN_EINVAL, "text_contains: %zu bytes, at most %d allowed",
                    r->text_contains.len, ANN_MAX_TEXT_FILTER_BYTES);
        goto done;
    }
    if (svc_check_text(&r->text_contains, "text_contains", err) != 0)
        goto done;
    if (!ann_severity_valid(r->min_severity)) {
        ann_err_set(err, ANN_EINVAL, "min_severity: %d is not a Severity", (int)r->min_severity);
        goto done;
    }
    if (r->page_token.len && !ann_utf8_valid((const char *)r->page_token.data, r->page_token.len)) {
        ann_err_set(err, ANN_EINVAL, "page_token: not a valid page token");
        goto done;
    }
    list_filter f = {r->text_contains.data, r->text_contains.len, r->min_severity, t};
    q.filter_ud = &f;
    /* The same filter as data, for a backend that pushes it down (the callback rules). */
    q.min_severity = r->min_severity;
    q.text_contains = r->text_contains.data;
    q.text_contains_len = r->text_contains.len;
    ann_page_scope scope = {.tenant_id = t->id,
                            .log_id = log_id,
                            .start_ns = q.start_ns,
                            .end_ns = q.end_ns,
                            .text = (const char *)r->text_contains.data,
                            .text_len = r->text_contains.len,
                            .min_severity = r->min_severity};
    ann_page_cursor cur = {0};
    if (r->page_token.len) {
        if (ann_page_token_decode(svc->secret, &scope, (const char *)r->page_token.data,
                                  r->page_token.len, &cur, err) != 0)
            goto done;
        q.has_cursor = true;
        q.cursor_time_ns = cur.time_ns;
        q.cursor_id = cur.entry_id;
        q.max_id = cur.max_id;
    }
    /* Existence (and tenancy) first, so a foreign log is NOT_FOUND like a missing one. */
    if (svc_share_log_check(t, log_id, err) != 0 ||
        ann_store_log_get(svc->store, t->id, log_id, &m, err) != 0)
        goto done;
    if (!r->page_token.len)
        q.max_id = m.visible_count; /* the walk's snapshot: what reads show now */
    c.limit = r->page_size ? (size_t)r->page_size : ANN_DEFAULT_PAGE_SIZE;
    c.last.max_id = q.max_id;
    if (q.max_id == 0) { /* empty log: nothing can match */
        rc = 0;
        goto done;
    }
    q.limit = c.limit + 1;
    q.budget = ANN_WORK_BUDGET;
    ann_list_result res = {0};
    if (ann_store_list(svc->store, t->id, log_id, &q, list_visit, &c, &res, err) != 0)
        goto done;
    if (!c.more && res.budget_hit) {
        /* The budget ran out first: continue after the last entry examined, matching
         * or not (c.last keeps the walk's snapshot). */
        c.last.time_ns = res.last_time_ns;
        c.last.entry_id = res.last_id;
        c.more = true;
    }
    if (c.more && (c.count || res.budget_hit)) {
        char tok[ANN_PAGE_TOKEN_MAX];
        ann_page_token_encode(svc->secret, &scope, &c.last, tok);
        ann_buf_add_len_field(resp, 2, tok, strlen(tok));
    }
    rc = 0;
done:
    ann_buf_release(&c.tmp);
    ann_log_meta_release(&m);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

/* ---------- tail ---------- */

int ann_tail_open(ann_service *svc, const ann_tenant *tenant, const uint8_t *req, size_t len,
                  ann_tail *out, ann_err *err)
{
    int rc = -1;
    ann_log_meta m = {0};
    memset(out, 0, sizeof *out);
    out->svc = svc;
    out->tenant = *tenant;
    if (ann_service_authorize(tenant, ANN_RPC_TAIL, err) != 0)
        return -1;
    Annals__Wire__V1__TailLogEntriesRequest *r =
        (Annals__Wire__V1__TailLogEntriesRequest *)svc_decode(
            &annals__wire__v1__tail_log_entries_request__descriptor, req, len, err);
    if (!r)
        return -1;
    if (svc_parse_log_id(&r->log_id, "log_id", out->log_id, err) != 0)
        goto done;
    if (r->after_entry_id.len &&
        ann_entry_id_parse((const char *)r->after_entry_id.data, r->after_entry_id.len, true,
                           &out->last_id) != 0) {
        ann_err_set(err, ANN_EINVAL, "after_entry_id: not an entry id (empty, 0, 1, 2, ...)");
        goto done;
    }
    if (svc_share_log_check(tenant, out->log_id, err) != 0 ||
        ann_store_log_get(svc->store, tenant->id, out->log_id, &m, err) != 0)
        goto done;
    if (!r->after_entry_id.len)
        out->last_id = m.visible_count; /* from the current (visible) end */
    if (tenant->share_log[0] && out->last_id < tenant->share_first - 1)
        out->last_id = tenant->share_first - 1; /* a share link starts at its first id */
    rc = 0;
done:
    ann_log_meta_release(&m);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

typedef struct tail_ctx {
    ann_tail *t;
    ann_buf *resp;
    size_t start;
    ann_buf tmp;
    size_t n;
} tail_ctx;

static int tail_visit(const ann_entry *e, void *ud)
{
    tail_ctx *c = ud;
    size_t before = c->resp->len;
    if (e->entry_id != c->t->last_id + 1)
        return 1; /* never skip an id: stop and let the next read continue densely */
    if (!svc_share_covers(&c->t->tenant, e->entry_id))
        return 1; /* past a share link's last id: nothing more, ever */
    svc_encode_entry(c->resp, c->t->log_id, e, &c->tmp);
    if (c->n > 0 && c->resp->len - c->start > ANN_MAX_RESPONSE_BYTES) {
        c->resp->len = before;
        return 1;
    }
    c->n++;
    c->t->last_id = e->entry_id;
    return 0;
}

int ann_tail_next(ann_tail *t, ann_buf *resp, size_t *n, ann_err *err)
{
    ann_tenant now;
    *n = 0;
    if (t->tenant.share_log[0] ? ann_share_recheck(&t->tenant, err) != 0
                               : ann_service_recheck(t->svc, t->tenant.key_hash, &now, err) != 0)
        return -1; /* revoked or expired since the tail opened */
    tail_ctx c = {.t = t, .resp = resp, .start = resp->len, .tmp = ANN_BUF_INIT};
    int rc = ann_store_read_after(t->svc->store, t->tenant.id, t->log_id, t->last_id,
                                  ANN_MAX_PAGE_SIZE, tail_visit, &c, err);
    ann_buf_release(&c.tmp);
    *n = rc == 0 ? c.n : 0;
    if (rc != 0)
        resp->len = c.start;
    return rc;
}

/* ---------- shared by the new reads ---------- */

static int check_page_size(int32_t v, const char *field, size_t *out, ann_err *err)
{
    if (v < 0 || v > ANN_MAX_PAGE_SIZE)
        return ann_err_set(err, ANN_EINVAL, "%s: %d, must be between 0 and %d", field, (int)v,
                           ANN_MAX_PAGE_SIZE);
    *out = v ? (size_t)v : ANN_DEFAULT_PAGE_SIZE;
    return 0;
}

static int check_window(const Annals__Wire__V1__Timestamp *start,
                        const Annals__Wire__V1__Timestamp *end, int64_t *s, int64_t *e,
                        ann_err *err)
{
    *s = INT64_MIN;
    *e = INT64_MAX;
    if (start && ann_wire_ts_to_ns(start, s) != 0)
        return ann_err_set(err, ANN_EINVAL, "start_time: out of range (" ANN_TIME_RANGE_TEXT ")");
    if (end && ann_wire_ts_to_ns(end, e) != 0)
        return ann_err_set(err, ANN_EINVAL, "end_time: out of range (" ANN_TIME_RANGE_TEXT ")");
    return 0;
}

static int pair_cmp(const void *a, const void *b)
{
    const ann_label_pair *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* A label filter (a map on the wire): validated, one value per key (the last, as a map
 * decodes), sorted by key. *out is malloc'd. */
static int label_filter(Annals__Wire__V1__Label **labels, size_t n, ann_label_pair **out,
                        size_t *nout, ann_err *err)
{
    *out = NULL;
    *nout = 0;
    if (svc_check_labels(labels, n, "label_filter", err) != 0)
        return -1;
    ann_label_pair *v = ann_xcalloc(n ? n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        ann_label_pair p = {labels[i]->key.data, labels[i]->key.len, labels[i]->value.data,
                            labels[i]->value.len};
        size_t j = 0;
        while (j < k && pair_cmp(&v[j], &p) != 0)
            j++;
        v[j] = p; /* a repeated key keeps its last value */
        if (j == k)
            k++;
    }
    qsort(v, k, sizeof *v, pair_cmp);
    *out = v;
    *nout = k;
    return 0;
}

static void scope_add_labels(ann_scope_digest *d, const ann_label_pair *v, size_t n)
{
    ann_scope_add_i64(d, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        ann_scope_add(d, v[i].key, v[i].key_len);
        ann_scope_add(d, v[i].value, v[i].value_len);
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_uuid(uint8_t *p, const char *id)
{
    if (ann_uuid_parse(id, strlen(id), p) != 0)
        memset(p, 0, 16);
}

/* ---------- ReadLogEntries ---------- */

typedef struct read_ctx {
    const char *log_id;
    ann_buf *resp;
    ann_buf tmp;
    uint64_t expect; /* the next id: reads are dense */
    uint64_t max_id; /* the log's visible_count when the read began */
    size_t count, limit;
    bool cut; /* stopped by the response size */
} read_ctx;

static int read_visit(const ann_entry *e, void *ud)
{
    read_ctx *c = ud;
    if (e->entry_id != c->expect || c->count == c->limit || e->entry_id > c->max_id)
        return 1;
    size_t before = c->resp->len;
    svc_encode_entry(c->resp, c->log_id, e, &c->tmp);
    if (c->count > 0 && c->resp->len > ANN_MAX_RESPONSE_BYTES) {
        c->resp->len = before;
        c->cut = true;
        return 1;
    }
    c->count++;
    c->expect++;
    return 0;
}

int svc_do_read(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1];
    ann_log_meta m = {0};
    read_ctx c = {.log_id = log_id, .resp = resp, .tmp = ANN_BUF_INIT};
    Annals__Wire__V1__ReadLogEntriesRequest *r =
        (Annals__Wire__V1__ReadLogEntriesRequest *)svc_decode(
            &annals__wire__v1__read_log_entries_request__descriptor, req, len, err);
    if (!r)
        return -1;
    uint64_t first = 1;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0)
        goto done;
    if (r->first_entry_id.len && ann_entry_id_parse((const char *)r->first_entry_id.data,
                                                    r->first_entry_id.len, false, &first) != 0) {
        ann_err_set(err, ANN_EINVAL, "first_entry_id: not an entry id (a decimal 1, 2, ...)");
        goto done;
    }
    if (check_page_size(r->page_size, "page_size", &c.limit, err) != 0)
        goto done;
    if (svc_share_log_check(t, log_id, err) != 0 ||
        ann_store_log_get(svc->store, t->id, log_id, &m, err) != 0)
        goto done;
    rc = 0;
    uint64_t end = m.visible_count;
    if (t->share_log[0]) { /* a share link's range, as if the log were only that */
        if (first < t->share_first)
            first = t->share_first;
        if (end > t->share_last)
            end = t->share_last;
    }
    if (first > end)
        goto done; /* past the (visible) end: nothing, and no next id */
    c.max_id = end;
    c.expect = first;
    if (ann_store_read_after(svc->store, t->id, log_id, first - 1, c.limit, read_visit, &c, err) !=
        0) {
        rc = -1;
        goto done;
    }
    uint64_t last = c.expect - 1; /* the last id returned (first - 1 if none) */
    if (c.count > 0 && (c.cut || (c.count == c.limit && last < end)))
        svc_add_entry_id(resp, 2, last + 1);
done:
    ann_buf_release(&c.tmp);
    ann_log_meta_release(&m);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

/* ---------- ListLogs ---------- */

#define LOGS_TOKEN_LEN 24 /* create time 8, log id 16 */

typedef struct logs_ctx {
    ann_buf *resp;
    size_t count, limit;
    bool more;
    int64_t last_create_ns;
    char last_id[ANN_UUID_LEN + 1];
} logs_ctx;

static int logs_visit(const ann_log_meta *m, void *ud)
{
    logs_ctx *c = ud;
    if (c->count == c->limit) {
        c->more = true;
        return 1;
    }
    svc_encode_log(c->resp, 1, m);
    c->count++;
    c->last_create_ns = m->create_time_ns;
    memcpy(c->last_id, m->id, sizeof c->last_id);
    return 0;
}

int svc_do_list_logs(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                     ann_buf *resp, ann_err *err)
{
    int rc = -1;
    ann_label_pair *labels = NULL;
    logs_ctx c = {.resp = resp};
    Annals__Wire__V1__ListLogsRequest *r = (Annals__Wire__V1__ListLogsRequest *)svc_decode(
        &annals__wire__v1__list_logs_request__descriptor, req, len, err);
    if (!r)
        return -1;
    ann_logs_query q = {0};
    if (label_filter(r->label_filter, r->n_label_filter, &labels, &q.n_labels, err) != 0 ||
        check_window(r->start_time, r->end_time, &q.start_ns, &q.end_ns, err) != 0 ||
        check_page_size(r->page_size, "page_size", &c.limit, err) != 0)
        goto done;
    q.labels = labels;
    ann_scope_digest d;
    uint8_t scope[32];
    ann_scope_begin(&d, ANN_TOKEN_LIST_LOGS);
    ann_scope_add(&d, t->id, strlen(t->id));
    scope_add_labels(&d, labels, q.n_labels);
    ann_scope_add_i64(&d, q.start_ns);
    ann_scope_add_i64(&d, q.end_ns);
    ann_scope_end(&d, scope);
    if (r->page_token.len) {
        uint8_t p[LOGS_TOKEN_LEN];
        if (ann_token_open(svc->secret, ANN_TOKEN_LIST_LOGS, scope,
                           (const char *)r->page_token.data, r->page_token.len, p, sizeof p,
                           err) != 0)
            goto done;
        q.has_cursor = true;
        q.cursor_create_ns = (int64_t)get_u64(p);
        ann_uuid_format(p + 8, q.cursor_id);
    }
    q.limit = c.limit + 1;
    if (ann_store_logs_list(svc->store, t->id, &q, logs_visit, &c, err) != 0)
        goto done;
    if (c.more) {
        uint8_t p[LOGS_TOKEN_LEN];
        char tok[ANN_SEALED_TOKEN_MAX];
        put_u64(p, (uint64_t)c.last_create_ns);
        put_uuid(p + 8, c.last_id);
        ann_token_seal(svc->secret, ANN_TOKEN_LIST_LOGS, scope, p, sizeof p, tok);
        ann_buf_add_len_field(resp, 2, tok, strlen(tok));
    }
    rc = 0;
done:
    free(labels);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

/* ---------- SearchLogEntries ---------- */

#define SEARCH_TOKEN_LEN 40 /* snapshot 8, time 8, log id 16, entry id 8 */

typedef struct search_ctx {
    ann_buf *resp;
    ann_buf tmp;
    size_t count;
    const ann_tenant *t; /* a share link's range */
} search_ctx;

static int search_visit(const char *log_id, const ann_entry *e, void *ud)
{
    search_ctx *c = ud;
    if (!svc_share_covers(c->t, e->entry_id))
        return 0; /* outside a share link's range: not shown */
    size_t before = c->resp->len;
    svc_encode_entry(c->resp, log_id, e, &c->tmp);
    if (c->count > 0 && c->resp->len > ANN_MAX_RESPONSE_BYTES) {
        c->resp->len = before; /* not taken: the walk resumes before it */
        return 1;
    }
    c->count++;
    return 0;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

int svc_do_search(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                  ann_buf *resp, ann_err *err)
{
    int rc = -1;
    ann_label_pair *labels = NULL;
    char(*ids)[ANN_UUID_LEN + 1] = NULL;
    ann_matcher *match = NULL;
    search_ctx c = {.resp = resp, .tmp = ANN_BUF_INIT, .t = t};
    Annals__Wire__V1__SearchLogEntriesRequest *r =
        (Annals__Wire__V1__SearchLogEntriesRequest *)svc_decode(
            &annals__wire__v1__search_log_entries_request__descriptor, req, len, err);
    if (!r)
        return -1;
    ann_search_query q = {0};
    if (r->query.len == 0 || r->query.len > ANN_MAX_QUERY_BYTES) {
        ann_err_set(err, ANN_EINVAL, "query: %zu bytes, must be 1 to %d", r->query.len,
                    ANN_MAX_QUERY_BYTES);
        goto done;
    }
    if (svc_check_text(&r->query, "query", err) != 0)
        goto done;
    if (r->n_log_ids > ANN_MAX_SEARCH_LOGS) {
        ann_err_set(err, ANN_EINVAL, "log_ids: %zu ids, at most %d", r->n_log_ids,
                    ANN_MAX_SEARCH_LOGS);
        goto done;
    }
    ids = ann_xcalloc(r->n_log_ids ? r->n_log_ids : 1, sizeof *ids);
    for (size_t i = 0; i < r->n_log_ids; i++) {
        char field[32];
        snprintf(field, sizeof field, "log_ids[%zu]", i);
        if (svc_parse_log_id(&r->log_ids[i], field, ids[i], err) != 0)
            goto done;
    }
    size_t nids = r->n_log_ids;
    qsort(ids, nids, sizeof *ids, id_cmp);
    size_t k = 0;
    for (size_t i = 0; i < nids; i++)
        if (k == 0 || strcmp(ids[k - 1], ids[i]) != 0)
            memmove(ids[k++], ids[i], sizeof ids[i]);
    nids = k;
    if (label_filter(r->label_filter, r->n_label_filter, &labels, &q.n_labels, err) != 0 ||
        check_window(r->start_time, r->end_time, &q.start_ns, &q.end_ns, err) != 0 ||
        check_page_size(r->page_size, "page_size", &q.limit, err) != 0)
        goto done;
    /* A share link searches its one log, named or not. */
    if (t->share_log[0] && nids == 0) {
        memcpy(ids[0], t->share_log, sizeof ids[0]);
        nids = 1;
    }
    /* Each named log must be the caller's: another tenant's is NOT_FOUND like a missing one. */
    for (size_t i = 0; i < nids; i++) {
        ann_log_meta m = {0};
        if (svc_share_log_check(t, ids[i], err) != 0 ||
            ann_store_log_get(svc->store, t->id, ids[i], &m, err) != 0)
            goto done;
        ann_log_meta_release(&m);
    }
    match = ann_xmalloc(sizeof *match);
    ann_matcher_init(match, r->query.data, r->query.len, r->ignore_case);
    q.match = match;
    q.labels = labels;
    q.log_ids = (const char(*)[ANN_UUID_LEN + 1]) ids;
    q.n_log_ids = nids;
    q.budget = ANN_WORK_BUDGET;

    ann_scope_digest d;
    uint8_t scope[32];
    ann_scope_begin(&d, ANN_TOKEN_SEARCH);
    ann_scope_add(&d, t->id, strlen(t->id));
    ann_scope_add(&d, r->query.data, r->query.len);
    ann_scope_add_i64(&d, r->ignore_case ? 1 : 0);
    scope_add_labels(&d, labels, q.n_labels);
    ann_scope_add_i64(&d, (int64_t)nids);
    for (size_t i = 0; i < nids; i++)
        ann_scope_add(&d, ids[i], ANN_UUID_LEN);
    ann_scope_add_i64(&d, q.start_ns);
    ann_scope_add_i64(&d, q.end_ns);
    ann_scope_end(&d, scope);
    if (r->page_token.len) {
        uint8_t p[SEARCH_TOKEN_LEN];
        if (ann_token_open(svc->secret, ANN_TOKEN_SEARCH, scope, (const char *)r->page_token.data,
                           r->page_token.len, p, sizeof p, err) != 0)
            goto done;
        q.snapshot_ns = (int64_t)get_u64(p);
        q.has_cursor = true;
        q.cursor.time_ns = (int64_t)get_u64(p + 8);
        ann_uuid_format(p + 16, q.cursor.log_id);
        q.cursor.entry_id = get_u64(p + 32);
    } else {
        q.snapshot_ns = svc_now_ns();
    }
    ann_search_result res = {0};
    if (ann_store_search(svc->store, t->id, &q, search_visit, &c, &res, err) != 0)
        goto done;
    if (res.more) {
        uint8_t p[SEARCH_TOKEN_LEN];
        char tok[ANN_SEALED_TOKEN_MAX];
        put_u64(p, (uint64_t)q.snapshot_ns);
        put_u64(p + 8, (uint64_t)res.resume.time_ns);
        put_uuid(p + 16, res.resume.log_id);
        put_u64(p + 32, res.resume.entry_id);
        ann_token_seal(svc->secret, ANN_TOKEN_SEARCH, scope, p, sizeof p, tok);
        ann_buf_add_len_field(resp, 2, tok, strlen(tok));
    }
    rc = 0;
done:
    ann_buf_release(&c.tmp);
    free(match);
    free(ids);
    free(labels);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}
