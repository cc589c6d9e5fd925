/*
 * bench_metrics_hotpath: what metrics add to one RPC and one group commit, measured on the
 * operations themselves (docs/operations.md, "Cost"): per RPC the server does two
 * ann_metrics_now_ns, two counter adds and one histogram observation (ann_server's
 * on_new/count_finish); per round the store does two ann_metrics_now_ns, three counter
 * adds and three observations (commit.c). THREADS threads do it at once on shared series,
 * as the workers do. Prints nanoseconds per RPC-worth and per round-worth of updates.
 *   build/bin/bench_metrics_hotpath [THREADS] [ITERATIONS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/metrics.h"

typedef struct series {
    ann_counter *started, *handled, *entries, *bytes, *rounds;
    ann_histogram *seconds, *fsync, *batch, *batch_entries;
    long iters;
} series;

static void *rpc_worker(void *p)
{
    series *s = p;
    for (long i = 0; i < s->iters; i++) {
        uint64_t t0 = ann_metrics_now_ns();
        ann_counter_add(s->started, 1);
        ann_counter_add(s->handled, 1);
        ann_histogram_observe(s->seconds, ann_metrics_now_ns() - t0);
    }
    return NULL;
}

static void *round_worker(void *p)
{
    series *s = p;
    for (long i = 0; i < s->iters; i++) {
        uint64_t t0 = ann_metrics_now_ns();
        ann_histogram_observe(s->fsync, ann_metrics_now_ns() - t0);
        ann_counter_add(s->entries, 1000);
        ann_counter_add(s->bytes, 250000);
        ann_counter_add(s->rounds, 1);
        ann_histogram_observe(s->batch, 4);
        ann_histogram_observe(s->batch_entries, 4000);
    }
    return NULL;
}

static double run(void *(*fn)(void *), series *s, int threads)
{
    pthread_t t[64];
    uint64_t t0 = ann_metrics_now_ns();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, fn, s) != 0)
            abort();
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    /* wall time per operation per thread: what one worker pays */
    return (double)(ann_metrics_now_ns() - t0) / (double)s->iters;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long iters = argc > 2 ? atol(argv[2]) : 5000000;
    if (threads < 1 || threads > 64 || iters < 1)
        return 2;
    static const uint64_t sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384};
    ann_metrics *m = ann_metrics_new();
    series s = {
        .started = ann_metrics_counter(m, "s_total", "", "m=\"w\""),
        .handled = ann_metrics_counter(m, "h_total", "", "m=\"w\",code=\"OK\""),
        .entries = ann_metrics_counter(m, "e_total", "", ""),
        .bytes = ann_metrics_counter(m, "b_total", "", ""),
        .rounds = ann_metrics_counter(m, "r_total", "", ""),
        .seconds =
            ann_metrics_histogram(m, "l_seconds", "", "m=\"w\"", ann_metrics_latency_bounds_ns,
                                  ann_metrics_latency_bounds_n, 1e-9),
        .fsync = ann_metrics_histogram(m, "f_seconds", "", "", ann_metrics_latency_bounds_ns,
                                       ann_metrics_latency_bounds_n, 1e-9),
        .batch = ann_metrics_histogram(m, "q", "", "", sizes, sizeof sizes / sizeof sizes[0], 1),
        .batch_entries =
            ann_metrics_histogram(m, "qe", "", "", sizes, sizeof sizes / sizeof sizes[0], 1),
        .iters = iters};
    double rpc = run(rpc_worker, &s, threads), round = run(round_worker, &s, threads);
    ann_buf b = ANN_BUF_INIT;
    uint64_t t0 = ann_metrics_now_ns();
    ann_metrics_render(m, &b);
    double render_us = (double)(ann_metrics_now_ns() - t0) / 1e3;
    printf("threads %d, %ld iterations each\n", threads, iters);
    printf("per_rpc_ns %.1f\nper_round_ns %.1f\nrender_us %.1f (%zu bytes, no collectors)\n", rpc,
           round, render_us, b.len);
    printf("RESULT threads=%d per_rpc_ns=%.1f per_round_ns=%.1f\n", threads, rpc, round);
    ann_buf_release(&b);
    ann_metrics_free(m);
    return 0;
}
