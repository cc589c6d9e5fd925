/*
 * What the load generators share (bench/load.c, bench/investigator/inv.c): a random number
 * generator, latency samples with nearest-rank percentiles, and the server's CPU time and
 * memory from /proc.
 */
#ifndef ANN_BENCH_BENCHKIT_H
#define ANN_BENCH_BENCHKIT_H

#include <stddef.h>
#include <stdint.h>

/* xorshift64*: *s must not be 0. */
uint64_t rng_next(uint64_t *s);

/* A growable array of latencies in microseconds. */
typedef struct lat {
    uint64_t *v;
    size_t n, cap;
} lat;

void lat_add(lat *l, uint64_t us);
void lat_merge(lat *into, const lat *from);
/* Nearest-rank percentile in milliseconds (sorts the samples); NAN when empty. */
double lat_pct_ms(lat *l, double q);

/* A process as /proc shows it. */
typedef struct proc_sample {
    int ok;
    double cpu_s; /* user + system */
    long hwm_kib; /* peak resident set (VmHWM) */
    long rss_kib;
} proc_sample;

proc_sample proc_read(int pid);
/* This process's own CPU time (user + system), in seconds. */
double self_cpu_s(void);

#endif
