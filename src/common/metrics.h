/*
 * ann_metrics: a registry of Prometheus series, owned by whoever runs the process
 * (annalsd's main) and handed to the parts that count. No global state: two servers in
 * one process keep two registries.
 *
 * Invariants:
 *  - Series are registered (ann_metrics_counter/_gauge/_histogram) and never removed
 *    before ann_metrics_free: the handles they return stay valid that long.
 *  - The hot path is lock-free: ann_counter_add, ann_gauge_add and ann_histogram_observe
 *    are relaxed atomic operations, and all of them accept NULL (metrics off: a part
 *    given no registry keeps NULL handles and counts nothing).
 *  - Registration and rendering take the registry's lock; collectors (values computed at
 *    scrape time: open logs, bytes on disk, consumer lag) run under it, so a collector
 *    must not register series or call ann_metrics_render.
 */
#ifndef ANN_COMMON_METRICS_H
#define ANN_COMMON_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

typedef struct ann_metrics ann_metrics;

typedef struct ann_counter {
    _Atomic uint64_t v;
} ann_counter;

typedef struct ann_gauge {
    _Atomic int64_t v;
} ann_gauge;

#define ANN_HIST_MAX_BOUNDS 24

typedef struct ann_histogram {
    size_t n; /* bounds; counts has n + 1 slots (the last one: +Inf) */
    uint64_t bounds[ANN_HIST_MAX_BOUNDS];
    _Atomic uint64_t counts[ANN_HIST_MAX_BOUNDS + 1]; /* per bucket, not cumulative */
    _Atomic uint64_t sum;                             /* in the observed unit */
    double scale; /* rendered value = observed * scale (ns -> s: 1e-9) */
} ann_histogram;

ann_metrics *ann_metrics_new(void);
/* Frees the registry and every series. Collectors must be gone (unregistered) or never
 * called again. NULL is fine. */
void ann_metrics_free(ann_metrics *m);

/* Registers one series of the family `name` (created on first use, with `help`) with
 * `labels` in Prometheus form without braces (`method="X",code="OK"`, or "" for none).
 * Registering the same name and labels twice returns the same series. NULL when m is
 * NULL. The strings are copied. */
ann_counter *ann_metrics_counter(ann_metrics *m, const char *name, const char *help,
                                 const char *labels);
ann_gauge *ann_metrics_gauge(ann_metrics *m, const char *name, const char *help,
                             const char *labels);
/* bounds: n (<= ANN_HIST_MAX_BOUNDS) increasing upper bounds in the observed unit. */
ann_histogram *ann_metrics_histogram(ann_metrics *m, const char *name, const char *help,
                                     const char *labels, const uint64_t *bounds, size_t n,
                                     double scale);

static inline void ann_counter_add(ann_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

static inline void ann_gauge_add(ann_gauge *g, int64_t n)
{
    if (g)
        atomic_fetch_add_explicit(&g->v, n, memory_order_relaxed);
}

static inline void ann_gauge_set(ann_gauge *g, int64_t v)
{
    if (g)
        atomic_store_explicit(&g->v, v, memory_order_relaxed);
}

static inline void ann_histogram_observe(ann_histogram *h, uint64_t v)
{
    if (!h)
        return;
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

/* Writes values computed at scrape time (see the top). */
typedef struct ann_metrics_out ann_metrics_out;
typedef void (*ann_metrics_collect_fn)(void *ud, ann_metrics_out *out);

/* Starts a family in the output: `type` is "counter" or "gauge". */
void ann_metrics_out_family(ann_metrics_out *out, const char *name, const char *type,
                            const char *help);
/* One sample of the family just started (labels as above, "" for none). */
void ann_metrics_out_sample(ann_metrics_out *out, const char *name, const char *labels,
                            double value);

/* Adds a collector (called in registration order, after the registered series). */
void ann_metrics_collector(ann_metrics *m, ann_metrics_collect_fn fn, void *ud);
/* Removes every collector registered with `ud`; after it returns none of them runs. */
void ann_metrics_collector_remove(ann_metrics *m, void *ud);

/* The Prometheus text format (version 0.0.4) of everything, appended to out. */
void ann_metrics_render(ann_metrics *m, ann_buf *out);

/* Bounds for latencies in nanoseconds (100 us .. 10 s), scale 1e-9. */
extern const uint64_t ann_metrics_latency_bounds_ns[];
extern const size_t ann_metrics_latency_bounds_n;

/* Monotonic clock in nanoseconds, for latencies. */
uint64_t ann_metrics_now_ns(void);

#endif
