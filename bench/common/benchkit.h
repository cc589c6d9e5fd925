/*
 * What the load generators share (bench/load.c, bench/investigator/inv.c,
 * bench/distributed/dist.c): a random number generator, latency samples with nearest-rank
 * percentiles, the server's CPU time and memory from /proc, and option parsing.
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

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Command-line options of the tools: "--name value" pairs, parsed by one table. */
typedef enum bench_opt_kind { BOPT_INT, BOPT_U64, BOPT_DBL, BOPT_STR } bench_opt_kind;
typedef struct bench_opt {
    const char *name; /* without the leading "--" */
    bench_opt_kind kind;
    void *dst; /* int *, uint64_t *, double * or const char ** */
} bench_opt;

/* Parses argv[first..] against opts (ended by a NULL name). --help prints usage to stdout
 * and exits 0; an unknown option or a missing value prints usage to stderr and exits 2. */
void bench_args(int argc, char **argv, int first, const bench_opt *opts, const char *usage);

#endif
