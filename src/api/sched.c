#include "api/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/buf.h"

#define NBUCKETS 256

typedef struct task {
    ann_task_fn fn;
    void *arg;
    struct task *next;
} task;

/* One tenant's queues. All fields under s->mu. */
typedef struct tq {
    char key[64];
    struct tq *hnext; /* hash chain */
    struct {
        task *head, *tail;
        int running;
        bool on_ring;
        struct tq *prev, *next; /* the class's ring of tenants with queued tasks */
    } c[ANN_NCLASS];
} tq;

typedef struct worker_arg {
    ann_sched *s;
    ann_class cls;
} worker_arg;

struct ann_sched {
    ann_sched_opts o; /* immutable */
    pthread_mutex_t mu;
    pthread_cond_t cv[ANN_NCLASS]; /* a task may be runnable in the class */
    tq *buckets[NBUCKETS];
    tq *ring[ANN_NCLASS]; /* next tenant to serve; NULL: nothing queued */
    size_t queued[ANN_NCLASS], running[ANN_NCLASS];
    bool stop;
    pthread_t *threads; /* immutable after create */
    worker_arg *args;
    int nthreads;
};

void ann_sched_opts_default(ann_sched_opts *o, int workers)
{
    if (workers < 6)
        workers = 6;
    int readers = workers / 8 < 2 ? 2 : workers / 8;
    if (readers > 8)
        readers = 8;
    int writers = workers - readers - 2;
    o->cls[ANN_CLASS_ADMIT] = (ann_sched_class_opts){.workers = 2, .cap = 1, .nice = 0};
    o->cls[ANN_CLASS_WRITE] =
        (ann_sched_class_opts){.workers = writers, .cap = writers - writers / 4, .nice = 0};
    o->cls[ANN_CLASS_READ] =
        (ann_sched_class_opts){.workers = readers, .cap = readers - 1, .nice = 5};
}

static uint32_t hash_key(const char *k)
{
    uint32_t h = 2166136261u;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 16777619u;
    return h % NBUCKETS;
}

static tq *tenant_get(ann_sched *s, const char *key)
{
    uint32_t b = hash_key(key);
    for (tq *t = s->buckets[b]; t; t = t->hnext)
        if (strcmp(t->key, key) == 0)
            return t;
    tq *t = ann_xcalloc(1, sizeof *t);
    strncpy(t->key, key, sizeof t->key - 1);
    t->hnext = s->buckets[b];
    s->buckets[b] = t;
    return t;
}

static void tenant_maybe_free(ann_sched *s, tq *t)
{
    for (int c = 0; c < ANN_NCLASS; c++)
        if (t->c[c].head || t->c[c].running)
            return;
    tq **pp = &s->buckets[hash_key(t->key)];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    free(t);
}

static void ring_add(ann_sched *s, ann_class c, tq *t)
{
    tq *head = s->ring[c];
    if (!head) {
        t->c[c].prev = t->c[c].next = t;
        s->ring[c] = t;
    } else { /* at the end: just before the next one to serve */
        t->c[c].next = head;
        t->c[c].prev = head->c[c].prev;
        head->c[c].prev->c[c].next = t;
        head->c[c].prev = t;
    }
    t->c[c].on_ring = true;
}

static void ring_remove(ann_sched *s, ann_class c, tq *t)
{
    if (t->c[c].next == t) {
        s->ring[c] = NULL;
    } else {
        t->c[c].prev->c[c].next = t->c[c].next;
        t->c[c].next->c[c].prev = t->c[c].prev;
        if (s->ring[c] == t)
            s->ring[c] = t->c[c].next;
    }
    t->c[c].prev = t->c[c].next = NULL;
    t->c[c].on_ring = false;
}

/* The first tenant in round-robin order with a queued task and room under its cap. */
static tq *pick(ann_sched *s, ann_class c)
{
    tq *t = s->ring[c];
    if (!t)
        return NULL;
    do {
        if (t->c[c].running < s->o.cls[c].cap)
            return t;
        t = t->c[c].next;
    } while (t != s->ring[c]);
    return NULL;
}

