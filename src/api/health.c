#include "api/health.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"

#define MAX_PROBES 8

typedef struct probe {
    char what[64];
    ann_health_probe_fn fn;
    void *ud;
    bool ok;       /* guarded by mu */
    char why[192]; /* guarded by mu */
} probe;

struct ann_health_sub {
    ann_health_change_fn fn;
    void *ud;
    ann_health_sub *next;
};

struct ann_health {
    pthread_mutex_t mu; /* guards everything below but the probes' fn/ud */
    pthread_cond_t cv;
    probe probes[MAX_PROBES];
    int n_probes;
    bool draining;
    bool stop;
    bool thread_started;
    unsigned interval_ms;
    pthread_t thread;
    ann_health_sub *subs;
    /* Notification: a subscriber runs without mu, under notify_mu, so that unsubscribe
     * (which takes notify_mu) waits for a running callback. */
    pthread_mutex_t notify_mu;
    ann_gauge *ready_gauge;
};

ann_health *ann_health_new(ann_metrics *metrics)
{
    ann_health *h = ann_xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->notify_mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->ready_gauge = ann_metrics_gauge(
        metrics, "annals_ready", "1 when the process is ready (what /readyz says), else 0", "");
    ann_gauge_set(h->ready_gauge, 1);
    return h;
}

void ann_health_free(ann_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (h->thread_started)
        pthread_join(h->thread, NULL);
    for (ann_health_sub *s = h->subs, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->notify_mu);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void ann_health_add_probe(ann_health *h, const char *what, ann_health_probe_fn fn, void *ud)
{
    pthread_mutex_lock(&h->mu);
    if (h->n_probes < MAX_PROBES) {
        probe *p = &h->probes[h->n_probes++];
        snprintf(p->what, sizeof p->what, "%s", what);
        p->fn = fn;
        p->ud = ud;
        p->ok = true;
    } else {
        fprintf(stderr, "annalsd: health: more than %d probes; %s ignored\n", MAX_PROBES, what);
    }
    pthread_mutex_unlock(&h->mu);
}

static bool ready_locked(ann_health *h, char *why, size_t cap)
{
    if (why && cap)
        why[0] = '\0';
    if (h->draining) {
        if (why)
            snprintf(why, cap, "draining: the server is shutting down");
        return false;
    }
    for (int i = 0; i < h->n_probes; i++)
        if (!h->probes[i].ok) {
            if (why)
                snprintf(why, cap, "%s: %s", h->probes[i].what, h->probes[i].why);
            return false;
        }
    return true;
}

static void notify(ann_health *h)
{
    pthread_mutex_lock(&h->notify_mu);
    pthread_mutex_lock(&h->mu);
    ann_gauge_set(h->ready_gauge, ready_locked(h, NULL, 0) ? 1 : 0);
    ann_health_sub *s = h->subs;
    pthread_mutex_unlock(&h->mu);
    /* The list only grows at its head and loses members under notify_mu: safe to walk. */
    for (; s; s = s->next)
        s->fn(s->ud);
    pthread_mutex_unlock(&h->notify_mu);
}

/* Runs every probe (without the lock: probes touch the network); true if a state changed. */
static bool probe_all(ann_health *h)
{
    bool changed = false;
    for (int i = 0; i < h->n_probes; i++) {
        probe *p = &h->probes[i];
        ann_err err = {0};
        int rc = p->fn(p->ud, &err);
        pthread_mutex_lock(&h->mu);
        bool ok = rc == 0;
        if (ok != p->ok) {
            changed = true;
            fprintf(stderr, "annalsd: health: %s %s%s%s\n", p->what,
                    ok ? "is reachable again" : "is not usable", ok ? "" : ": ", ok ? "" : err.msg);
        }
        p->ok = ok;
        snprintf(p->why, sizeof p->why, "%.180s", ok ? "" : err.msg);
        pthread_mutex_unlock(&h->mu);
    }
    return changed;
}

static void *monitor_main(void *arg)
{
    ann_health *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += h->interval_ms / 1000;
        ts.tv_nsec += (long)(h->interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        if (h->stop)
            break;
        pthread_mutex_unlock(&h->mu);
        if (probe_all(h))
            notify(h);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int ann_health_start(ann_health *h, unsigned interval_ms, ann_err *err)
{
    if (h->n_probes == 0)
        return 0;
    h->interval_ms = interval_ms ? interval_ms : 1000;
    if (probe_all(h))
        notify(h);
    if (pthread_create(&h->thread, NULL, monitor_main, h) != 0)
        return ann_err_set(err, ANN_EINTERNAL, "health: cannot start the monitor thread");
    h->thread_started = true;
    return 0;
}

void ann_health_set_draining(ann_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    bool was = h->draining;
    h->draining = true;
    pthread_mutex_unlock(&h->mu);
    if (!was)
        notify(h);
}

bool ann_health_ready(ann_health *h, char *why, size_t cap)
{
    if (!h) {
        if (why && cap)
            why[0] = '\0';
        return true;
    }
    pthread_mutex_lock(&h->mu);
    bool r = ready_locked(h, why, cap);
    pthread_mutex_unlock(&h->mu);
    return r;
}

bool ann_health_service_known(const char *service, size_t len)
{
    static const char *const known[] = {"", ANN_SERVICE_COMMAND, ANN_SERVICE_QUERY};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i]) == len && memcmp(known[i], service, len) == 0)
            return true;
    return false;
}

ann_health_sub *ann_health_subscribe(ann_health *h, ann_health_change_fn fn, void *ud)
{
    ann_health_sub *s = ann_xcalloc(1, sizeof *s);
    s->fn = fn;
    s->ud = ud;
    pthread_mutex_lock(&h->mu);
    s->next = h->subs;
    h->subs = s;
    pthread_mutex_unlock(&h->mu);
    return s;
}

void ann_health_unsubscribe(ann_health *h, ann_health_sub *sub)
{
    pthread_mutex_lock(&h->notify_mu);
    pthread_mutex_lock(&h->mu);
    for (ann_health_sub **p = &h->subs; *p; p = &(*p)->next)
        if (*p == sub) {
            *p = sub->next;
            break;
        }
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_unlock(&h->notify_mu);
    free(sub);
}
