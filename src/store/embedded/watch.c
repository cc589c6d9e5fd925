/*
 * Watchers: watch() registers a callback on a log (keeping a reference on
 * it), the committer calls the log's watchers after each round that gave it
 * entries, delete calls them once and detaches them, and unwatch() waits
 * until the callback is not running before it frees the registration.
 * Callbacks run with no store lock held; `busy` counts calls in progress.
 */
#include "store/embedded/internal.h"

#include <stdlib.h>

#include "common/buf.h"

/* Calls the watchers gathered in ws[0..n) (busy already raised) and lowers
 * busy again. No store lock is held. */
void emb_watch_call(emb *s, ann_watch **ws, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ws[i]->fn(ws[i]->ud);
    pthread_mutex_lock(&s->watch_mu);
    for (size_t i = 0; i < n; i++)
        ws[i]->busy--;
    pthread_cond_broadcast(&s->watch_cv);
    pthread_mutex_unlock(&s->watch_mu);
}

/* Appends h's watchers to (*ws)[*n..] (grown as needed), raising busy; with
 * `detach` they are also unlinked (the log is gone). */
void emb_watch_gather(emb *s, elog *h, ann_watch ***ws, size_t *cap, size_t *np, bool detach)
{
    size_t n = *np;
    pthread_mutex_lock(&s->watch_mu);
    if (detach)
        h->watch_gone = true;
    for (ann_watch *w = h->watchers; w; w = w->next) {
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *ws = ann_xrealloc(*ws, *cap * sizeof **ws);
        }
        w->busy++;
        (*ws)[n++] = w;
    }
    if (detach) {
        for (ann_watch *w = h->watchers; w; w = w->next)
            w->linked = false;
        h->watchers = NULL;
    }
    pthread_mutex_unlock(&s->watch_mu);
    *np = n;
}

int emb_watch(ann_store *st, const char *tenant_id, const char *log_id, ann_watch_fn fn, void *ud,
              ann_watch **out, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    if (!fn || !out)
        return ann_err_set(err, ANN_EINVAL, "watch: missing callback");
    *out = NULL;
    ann_watch *w = ann_xcalloc(1, sizeof *w);
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0) {
        free(w);
        return -1;
    }
    w->h = h;
    w->fn = fn;
    w->ud = ud;
    pthread_mutex_lock(&s->watch_mu);
    if (h->watch_gone) {
        pthread_mutex_unlock(&s->watch_mu);
        free(w);
        emb_log_release(s, h);
        return emb_not_found(err, log_id);
    }
    w->next = h->watchers;
    if (h->watchers)
        h->watchers->prev = w;
    h->watchers = w;
    w->linked = true;
    w->all_next = s->watches;
    if (s->watches)
        s->watches->all_prev = w;
    s->watches = w;
    pthread_mutex_unlock(&s->watch_mu);
    *out = w; /* keeps its reference on h: a watched log stays open */
    return 0;
}

void emb_unwatch(ann_store *st, ann_watch *w)
{
    emb *s = (emb *)st;
    elog *h = w->h;
    pthread_mutex_lock(&s->watch_mu);
    if (w->linked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            h->watchers = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->linked = false;
    }
    while (w->busy)
        pthread_cond_wait(&s->watch_cv, &s->watch_mu);
    if (w->all_prev)
        w->all_prev->all_next = w->all_next;
    else
        s->watches = w->all_next;
    if (w->all_next)
        w->all_next->all_prev = w->all_prev;
    pthread_mutex_unlock(&s->watch_mu);
    free(w);
    emb_log_release(s, h);
}