static void *worker_main(void *p)
{
    worker_arg *a = p;
    ann_sched *s = a->s;
    ann_class c = a->cls;
    if (s->o.cls[c].nice) {
        id_t tid = (id_t)syscall(SYS_gettid);
        errno = 0;
        int cur = getpriority(PRIO_PROCESS, tid);
        if (errno == 0)
            (void)setpriority(PRIO_PROCESS, tid, cur + s->o.cls[c].nice);
    }
    pthread_mutex_lock(&s->mu);
    for (;;) {
        tq *t = pick(s, c);
        if (!t) {
            if (s->stop && s->queued[c] == 0 && s->running[c] == 0)
                break;
            pthread_cond_wait(&s->cv[c], &s->mu);
            continue;
        }
        task *k = t->c[c].head;
        t->c[c].head = k->next;
        if (!t->c[c].head) {
            t->c[c].tail = NULL;
            ring_remove(s, c, t);
        } else {
            s->ring[c] = t->c[c].next; /* rotate: the others come first */
        }
        t->c[c].running++;
        s->queued[c]--;
        s->running[c]++;
        pthread_mutex_unlock(&s->mu);

        k->fn(k->arg);
        free(k);

        pthread_mutex_lock(&s->mu);
        t->c[c].running--;
        s->running[c]--;
        if (t->c[c].head || (s->stop && s->running[c] == 0))
            pthread_cond_broadcast(&s->cv[c]); /* a capped tenant may run now */
        tenant_maybe_free(s, t);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

ann_sched *ann_sched_create(const ann_sched_opts *o)
{
    ann_sched *s = ann_xcalloc(1, sizeof *s);
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    for (int c = 0; c < ANN_NCLASS; c++) {
        pthread_cond_init(&s->cv[c], NULL);
        ann_sched_class_opts *co = &s->o.cls[c];
        if (co->workers < 1)
            co->workers = 1;
        if (co->cap < 1 || co->cap > co->workers)
            co->cap = co->workers;
        s->nthreads += co->workers;
    }
    s->threads = ann_xcalloc((size_t)s->nthreads, sizeof *s->threads);
    s->args = ann_xcalloc((size_t)s->nthreads, sizeof *s->args);
    int i = 0;
    for (int c = 0; c < ANN_NCLASS; c++)
        for (int w = 0; w < s->o.cls[c].workers; w++, i++) {
            s->args[i] = (worker_arg){s, (ann_class)c};
            pthread_create(&s->threads[i], NULL, worker_main, &s->args[i]);
        }
    return s;
}

void ann_sched_submit(ann_sched *s, ann_class c, const char *tenant, ann_task_fn fn, void *arg)
{
    task *k = ann_xmalloc(sizeof *k);
    k->fn = fn;
    k->arg = arg;
    k->next = NULL;
    pthread_mutex_lock(&s->mu);
    tq *t = tenant_get(s, tenant ? tenant : "");
    if (t->c[c].tail)
        t->c[c].tail->next = k;
    else
        t->c[c].head = k;
    t->c[c].tail = k;
    if (!t->c[c].on_ring)
        ring_add(s, c, t);
    s->queued[c]++;
    pthread_cond_signal(&s->cv[c]);
    pthread_mutex_unlock(&s->mu);
}

void ann_sched_counts(ann_sched *s, ann_class c, size_t *queued, size_t *running)
{
    pthread_mutex_lock(&s->mu);
    *queued = s->queued[c];
    *running = s->running[c];
    pthread_mutex_unlock(&s->mu);
}

void ann_sched_destroy(ann_sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    for (int c = 0; c < ANN_NCLASS; c++)
        pthread_cond_broadcast(&s->cv[c]);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    for (int c = 0; c < ANN_NCLASS; c++)
        pthread_cond_destroy(&s->cv[c]);
    pthread_mutex_destroy(&s->mu);
    free(s->threads);
    free(s->args);
    free(s);
}
