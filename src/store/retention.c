#include "store/retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"

struct ann_retention {
    ann_store *store;     /* immutable */
    ann_retention_opts o; /* immutable */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* mu: signalled by stop */
    bool stopping;     /* mu */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *run(void *p)
{
    ann_retention *r = p;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        pthread_mutex_unlock(&r->mu);
        ann_retention_stats st;
        ann_err err = {0};
        unsigned wait_ms = r->o.every_ms;
        if (ann_store_retention_pass(r->store, now_ns(), r->o.day_ns, r->o.max_per_pass, &st,
                                     &err) != 0)
            fprintf(stderr, "annalsd: retention pass: %s: %s\n", ann_code_name(err.code), err.msg);
        else if (st.more)
            wait_ms = r->o.busy_ms;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_mutex_lock(&r->mu);
        while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int ann_retention_start(ann_store *store, const ann_retention_opts *o, ann_retention **out,
                        ann_err *err)
{
    ann_retention *r = ann_xcalloc(1, sizeof *r);
    r->store = store;
    r->o = *o;
    if (!r->o.every_ms)
        r->o.every_ms = 60000;
    if (!r->o.busy_ms)
        r->o.busy_ms = 100;
    if (!r->o.max_per_pass)
        r->o.max_per_pass = 1000;
    if (r->o.day_ns <= 0)
        r->o.day_ns = ANN_RETENTION_DAY_NS;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&r->thread, NULL, run, r);
    if (e != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return ann_err_set(err, ANN_EINTERNAL, "retention: pthread_create: %s", strerror(e));
    }
    *out = r;
    return 0;
}

void ann_retention_stop(ann_retention *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
