/* The scheduler: per-tenant caps leave room for other tenants; everything queued runs. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/sched.h"

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int started, done;
} gate;

static gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0};

static void blocked_task(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.mu);
    g.started++;
    pthread_cond_broadcast(&g.cv);
    while (!g.open)
        pthread_cond_wait(&g.cv, &g.mu);
    g.done++;
    pthread_mutex_unlock(&g.mu);
}

static void quick_task(void *arg)
{
    int *flag = arg;
    pthread_mutex_lock(&g.mu);
    *flag = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

/* Waits (bounded, for liveness only) until *p reaches want; returns its value. */
static int wait_for(int *p, int want)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&g.mu);
    while (*p < want && pthread_cond_timedwait(&g.cv, &g.mu, &dl) == 0)
        ;
    int v = *p;
    pthread_mutex_unlock(&g.mu);
    return v;
}

static void a_capped_tenant_leaves_room_for_another(void **state)
{
    (void)state;
    ann_sched_opts o;
    ann_sched_opts_default(&o, 32);
    o.cls[ANN_CLASS_READ] = (ann_sched_class_opts){.workers = 3, .cap = 2, .nice = 0};
    ann_sched *s = ann_sched_create(&o);
    for (int i = 0; i < 40; i++)
        ann_sched_submit(s, ANN_CLASS_READ, "tenant-a", blocked_task, NULL);
    assert_int_equal(wait_for(&g.started, 2), 2);

    int b_ran = 0;
    ann_sched_submit(s, ANN_CLASS_READ, "tenant-b", quick_task, &b_ran);
    assert_int_equal(wait_for(&b_ran, 1), 1); /* while A's tasks are all stuck */
    size_t queued, running;
    for (int i = 0; i < 1000; i++) { /* B's task may still be on its way out */
        ann_sched_counts(s, ANN_CLASS_READ, &queued, &running);
        if (running == 2)
            break;
        usleep(1000);
    }
    assert_int_equal(running, 2); /* A never got its third worker */
    assert_int_equal(queued, 38);

    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    ann_sched_destroy(s); /* runs everything queued first */
    assert_int_equal(g.done, 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_capped_tenant_leaves_room_for_another),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
