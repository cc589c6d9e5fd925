/*
 * revoke and delete, the two operations that take data out of the data
 * directory. Both write their intent durably to SQLite first (an audit
 * record with applied = 0; the log's state "deleting"), then do the file
 * work, then record that it is done, so that a crash in between is finished
 * by the next open (recover.c) or the next load of the log (cache.c).
 */
#include "store/embedded/internal.h"

#include <inttypes.h>

#include "common/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "store/embedded/logfile.h"

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int emb_revoke(ann_store *st, const char *tenant_id, const char *log_id, const uint64_t *ids,
               size_t n, const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    uint64_t *sorted = NULL;
    int64_t rowid = 0;
    int rc = -1;
    if (n && !ids)
        return ann_err_set(err, ANN_EINVAL, "ids: missing");
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&h->lk);
    int state_rc = emb_log_state(h, err);
    if (state_rc == 0 && h->broken)
        state_rc = ann_err_set(err, ANN_EUNAVAIL, "log %s: storage failed; retry", h->log);
    uint64_t visible = h->visible;
    pthread_rwlock_unlock(&h->lk);
    if (state_rc != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0 || ids[i] > visible) {
            ann_err_set(err, ANN_ENOTFOUND, "entry %llu not found in log %.64s",
                        (unsigned long long)ids[i], log_id);
            goto out;
        }
    }
    if (n == 0) {
        rc = 0;
        goto out;
    }
    sorted = ann_xmalloc(n * sizeof *sorted);
    memcpy(sorted, ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, u64_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || sorted[m - 1] != sorted[i])
            sorted[m++] = sorted[i];

    /* The audit record first (durable): if we crash during the overwrite,
     * the next open of the log finishes it. */
    if (ann_meta_revoke_insert(s->meta, tenant_id, log_id, sorted, m, actor, reason, now_ns, &rowid,
                               err) != 0)
        goto out;
    ANN_FAULT_POINT("revoke.audit_inserted");
    /* Reads say who revoked an entry from the moment it is redacted. */
    pthread_rwlock_wrlock(&h->lk);
    emb_revmap_add(&h->revs, sorted, m, actor, reason, now_ns);
    pthread_rwlock_unlock(&h->lk);
    pthread_mutex_lock(&h->purge_mu);
    /* Sealed entries: their blocks are rewritten (the sealer waits on purge_mu, so what
     * is sealed stays so meanwhile). */
    pthread_rwlock_rdlock(&h->lk);
    size_t nsealed = 0;
    while (nsealed < m && sorted[nsealed] <= h->sealed)
        nsealed++;
    pthread_rwlock_unlock(&h->lk);
    if (nsealed && emb_blocks_revoke(s, h, sorted, nsealed, err) != 0)
        rc = -2;
    for (size_t i = nsealed; i < m && rc != -2;) {
        pthread_rwlock_wrlock(&h->lk);
        if (emb_log_state(h, err) != 0) {
            rc = -2;
        } else if (h->broken || h->visible < sorted[m - 1]) {
            ann_err_set(err, ANN_EIO, "log %s: storage failed; retry", h->log);
            rc = -2;
        }
        h->revoke_gen++;
        for (size_t k = 0; k < 64 && i < m && rc != -2; k++, i++) {
            if (emb_redact_at(h, ann_idx_off(&h->idx, sorted[i]), err) != 0)
                rc = -2;
            else
                ANN_FAULT_POINT("revoke.overwrite"); /* per record: ":k" dies after k */
        }
        pthread_rwlock_unlock(&h->lk);
    }
    if (rc != -2)
        ANN_FAULT_POINT("revoke.before_sync");
    if (rc != -2 && s->durable) {
        pthread_rwlock_rdlock(&h->lk); /* keeps h->fd from a concurrent reload */
        if (fdatasync(h->fd) != 0) {
            emb_sys_unknown(err, "sync", h->path);
            rc = -2;
        }
        pthread_rwlock_unlock(&h->lk);
    }
    pthread_mutex_unlock(&h->purge_mu);
    if (rc == -2) {
        /* The audit record is pending: the next load of the log finishes the
         * revocation. */
        rc = emb_outcome_unknown(err);
        goto out;
    }
    ANN_FAULT_POINT("revoke.synced");
    /* Not fatal if this fails: re-applying a revocation is harmless. */
    ann_err tmp;
    (void)ann_meta_revoke_applied(s->meta, rowid, &tmp);
    ANN_FAULT_POINT("revoke.applied");
    rc = 0;
out:
    free(sorted);
    emb_log_release(s, h);
    return rc;
}

int emb_unlink_log_files(emb *s, const char *tenant, const char *log, ann_err *err)
{
    size_t plen = strlen(s->dir) + strlen(tenant) + strlen(log) + 16;
    char *path = ann_xmalloc(plen);
    char *tdir = emb_path_join(s->dir, "logs", tenant, "");
    int rc = -1;
    snprintf(path, plen, "%s/logs/%s/%s.mrk", s->dir, tenant, log); /* integrity.c */
    if (unlink(path) != 0 && errno != ENOENT) {
        emb_sys_fail(err, "unlink", path);
        goto done;
    }
    snprintf(path, plen, "%s/logs/%s/%s.idx", s->dir, tenant, log);
    if (unlink(path) != 0 && errno != ENOENT) {
        emb_sys_fail(err, "unlink", path);
        goto done;
    }
    ANN_FAULT_POINT("delete.idx_unlinked");
    snprintf(path, plen, "%s/logs/%s/%s.blk", s->dir, tenant, log);
    if (unlink(path) != 0 && errno != ENOENT) {
        emb_sys_fail(err, "unlink", path);
        goto done;
    }
    ANN_FAULT_POINT("delete.blk_unlinked");
    snprintf(path, plen, "%s/logs/%s/%s.dat", s->dir, tenant, log);
    if (unlink(path) != 0 && errno != ENOENT) {
        emb_sys_fail(err, "unlink", path);
        goto done;
    }
    ANN_FAULT_POINT("delete.dat_unlinked");
    if (s->durable && emb_fsync_dir(tdir) != 0 && errno != ENOENT) {
        emb_sys_fail(err, "sync", tdir);
        goto done;
    }
    ANN_FAULT_POINT("delete.dir_synced");
    rc = 0;
done:
    free(path);
    free(tdir);
    return rc;
}

