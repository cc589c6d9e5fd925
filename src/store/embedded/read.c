/*
 * Reads: log_get, list (time order, from the index's sorted runs) and
 * read_after (id order). Records are copied in chunks under the log's read
 * lock and handed to the visitor with no lock held, so a slow reader never
 * holds up the committer; every record's checksum is checked on the way.
 */
#include "store/embedded/internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "store/embedded/logfile.h"

#define READ_CHUNK 256        /* entries copied per lock hold */
#define READ_BYTES (4u << 20) /* ... or this many bytes */
#define WINDOW (256u << 10)   /* read-ahead window */

int emb_log_get(ann_store *st, const char *tenant_id, const char *log_id, ann_log_meta *out,
                ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    int rc = -1;
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&h->lk);
    if (emb_log_state(h, err) != 0)
        goto done;
    snprintf(out->id, sizeof out->id, "%s", h->log);
    out->create_time_ns = h->create_ns;
    out->entry_count = h->visible;
    out->visible_count = h->visible; /* an append returns visible */
    out->sealed = h->log_sealed;
    if (h->labels_len) {
        out->labels = ann_xmalloc(h->labels_len);
        memcpy(out->labels, h->labels, h->labels_len);
        out->labels_len = h->labels_len;
    }
    rc = 0;
done:
    pthread_rwlock_unlock(&h->lk);
    emb_log_release(s, h);
    if (rc == 0 && ann_meta_log_lifecycle(s->meta, tenant_id, log_id, out, err) != 0) {
        ann_log_meta_release(out);
        rc = -1;
    }
    return rc;
}

typedef struct reader {
    elog *h;
    unsigned gen;
    uint8_t *win;
    uint64_t win_off;
    size_t win_len;
    uint8_t *big; /* a record larger than the window */
    /* The copied chunk. */
    uint8_t *buf;
    size_t buf_len, buf_cap;
    ann_entry ents[READ_CHUNK];
    size_t offs[READ_CHUNK];
    const ann_revocation *revs[READ_CHUNK]; /* records outlive the lock (revmap.c) */
    size_t n;
} reader;

static void reader_release(reader *r)
{
    free(r->win);
    free(r->big);
    free(r->buf);
}

/* Starts a chunk (h->lk held): forgets the window if records were rewritten
 * since it was read. */
static void reader_begin(reader *r)
{
    if (r->gen != r->h->revoke_gen) {
        r->gen = r->h->revoke_gen;
        r->win_len = 0;
    }
    r->n = 0;
    r->buf_len = 0;
}

/* Copies entry `id` into the chunk (h->lk held). */
static int reader_take(reader *r, uint64_t id, ann_err *err)
{
    elog *h = r->h;
    if (id <= h->sealed) { /* from its block, as a record like those of the data file */
        const emb_block *b = emb_block_of(h, id);
        size_t at = r->buf_len;
        ann_entry e;
        uint32_t rl;
        if (!b || emb_block_take(h, b, id, &r->buf, &r->buf_cap, &r->buf_len, err) != 0)
            return b ? -1
                     : ann_err_set(err, ANN_EINTERNAL, "entry %llu is in no block",
                                   (unsigned long long)id);
        if (ann_lf_rec_decode(r->buf + at, r->buf_len - at, &e, &rl) != 0 || e.entry_id != id)
            return ann_err_set(err, ANN_EINTERNAL, "entry %llu: bad copy", (unsigned long long)id);
        r->offs[r->n] = at;
        r->revs[r->n] = (e.flags & ANN_ENTRY_REDACTED) ? emb_revmap_find(&h->revs, id) : NULL;
        r->ents[r->n++] = e;
        return 0;
    }
    uint64_t off = ann_idx_off(&h->idx, id);
    const uint8_t *p;
    if (!r->win)
        r->win = ann_xmalloc(WINDOW);
    if (!(off >= r->win_off && off + ANN_LF_REC_HDR <= r->win_off + r->win_len)) {
        size_t len = h->end - off < WINDOW ? (size_t)(h->end - off) : WINDOW;
        if (ann_lf_pread_full(h->fd, r->win, len, off) != 0)
            return emb_sys_fail(err, "read", h->path);
        r->win_off = off;
        r->win_len = len;
    }
    uint32_t rec_len = ann_le32_get(r->win + (off - r->win_off) + 4);
    if (rec_len < ANN_LF_REC_HDR || rec_len > h->end - off)
        goto corrupt;
    if (off + rec_len <= r->win_off + r->win_len) {
        p = r->win + (off - r->win_off);
    } else if (rec_len <= WINDOW) {
        if (ann_lf_pread_full(h->fd, r->win, rec_len, off) != 0)
            return emb_sys_fail(err, "read", h->path);
        r->win_off = off;
        r->win_len = rec_len;
        p = r->win;
    } else {
        free(r->big);
        r->big = ann_xmalloc(rec_len);
        if (ann_lf_pread_full(h->fd, r->big, rec_len, off) != 0)
            return emb_sys_fail(err, "read", h->path);
        p = r->big;
    }
    emb_grow(&r->buf, &r->buf_cap, r->buf_len + rec_len);
    memcpy(r->buf + r->buf_len, p, rec_len);
    ann_entry e;
    uint32_t rl;
    if (ann_lf_rec_decode(r->buf + r->buf_len, rec_len, &e, &rl) != 0 || e.entry_id != id)
        goto corrupt;
    r->offs[r->n] = r->buf_len;
    r->revs[r->n] = (e.flags & ANN_ENTRY_REDACTED) ? emb_revmap_find(&h->revs, id) : NULL;
    r->ents[r->n++] = e;
    r->buf_len += rec_len;
    return 0;
corrupt:
    ann_err_set(err, ANN_ECORRUPT, "%s: entry %llu at offset %llu fails its checksum", h->path,
                (unsigned long long)id, (unsigned long long)off);
    fprintf(stderr, "annals store: CORRUPTION: %s\n", err ? err->msg : "");
    return -1;
}

