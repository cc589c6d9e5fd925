/*
 * ListLogs: a tenant's logs newest first, by label and create time, from SQLite (the
 * logs and log_labels tables, meta.c), with each log's entry count from the open log when
 * it is loaded, else from SQLite when the count recorded there is exact, else (after a
 * crash, for a log that was being written) from loading the log.
 */
#include "store/embedded/internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

typedef struct row {
    char id[EMB_MAX_ID_LEN + 1];
    int64_t create_ns;
    uint8_t *labels;
    size_t labels_len;
    uint64_t count;
    bool dirty;
    bool legal_hold;
    int32_t retention_days;
} row;

typedef struct rows {
    row *v;
    size_t n, cap;
} rows;

/* Copies the rows out: counts are resolved after SQLite's lock is let go (lock order). */
static int take_row(const ann_meta_log_row *r, void *ud)
{
    rows *rs = ud;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 64;
        rs->v = ann_xrealloc(rs->v, rs->cap * sizeof *rs->v);
    }
    row *w = &rs->v[rs->n++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", r->log_id);
    w->create_ns = r->create_ns;
    if (r->labels_len) {
        w->labels = ann_xmalloc(r->labels_len);
        memcpy(w->labels, r->labels, r->labels_len);
        w->labels_len = r->labels_len;
    }
    w->count = r->entry_count;
    w->dirty = r->count_dirty;
    w->legal_hold = r->legal_hold;
    w->retention_days = r->retention_days;
    return 0;
}

int emb_logs_list(ann_store *st, const char *tenant_id, const ann_logs_query *q,
                  ann_log_visit_fn visit, void *ud, ann_err *err)
{
    emb *s = (emb *)st;
    rows rs = {0};
    int rc = -1;
    if (s->opts.admin_only)
        return ann_err_set(err, ANN_EINVAL, "store opened admin-only");
    if (!emb_valid_id(tenant_id)) {
        rc = 0; /* no such tenant: no logs */
        goto done;
    }
    if (ann_meta_logs_page(s->meta, tenant_id, q, take_row, &rs, err) != 0)
        goto done;
    for (size_t i = 0; i < rs.n; i++) {
        row *w = &rs.v[i];
        ann_err e;
        uint64_t count = 0;
        if (emb_log_count(s, tenant_id, w->id, w->count, w->dirty, &count, &e) != 0) {
            if (e.code == ANN_ENOTFOUND)
                continue; /* deleted since the listing read it */
            *err = e;
            goto done;
        }
        ann_log_meta m = {.create_time_ns = w->create_ns,
                          .entry_count = count,
                          .visible_count = count,
                          .labels = w->labels,
                          .labels_len = w->labels_len,
                          .legal_hold = w->legal_hold,
                          .retention_days = w->retention_days};
        memcpy(m.id, w->id, sizeof m.id);
        if (visit(&m, ud) != 0)
            break;
    }
    rc = 0;
done:
    for (size_t i = 0; i < rs.n; i++)
        free(rs.v[i].labels);
    free(rs.v);
    return rc;
}