typedef struct last_entry {
    int64_t insert_time_ns;
} last_entry;

static int note_last(const ann_entry *e, void *ud)
{
    ((last_entry *)ud)->insert_time_ns = e->insert_time_ns;
    return 0;
}

/* When h was last written: its last visible entry's insert time, else its creation; and
 * the visible count that time belongs to. purge_mu held (no revocation rewrites it). */
static int last_write(emb *s, elog *h, int64_t *out, uint64_t *visible, ann_err *err)
{
    pthread_rwlock_rdlock(&h->lk);
    uint64_t v = h->visible;
    int64_t created = h->create_ns;
    pthread_rwlock_unlock(&h->lk);
    last_entry le = {.insert_time_ns = created};
    if (v > 0 && emb_read_range(s, h, v, v, note_last, &le, err) != 0)
        return -1;
    *out = le.insert_time_ns > created ? le.insert_time_ns : created;
    *visible = v;
    return 0;
}

int emb_log_delete_if(emb *s, const char *tenant_id, const char *log_id, const emb_expiry *exp,
                      bool *deleted, ann_err *err)
{
    elog *h;
    ann_watch **ws = NULL;
    size_t cap = 0;
    if (deleted)
        *deleted = false;
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    /* purge_mu: one deletion at a time, and no revocation rewriting the file. */
    pthread_mutex_lock(&h->purge_mu);
    pthread_rwlock_rdlock(&h->lk);
    int rc = emb_log_state(h, err); /* a concurrent delete won: not found */
    pthread_rwlock_unlock(&h->lk);
    if (rc == 0 && !exp)
        rc = ann_meta_log_set_deleting(s->meta, tenant_id, log_id, NULL, err);
    if (rc == 0 && exp) {
        /* Retention: the log goes only if its true last write is older than the cutoff,
         * checked and marked with the committer kept out (h->lk for writing), so no
         * append is published between the check and the decision. */
        int64_t last = 0;
        uint64_t v = 0;
        rc = last_write(s, h, &last, &v, err);
        if (rc == 0 && last >= exp->cutoff_ns) {
            (void)ann_meta_log_set_last_write(s->meta, tenant_id, log_id, last, err);
            rc = 1; /* not expired: keep it */
        }
        if (rc == 0) {
            char reason[512], t1[40];
            snprintf(t1, sizeof t1, "%" PRId64, last);
            snprintf(reason, sizeof reason,
                     "retention: last write at %s ns is older than the %s period of %d day%s "
                     "(%" PRId64 " ns a day); deleted %" PRIu64 " entries",
                     t1, exp->own_period ? "log's" : "tenant's", (int)exp->days,
                     exp->days == 1 ? "" : "s", exp->day_ns, v);
            ann_meta_event ev = {.time_ns = exp->now_ns,
                                 .kind = "retention",
                                 .actor = ANN_RETENTION_ACTOR,
                                 .reason = reason};
            pthread_rwlock_wrlock(&h->lk);
            if (h->visible != v)
                rc = 1; /* written meanwhile: not expired any more */
            else if ((rc = ann_meta_log_set_deleting(s->meta, tenant_id, log_id, &ev, err)) != 0 &&
                     err && err->code == ANN_EPRECOND)
                rc = 1; /* held meanwhile */
            pthread_rwlock_unlock(&h->lk);
        }
    }
    if (rc != 0) {
        pthread_mutex_unlock(&h->purge_mu);
        emb_log_release(s, h);
        if (rc == 1)
            ann_err_clear(err);
        return rc == 1 ? 0 : -1;
    }
    ANN_FAULT_POINT("delete.marked");
    /* Decided (durably). From now on an acquire that misses the table finds
     * the log deleting; one that already holds h sees `deleted`. */
    emb_log_unpublish(s, h);
    pthread_rwlock_wrlock(&h->lk);
    h->deleted = true;
    pthread_rwlock_unlock(&h->lk);
    pthread_mutex_unlock(&h->purge_mu);

    size_t n = 0;
    emb_watch_gather(s, h, &ws, &cap, &n, true);
    emb_watch_call(s, ws, n);
    free(ws);

    /* The deletion is decided (durably); finishing it is idempotent and is
     * redone at the next open if we crash here. */
    rc = emb_unlink_log_files(s, tenant_id, log_id, err);
    if (rc == 0)
        rc = ann_meta_log_remove(s->meta, tenant_id, log_id, err);
    if (rc == 0)
        ANN_FAULT_POINT("delete.removed");
    emb_log_release(s, h);
    if (deleted)
        *deleted = true; /* decided: the rest is redone at the next open if it failed */
    return rc == 0 ? 0 : emb_outcome_unknown(err);
}

int emb_log_delete(ann_store *st, const char *tenant_id, const char *log_id, ann_err *err)
{
    return emb_log_delete_if((emb *)st, tenant_id, log_id, NULL, NULL, err);
}