/* Re-points the chunk's entries into buf (it may have moved while growing). */
static void reader_fix(reader *r)
{
    for (size_t i = 0; i < r->n; i++) {
        ann_entry *e = &r->ents[i];
        uint8_t *p = r->buf + r->offs[i];
        e->insert_id = (const char *)p + ANN_LF_REC_HDR;
        e->body = p + ANN_LF_REC_HDR + e->insert_id_len; /* redacted: the body_hash field */
        e->revocation = r->revs[i];
    }
}

int emb_list(ann_store *st, const char *tenant_id, const char *log_id, const ann_list_query *q,
             ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    reader r = {0};
    uint64_t ids[READ_CHUNK];
    int rc = -1;
    if (!q || !visit)
        return ann_err_set(err, ANN_EINVAL, "list: missing query or visitor");
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    r.h = h;
    ann_idx_key after = {q->start_ns, 0};
    if (q->has_cursor && (q->cursor_time_ns > after.time ||
                          (q->cursor_time_ns == after.time && q->cursor_id > after.id))) {
        after.time = q->cursor_time_ns;
        after.id = q->cursor_id;
    }
    size_t limit = q->limit ? q->limit : SIZE_MAX, emitted = 0;
    uint64_t examined = 0;
    uint64_t max_id = 0;
    bool stop = false;
    while (!stop) {
        pthread_rwlock_rdlock(&h->lk);
        if (emb_log_state(h, err) != 0) {
            pthread_rwlock_unlock(&h->lk);
            goto done;
        }
        if (max_id == 0)
            max_id = q->max_id == 0 || q->max_id > h->visible ? h->visible : q->max_id;
        size_t k = ann_idx_list(&h->idx, &after, q->end_ns, max_id, ids, READ_CHUNK);
        reader_begin(&r);
        for (size_t i = 0; i < k; i++) {
            if (reader_take(&r, ids[i], err) != 0) {
                pthread_rwlock_unlock(&h->lk);
                goto done;
            }
            if (r.buf_len >= READ_BYTES && i + 1 < k) {
                /* Continue after the last entry copied. */
                after.time = ann_idx_time(&h->idx, ids[i]);
                after.id = ids[i];
                break;
            }
        }
        pthread_rwlock_unlock(&h->lk);
        if (k == 0)
            break;
        reader_fix(&r);
        for (size_t i = 0; i < r.n; i++) {
            if (q->budget && examined == q->budget) {
                res->budget_hit = true;
                stop = true;
                break;
            }
            examined++;
            res->last_time_ns = r.ents[i].time_ns;
            res->last_id = r.ents[i].entry_id;
            if (q->filter && !q->filter(&r.ents[i], q->filter_ud))
                continue;
            if (visit(&r.ents[i], ud) != 0 || ++emitted >= limit) {
                stop = true;
                break;
            }
        }
        if (max_id == 0)
            break; /* empty log */
    }
    rc = 0;
done:
    reader_release(&r);
    emb_log_release(s, h);
    return rc;
}

int emb_read_after(ann_store *st, const char *tenant_id, const char *log_id, uint64_t after_id,
                   size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    if (!visit)
        return ann_err_set(err, ANN_EINVAL, "read_after: missing visitor");
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    /* What is visible now bounds the read: entries published meanwhile come next time. */
    pthread_rwlock_rdlock(&h->lk);
    int rc = emb_log_state(h, err);
    uint64_t last = h->visible;
    pthread_rwlock_unlock(&h->lk);
    if (rc == 0 && after_id < last) {
        uint64_t first = after_id + 1; /* no overflow: after_id < last */
        if (limit && last - first >= limit)
            last = first + limit - 1;
        rc = emb_read_range(s, h, first, last, visit, ud, err);
    }
    emb_log_release(s, h);
    return rc;
}

int emb_read_range(emb *s, elog *h, uint64_t first, uint64_t last, ann_entry_visit_fn visit,
                   void *ud, ann_err *err)
{
    (void)s;
    reader r = {0};
    int rc = -1;
    r.h = h;
    uint64_t next = first ? first : 1;
    for (;;) {
        pthread_rwlock_rdlock(&h->lk);
        if (emb_log_state(h, err) != 0) {
            pthread_rwlock_unlock(&h->lk);
            goto done;
        }
        uint64_t end = last < h->visible ? last : h->visible;
        reader_begin(&r);
        while (next <= end && r.n < READ_CHUNK && r.buf_len < READ_BYTES) {
            if (reader_take(&r, next, err) != 0) {
                pthread_rwlock_unlock(&h->lk);
                goto done;
            }
            next++;
        }
        pthread_rwlock_unlock(&h->lk);
        if (r.n == 0)
            break;
        reader_fix(&r);
        for (size_t i = 0; i < r.n; i++)
            if (visit(&r.ents[i], ud) != 0) {
                rc = 0;
                goto done;
            }
    }
    rc = 0;
done:
    reader_release(&r);
    return rc;
}
