#include "benchkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"

uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

void lat_add(lat *l, uint64_t us)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = ann_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = us;
}

void lat_merge(lat *into, const lat *from)
{
    for (size_t i = 0; i < from->n; i++)
        lat_add(into, from->v[i]);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

double lat_pct_ms(lat *l, double q)
{
    if (!l->n)
        return NAN;
    qsort(l->v, l->n, sizeof *l->v, cmp_u64);
    size_t k = (size_t)ceil(q * (double)l->n);
    if (k < 1)
        k = 1;
    return (double)l->v[k - 1] / 1000.0;
}

proc_sample proc_read(int pid)
{
    proc_sample p = {0};
    char path[64], buf[4096];
    FILE *f;
    if (pid <= 0)
        return p;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if ((f = fopen(path, "r"))) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* Fields after the command name, which may hold spaces: 3 is state,
         * 14 utime and 15 stime in clock ticks. */
        char *q = strrchr(buf, ')');
        unsigned long ut = 0, stt = 0;
        if (q &&
            sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) == 2) {
            p.cpu_s = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
            p.ok = 1;
        }
    }
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if ((f = fopen(path, "r"))) {
        while (fgets(buf, sizeof buf, f)) {
            sscanf(buf, "VmHWM: %ld", &p.hwm_kib);
            sscanf(buf, "VmRSS: %ld", &p.rss_kib);
        }
        fclose(f);
    }
    return p;
}

double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_args(int argc, char **argv, int first, const bench_opt *opts, const char *usage)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            exit(0);
        }
        const bench_opt *o = opts;
        while (o->name && (strncmp(a, "--", 2) != 0 || strcmp(a + 2, o->name) != 0))
            o++;
        if (!o->name || i + 1 >= argc) {
            fprintf(stderr, "%s: %s\n", a, o->name ? "needs a value" : "unknown option");
            fputs(usage, stderr);
            exit(2);
        }
        const char *v = argv[++i];
        switch (o->kind) {
        case BOPT_INT:
            *(int *)o->dst = atoi(v);
            break;
        case BOPT_U64:
            *(uint64_t *)o->dst = strtoull(v, NULL, 10);
            break;
        case BOPT_DBL:
            *(double *)o->dst = atof(v);
            break;
        case BOPT_STR:
            *(const char **)o->dst = v;
            break;
        }
    }
}
