/*
 * The read model's lag behind the sequencer, as one API server sees it
 * (docs/operations.md, `annals_readmodel_lag_entries` and `_seconds`).
 *
 * Every ack of a write that made entries says which ids they got: the last n_new of the
 * log's entry_count (a request's new entries are consecutive). Those ids are sequenced; the
 * read model shows them once the log's visible count (NOTIFY, the fallback poller, a
 * waiter's check) reaches them. Each server counts its own writes' entries, so the sum over
 * API servers is the deployment's lag, each entry counted once. The runs live on the log's
 * wlog (internal.h), which stays while it has any, so the fallback poller reads its state
 * even when no notification comes.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/metrics.h"
#include "store/distributed/internal.h"

static uint64_t runs_total(const wlog *w)
{
    uint64_t n = 0;
    for (int i = 0; i < w->nlag; i++)
        n += w->lag[i].hi - w->lag[i].lo;
    return n;
}

/* Drops what visible covers; keeps d's totals. */
static void trim(dist *d, wlog *w, uint64_t visible)
{
    int had = w->nlag;
    d->lag_entries -= runs_total(w);
    int k = 0;
    for (int i = 0; i < w->nlag; i++) {
        dist_lag_run r = w->lag[i];
        if (r.hi <= visible)
            continue;
        if (r.lo < visible)
            r.lo = visible;
        w->lag[k++] = r;
    }
    w->nlag = k;
    d->lag_entries += runs_total(w);
    if (had && !k)
        d->lag_logs--;
}

void dist_lag_add_locked(dist *d, wlog *w, uint64_t lo, uint64_t hi, int64_t now_ns)
{
    if (w->nlag && lo < w->lag[w->nlag - 1].hi) /* never counts an id twice */
        lo = w->lag[w->nlag - 1].hi;
    if (lo < w->visible)
        lo = w->visible;
    if (hi <= lo)
        return;
    if (!w->nlag) {
        if (d->lag_logs >= DIST_LAG_LOGS)
            return;
        d->lag_logs++;
    }
    dist_lag_run *last = w->nlag ? &w->lag[w->nlag - 1] : NULL;
    if (last && (last->hi == lo || w->nlag == DIST_LAG_RUNS)) {
        d->lag_entries += hi - last->hi; /* a gap merged in counts too: bounded overcount */
        last->hi = hi;
        return;
    }
    w->lag[w->nlag++] = (dist_lag_run){.lo = lo, .hi = hi, .acked_ns = now_ns};
    d->lag_entries += hi - lo;
}

void dist_lag_seen_locked(dist *d, wlog *w, const dist_log_state *st)
{
    if (st->deleted) {
        trim(d, w, UINT64_MAX);
        return;
    }
    if (st->visible_count > w->visible)
        w->visible = st->visible_count;
    if (w->nlag)
        trim(d, w, w->visible);
}

void dist_lag_collect(void *ud, ann_metrics_out *out)
{
    dist *d = ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec, oldest = now;
    pthread_mutex_lock(&d->mu);
    uint64_t entries = d->lag_entries;
    if (d->lag_logs)
        for (int b = 0; b < DIST_BUCKETS; b++)
            for (const wlog *w = d->logs[b]; w; w = w->next)
                if (w->nlag && w->lag[0].acked_ns < oldest)
                    oldest = w->lag[0].acked_ns;
    pthread_mutex_unlock(&d->mu);
    ann_metrics_out_family(out, "annals_readmodel_lag_entries", "gauge",
                           "Entries of this server's writes sequenced but not yet visible to "
                           "reads (sum over API servers: the deployment's)");
    ann_metrics_out_sample(out, "annals_readmodel_lag_entries", "", (double)entries);
    ann_metrics_out_family(out, "annals_readmodel_lag_seconds", "gauge",
                           "Age of the oldest entry of this server's writes sequenced but not "
                           "yet visible to reads (0: none)");
    ann_metrics_out_sample(out, "annals_readmodel_lag_seconds", "", (double)(now - oldest) / 1e9);
}
