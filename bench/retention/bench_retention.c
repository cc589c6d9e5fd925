/*
 * bench_retention: what one retention pass costs at N logs (docs/storage.md, "Retention").
 *
 *   build/bin/bench_retention [N] [EXPIRED] [DIR]     (defaults: 100000 1000 a temp dir)
 *
 * Makes N logs of one tenant with a 30-day period (durability none: the set-up is not what
 * is measured), EXPIRED of them created 40 days before the others, and reopens the store
 * with fsync on, as the server runs. Then times, with the
 * store's own clock injected: (1) a pass that finds the EXPIRED logs and deletes them (at
 * most 1,000 a pass, the server's default bound), (2) a pass that finds nothing (the scan
 * every idle pass pays), (3) the same with a period on the tenant instead of the logs.
 * Prints the figures with the command that made them; asserts nothing.
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/embedded/embedded.h"
#include "store/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void die(const char *what, const ann_err *err)
{
    fprintf(stderr, "bench_retention: %s: %s\n", what, err->msg);
    exit(1);
}

static void box_done(void *ud, int rc, const ann_err *err)
{
    if (rc != 0)
        die("create", err);
    (void)ud;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    long expired = argc > 2 ? atol(argv[2]) : 1000;
    char tmp[64] = "/tmp/ann-bench-retention-XXXXXX";
    const char *dir = argc > 3 ? argv[3] : mkdtemp(tmp);
    if (n <= 0 || expired < 0 || expired > n || !dir) {
        fprintf(stderr, "usage: bench_retention [N] [EXPIRED] [DIR]\n");
        return 2;
    }
    const int64_t day = 86400LL * 1000000000LL;
    const int64_t t0 = (int64_t)time(NULL) * 1000000000LL;
    ann_store_embedded_opts o;
    ann_store_embedded_opts_init(&o);
    o.durability = ANN_DURABILITY_NONE;
    ann_store *st = NULL;
    ann_err err;
    if (ann_store_embedded_open(dir, &o, &st, &err) != 0)
        die("open", &err);
    uint8_t key[32];
    memset(key, 0x7b, sizeof key);
    ann_tenant t;
    if (ann_store_tenant_create(st, "bench", key, &t, &err) != 0)
        die("tenant", &err);
    double s0 = now_s();
    for (long i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "00000000-0000-4000-8000-%012ld", i);
        ann_log_spec spec = {.tenant_id = t.id,
                             .log_id = id,
                             .now_ns = i < expired ? t0 - 40 * day : t0,
                             .retention_days = 30};
        ann_store_log_create_spec_async(st, &spec, box_done, NULL);
    }
    printf("set-up: %ld logs created in %.1f s\n", n, now_s() - s0);
    /* The passes run as the server runs them: fsync on. */
    ann_store_close(st);
    o.durability = ANN_DURABILITY_FSYNC;
    if (ann_store_embedded_open(dir, &o, &st, &err) != 0)
        die("reopen", &err);

    ann_retention_stats rs;
    size_t total = 0;
    int passes = 0;
    s0 = now_s();
    do {
        if (ann_store_retention_pass(st, t0 + day, day, 1000, &rs, &err) != 0)
            die("pass", &err);
        total += rs.deleted;
        passes++;
    } while (rs.more);
    double t_del = now_s() - s0;
    printf("deleting pass%s: %d pass%s deleted %zu of %ld logs in %.3f s (%.2f ms a log)\n",
           passes == 1 ? "" : "es", passes, passes == 1 ? "" : "es", total, n, t_del,
           total ? t_del * 1e3 / (double)total : 0.0);

    s0 = now_s();
    const int idle = 10;
    for (int i = 0; i < idle; i++)
        if (ann_store_retention_pass(st, t0 + day, day, 1000, &rs, &err) != 0 || rs.deleted)
            die("idle pass", &err);
    printf("idle pass (nothing expired, %ld logs with a period): %.1f ms\n", n - (long)total,
           (now_s() - s0) * 1e3 / idle);

    if (ann_store_tenant_set_retention(st, "bench", 365, &err) != 0)
        die("tenant retention", &err);
    s0 = now_s();
    for (int i = 0; i < idle; i++)
        if (ann_store_retention_pass(st, t0 + day, day, 1000, &rs, &err) != 0 || rs.deleted)
            die("idle pass", &err);
    printf("idle pass with a tenant period as well: %.1f ms\n", (now_s() - s0) * 1e3 / idle);
    printf("command: %s %ld %ld\n", argv[0], n, expired);
    ann_store_close(st);
    if (argc <= 3)
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
