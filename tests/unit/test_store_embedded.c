/*
 * Unit tests of the embedded store (src/store/embedded) through the store
 * port: every rule of store.h and embedded.h, concurrency, crash recovery
 * (truncation at every byte of the last frame, flipped bytes, kill -9 of a
 * writing child), revoke purge, delete, isolation, listing, watchers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "domain/integrity.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "domain/limits.h"
#include "store/embedded/block.h"
#include "store/embedded/embedded.h"
#include "store/embedded/internal.h" /* emb_keys_stats */
#include "store/embedded/hash.h"
#include "store/embedded/logfile.h"
#include "store/embedded/meta.h"

/* ---- fixtures ---------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    ann_store *s;
    ann_tenant t, t2;
    uint8_t key[32], key2[32];
} fx;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static ann_store *open_store(const char *dir, ann_durability d)
{
    ann_store_embedded_opts o;
    ann_store_embedded_opts_init(&o);
    o.no_blocks = true; /* these tests read and damage the data file itself */
    o.durability = d;
    ann_store *s = NULL;
    ann_err err = {0};
    int rc = ann_store_embedded_open(dir, &o, &s, &err);
    if (rc != 0)
        fprintf(stderr, "open: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return s;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ann-store-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
    memset(f->key, 0xA1, 32);
    memset(f->key2, 0xB2, 32);
    ann_err err;
    assert_int_equal(ann_store_tenant_create(f->s, "acme", f->key, &f->t, &err), 0);
    assert_int_equal(ann_store_tenant_create(f->s, "globex", f->key2, &f->t2, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ann_store_close(f->s);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static void reopen(fx *f)
{
    ann_store_close(f->s);
    f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
}

static void make_log(fx *f, const char *log)
{
    ann_err err;
    int rc = ann_store_log_create(f->s, f->t.id, log, (const uint8_t *)"L", 1, 1000, &err);
    if (rc)
        fprintf(stderr, "log_create: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

/* Appends n entries with insert ids "<prefix>-<i>", bodies "body-<prefix>-<i>"
 * and the given times (or time = i). Returns the ids. */
static int append_n(ann_store *s, const char *tenant, const char *log, const char *prefix, size_t n,
                    const int64_t *times, uint64_t *ids, size_t *n_new, ann_err *err)
{
    ann_entry *es = calloc(n, sizeof *es);
    char(*iids)[48] = calloc(n, 48);
    char(*bodies)[64] = calloc(n, 64);
    for (size_t i = 0; i < n; i++) {
        snprintf(iids[i], 48, "%s-%zu", prefix, i);
        snprintf(bodies[i], 64, "body-%s-%zu", prefix, i);
        es[i].time_ns = times ? times[i] : (int64_t)i;
        es[i].insert_time_ns = 42;
        es[i].severity = 300;
        es[i].insert_id = iids[i];
        es[i].insert_id_len = strlen(iids[i]);
        es[i].body = (const uint8_t *)bodies[i];
        es[i].body_len = strlen(bodies[i]);
    }
    ann_append a = {.tenant_id = tenant, .log_id = log, .entries = es, .n = n, .ids_out = ids};
    int rc = ann_store_append(s, &a, err);
    if (n_new)
        *n_new = a.n_new_out;
    free(es);
    free(iids);
    free(bodies);
    return rc;
}

static uint64_t entry_count(fx *f, const char *log)
{
    ann_log_meta m;
    ann_err err;
    int rc = ann_store_log_get(f->s, f->t.id, log, &m, &err);
    if (rc)
        fprintf(stderr, "log_get: %s\n", err.msg);
    assert_int_equal(rc, 0);
    uint64_t n = m.entry_count;
    ann_log_meta_release(&m);
    return n;
}

/* Collects entries a visitor sees. */
typedef struct got {
    size_t n, cap;
    uint64_t *ids;
    int64_t *times;
    uint32_t *flags;
    char **bodies;
    char **iids;
    size_t stop_after; /* 0: never */
} got;

static int collect(const ann_entry *e, void *ud)
{
    got *g = ud;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->ids = realloc(g->ids, g->cap * sizeof *g->ids);
        g->times = realloc(g->times, g->cap * sizeof *g->times);
        g->flags = realloc(g->flags, g->cap * sizeof *g->flags);
        g->bodies = realloc(g->bodies, g->cap * sizeof *g->bodies);
        g->iids = realloc(g->iids, g->cap * sizeof *g->iids);
    }
    g->ids[g->n] = e->entry_id;
    g->times[g->n] = e->time_ns;
    g->flags[g->n] = e->flags;
    /* The store appends the entry's integrity field (domain/integrity.h): compare the rest. */
    g->bodies[g->n] = strndup((const char *)e->body, ann_integrity_strip(e->body, e->body_len));
    g->iids[g->n] = strndup(e->insert_id, e->insert_id_len);
    g->n++;
    return g->stop_after && g->n >= g->stop_after;
}

static void got_free(got *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->bodies[i]);
        free(g->iids[i]);
    }
    free(g->ids);
    free(g->times);
    free(g->flags);
    free(g->bodies);
    free(g->iids);
    memset(g, 0, sizeof *g);
}

static void read_all(fx *f, const char *log, got *g)
{
    ann_err err;
    int rc = ann_store_read_after(f->s, f->t.id, log, 0, 0, collect, g, &err);
    if (rc)
        fprintf(stderr, "read_after: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

/* Does any file under dir contain the bytes? */
static bool dir_contains(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *de;
    assert_non_null(d);
    while (!found && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            found = dir_contains(p, needle);
        } else if (S_ISREG(st.st_mode) && st.st_size > 0) {
            FILE *fp = fopen(p, "rb");
            char *buf = malloc((size_t)st.st_size);
            size_t n = fread(buf, 1, (size_t)st.st_size, fp);
            fclose(fp);
            found = memmem(buf, n, needle, strlen(needle)) != NULL;
            free(buf);
        }
    }
    closedir(d);
    return found;
}

static void data_path(fx *f, const char *log, char *out, size_t cap)
{
    snprintf(out, cap, "%s/logs/%s/%s.dat", f->dir, f->t.id, log);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, len, fp), len);
    fclose(fp);
}

/* Creates a tenant from another process (an admin-only open, as `annalsd
 * tenant create` does) while f->s serves. */
static void tenant_create_elsewhere(fx *f, const char *name, const uint8_t key[32])
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ann_store_embedded_opts o;
        ann_store_embedded_opts_init(&o);
        o.no_blocks = true; /* these tests read and damage the data file itself */
        o.admin_only = true;
        ann_store *a = NULL;
        ann_tenant t;
        ann_err e;
        if (ann_store_embedded_open(f->dir, &o, &a, &e) != 0 ||
            ann_store_tenant_create(a, name, key, &t, &e) != 0)
            _exit(1);
        ann_store_close(a);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Creates (roles != 0) or revokes (key_id set) a key from another process, as `annalsd
 * key create|revoke` does beside a serving store. */
static void key_elsewhere(fx *f, const char *tenant, uint32_t roles, const uint8_t hash[32],
                          const char *key_id)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ann_store_embedded_opts o;
        ann_store_embedded_opts_init(&o);
        o.no_blocks = true;
        o.admin_only = true;
        ann_store *a = NULL;
        ann_err e;
        ann_key k;
        if (ann_store_embedded_open(f->dir, &o, &a, &e) != 0)
            _exit(1);
        ann_key_spec sp = {.tenant_name = tenant, .name = "other", .roles = roles, .now_ns = 1};
        if (hash)
            memcpy(sp.key_hash, hash, 32);
        int rc = key_id ? ann_store_key_revoke(a, key_id, 2, &k, &e)
                        : ann_store_key_create(a, &sp, &k, &e);
        ann_store_close(a);
        _exit(rc == 0 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- basics ------------------------------------------------------------ */

static void test_secret_stable(void **state)
{
    fx *f = *state;
    uint8_t a[32], b[32], zero[32] = {0};
    ann_err err;
    assert_int_equal(ann_store_secret(f->s, a, &err), 0);
    assert_memory_not_equal(a, zero, 32);
    reopen(f);
    assert_int_equal(ann_store_secret(f->s, b, &err), 0);
    assert_memory_equal(a, b, 32);
}

static void test_second_server_refused_admin_allowed(void **state)
{
    fx *f = *state;
    ann_store *s2 = NULL, *adm = NULL;
    ann_err err;
    assert_int_not_equal(ann_store_embedded_open(f->dir, NULL, &s2, &err), 0);
    assert_int_equal(err.code, ANN_EUNAVAIL);
    assert_null(s2);

    ann_store_embedded_opts o;
    ann_store_embedded_opts_init(&o);
    o.no_blocks = true; /* these tests read and damage the data file itself */
    o.admin_only = true;
    assert_int_equal(ann_store_embedded_open(f->dir, &o, &adm, &err), 0);
    uint8_t k3[32];
    memset(k3, 0xC3, 32);
    ann_tenant t3, found;
    assert_int_equal(ann_store_tenant_create(adm, "initech", k3, &t3, &err), 0);
    /* The admin handle does nothing else. */
    assert_int_not_equal(ann_store_log_create(adm, t3.id, "x", NULL, 0, 1, &err), 0);
    assert_int_equal(err.code, ANN_EINVAL);
    ann_log_meta m;
    assert_int_not_equal(ann_store_log_get(adm, f->t.id, "x", &m, &err), 0);
    assert_int_equal(err.code, ANN_EINVAL);
    uint8_t s1[32], s2b[32];
    assert_int_equal(ann_store_secret(adm, s1, &err), 0);
    assert_int_equal(ann_store_secret(f->s, s2b, &err), 0);
    assert_memory_equal(s1, s2b, 32);
    ann_store_close(adm);

    /* The running server finds the tenant another handle created. */
    assert_int_equal(ann_store_tenant_by_key(f->s, k3, &found, &err), 0);
    assert_string_equal(found.id, t3.id);
    assert_string_equal(found.name, "initech");

    /* And one another process created. */
    uint8_t k4[32];
    memset(k4, 0xD4, 32);
    tenant_create_elsewhere(f, "hooli", k4);
    assert_int_equal(ann_store_tenant_by_key(f->s, k4, &found, &err), 0);
    assert_string_equal(found.name, "hooli");
}

static void test_tenants(void **state)
{
    fx *f = *state;
    ann_tenant t;
    ann_err err;
    uint8_t k[32];
    memset(k, 0x77, 32);
    assert_int_equal(ann_store_tenant_by_key(f->s, f->key, &t, &err), 0);
    assert_string_equal(t.id, f->t.id);
    assert_string_equal(t.name, "acme");
    assert_int_equal(strlen(t.id), ANN_UUID_LEN);
    assert_int_not_equal(ann_store_tenant_by_key(f->s, k, &t, &err), 0);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_int_not_equal(ann_store_tenant_create(f->s, "acme", k, &t, &err), 0);
    assert_int_equal(err.code, ANN_EEXISTS);
    assert_int_not_equal(ann_store_tenant_create(f->s, "", k, &t, &err), 0);
    assert_int_equal(err.code, ANN_EINVAL);
}

/* A key revoked by another process (`annalsd key revoke` beside the server) is refused
 * by the serving store at its next lookup, although it was cached; the other keys go on
 * working; the last use is recorded. */
static void test_key_revoked_elsewhere(void **state)
{
    fx *f = *state;
    ann_tenant t;
    ann_err err;
    uint8_t h[32];
    memset(h, 0xC1, 32);
    key_elsewhere(f, "acme", ANN_ROLE_READER, h, NULL);
    for (int i = 0; i < 2; i++) { /* the second from the cache */
        assert_int_equal(ann_store_tenant_by_key(f->s, h, &t, &err), 0);
        assert_string_equal(t.key_name, "other");
        assert_int_equal(t.roles, ANN_ROLE_READER);
    }
    assert_int_equal(ann_store_tenant_by_key(f->s, f->key, &t, &err), 0);
    char id[ANN_UUID_LEN + 1];
    assert_int_equal(ann_store_tenant_by_key(f->s, h, &t, &err), 0);
    snprintf(id, sizeof id, "%s", t.key_id);
    key_elsewhere(f, "acme", 0, NULL, id);
    assert_int_not_equal(ann_store_tenant_by_key(f->s, h, &t, &err), 0);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_int_equal(ann_store_tenant_by_key(f->s, f->key, &t, &err), 0);
    assert_string_equal(t.key_name, ANN_ADMIN_KEY_NAME);
    assert_int_equal(ann_store_tenant_by_key(f->s, f->key2, &t, &err), 0);
    assert_string_equal(t.name, "globex");
    /* Revoked in this process: at once too. */
    assert_int_equal(ann_store_tenant_by_key(f->s, f->key2, &t, &err), 0);
    assert_int_equal(ann_store_key_revoke(f->s, t.key_id, 3, NULL, &err), 0);
    assert_int_not_equal(ann_store_tenant_by_key(f->s, f->key2, &t, &err), 0);
    assert_int_equal(err.code, ANN_EUNAUTH);
}

typedef struct used_rows {
    int64_t admin_used, other_used;
} used_rows;

static int take_used(const ann_key *k, void *ud)
{
    used_rows *u = ud;
    if (strcmp(k->name, ANN_ADMIN_KEY_NAME) == 0)
        u->admin_used = k->last_used_ns;
    else
        u->other_used = k->last_used_ns;
    return 0;
}

/* The last use is written at the first use, then at most once a minute: a second use
 * right after leaves the recorded time as it was. */
static void test_key_last_use(void **state)
{
    fx *f = *state;
    ann_tenant t;
    ann_err err;
    uint8_t h[32];
    memset(h, 0xC2, 32);
    key_elsewhere(f, "acme", ANN_ROLE_WRITER, h, NULL);
    used_rows u = {0};
    assert_int_equal(ann_store_key_list(f->s, "acme", take_used, &u, &err), 0);
    assert_int_equal(u.other_used, 0);
    assert_int_equal(ann_store_tenant_by_key(f->s, h, &t, &err), 0);
    assert_int_equal(ann_store_key_list(f->s, "acme", take_used, &u, &err), 0);
    assert_true(u.other_used > 0);
    int64_t first = u.other_used;
    for (int i = 0; i < 100; i++)
        assert_int_equal(ann_store_tenant_by_key(f->s, h, &t, &err), 0);
    assert_int_equal(ann_store_key_list(f->s, "acme", take_used, &u, &err), 0);
    assert_int_equal(u.other_used, first);
}

/* tenant_by_key is answered from memory once a key is known; unknown keys
 * are never cached; a tenant another process creates is still found; the
 * cache stays within its bound. */
static void test_key_cache(void **state)
{
    fx *f = *state;
    ann_tenant t;
    ann_err err;
    size_t entries;
    uint64_t hits, misses;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ann_store_tenant_by_key(f->s, f->key, &t, &err), 0);
        assert_string_equal(t.id, f->t.id);
        assert_string_equal(t.name, "acme");
    }
    emb_keys_stats(f->s, &entries, &hits, &misses);
    assert_int_equal(entries, 1);
    assert_int_equal(misses, 1);
    assert_int_equal(hits, 2);

    /* Random keys: each a miss answered UNAUTHENTICATED, none kept. */
    for (int i = 0; i < 1000; i++) {
        uint8_t k[32];
        memset(k, 0, sizeof k);
        memcpy(k, &i, sizeof i);
        k[31] = 0x5a;
        assert_int_not_equal(ann_store_tenant_by_key(f->s, k, &t, &err), 0);
        assert_int_equal(err.code, ANN_EUNAUTH);
    }
    emb_keys_stats(f->s, &entries, &hits, &misses);
    assert_int_equal(entries, 1);
    assert_int_equal(misses, 1001);

    /* A tenant made by another process while this one serves. */
    uint8_t k5[32];
    memset(k5, 0xE5, 32);
    tenant_create_elsewhere(f, "umbrella", k5);
    assert_int_equal(ann_store_tenant_by_key(f->s, k5, &t, &err), 0);
    assert_string_equal(t.name, "umbrella");
    assert_int_equal(ann_store_tenant_by_key(f->s, k5, &t, &err), 0);
    emb_keys_stats(f->s, &entries, &hits, &misses);
    assert_int_equal(entries, 2);
    assert_int_equal(hits, 3);

    /* More tenants than the cache holds: every lookup still right, the
     * cache bounded. (No fsync: 5,000 tenant inserts.) */
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/ann-keys-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ann_store *s = open_store(dir, ANN_DURABILITY_NONE);
    enum { N = 5000 };
    static ann_tenant ts[N];
    for (int i = 0; i < N; i++) {
        uint8_t k[32] = {0};
        char name[32];
        memcpy(k, &i, sizeof i);
        snprintf(name, sizeof name, "t%d", i);
        assert_int_equal(ann_store_tenant_create(s, name, k, &ts[i], &err), 0);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            uint8_t k[32] = {0};
            memcpy(k, &i, sizeof i);
            assert_int_equal(ann_store_tenant_by_key(s, k, &t, &err), 0);
            assert_string_equal(t.id, ts[i].id);
            assert_string_equal(t.name, ts[i].name);
        }
    }
    emb_keys_stats(s, &entries, &hits, &misses);
    assert_true(entries <= 4096);
    assert_true(entries >= 4096 / 2);
    assert_true(hits > 0);
    ann_store_close(s);
    rm_rf(dir);
}

static void test_log_create_get(void **state)
{
    fx *f = *state;
    ann_err err;
    ann_log_meta m;
    const uint8_t labels[] = {1, 2, 3, 0, 4};
    assert_int_equal(ann_store_log_create(f->s, f->t.id, "log-1", labels, sizeof labels, 777, &err),
                     0);
    assert_int_equal(ann_store_log_get(f->s, f->t.id, "log-1", &m, &err), 0);
    assert_string_equal(m.id, "log-1");
    assert_int_equal(m.create_time_ns, 777);
    assert_int_equal(m.entry_count, 0);
    assert_int_equal(m.labels_len, sizeof labels);
    assert_memory_equal(m.labels, labels, sizeof labels);
    ann_log_meta_release(&m);
    assert_int_not_equal(ann_store_log_create(f->s, f->t.id, "log-1", NULL, 0, 1, &err), 0);
    assert_int_equal(err.code, ANN_EEXISTS);
    assert_int_not_equal(ann_store_log_create(f->s, f->t.id, "../etc", NULL, 0, 1, &err), 0);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_int_not_equal(ann_store_log_create(f->s, "no-such-tenant", "l", NULL, 0, 1, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    /* A caller's code: its message reaches the client, so no internal id. */
    assert_null(strstr(err.msg, "no-such-tenant"));
    assert_int_not_equal(ann_store_log_get(f->s, f->t.id, "log-2", &m, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    reopen(f);
    assert_int_equal(ann_store_log_get(f->s, f->t.id, "log-1", &m, &err), 0);
    assert_int_equal(m.create_time_ns, 777);
    assert_memory_equal(m.labels, labels, sizeof labels);
    ann_log_meta_release(&m);
}

static void test_append_dense_and_read(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[100];
    size_t n_new;
    make_log(f, "a");
    assert_int_equal(append_n(f->s, f->t.id, "a", "x", 10, NULL, ids, &n_new, &err), 0);
    assert_int_equal(n_new, 10);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(ids[i], i + 1);
    assert_int_equal(append_n(f->s, f->t.id, "a", "y", 5, NULL, ids, &n_new, &err), 0);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(ids[i], 11 + i);
    assert_int_equal(entry_count(f, "a"), 15);

    got g = {0};
    read_all(f, "a", &g);
    assert_int_equal(g.n, 15);
    for (size_t i = 0; i < g.n; i++)
        assert_int_equal(g.ids[i], i + 1);
    assert_string_equal(g.bodies[0], "body-x-0");
    assert_string_equal(g.iids[12], "y-2");
    assert_int_equal(g.flags[0], 0);
    got_free(&g);

    /* after_id and limit */
    assert_int_equal(ann_store_read_after(f->s, f->t.id, "a", 12, 2, collect, &g, &err), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.ids[0], 13);
    assert_int_equal(g.ids[1], 14);
    got_free(&g);
    assert_int_equal(ann_store_read_after(f->s, f->t.id, "a", 15, 10, collect, &g, &err), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(ann_store_read_after(f->s, f->t.id, "a", 1000, 10, collect, &g, &err), 0);
    assert_int_equal(g.n, 0);
    /* a visitor stopping early is not an error */
    g.stop_after = 3;
    assert_int_equal(ann_store_read_after(f->s, f->t.id, "a", 0, 0, collect, &g, &err), 0);
    assert_int_equal(g.n, 3);
    got_free(&g);

    /* Survives a restart, and numbering continues. */
    reopen(f);
    assert_int_equal(entry_count(f, "a"), 15);
    assert_int_equal(append_n(f->s, f->t.id, "a", "z", 1, NULL, ids, &n_new, &err), 0);
    assert_int_equal(ids[0], 16);
    read_all(f, "a", &g);
    assert_int_equal(g.n, 16);
    assert_string_equal(g.bodies[15], "body-z-0");
    got_free(&g);
}

static void test_dedup(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[8];
    size_t n_new;
    make_log(f, "d");
    assert_int_equal(append_n(f->s, f->t.id, "d", "k", 3, NULL, ids, &n_new, &err), 0);
    /* The same request again: nothing stored, same ids. */
    assert_int_equal(append_n(f->s, f->t.id, "d", "k", 3, NULL, ids, &n_new, &err), 0);
    assert_int_equal(n_new, 0);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[2], 3);
    assert_int_equal(entry_count(f, "d"), 3);

    /* Within one request: [new, dup-of-old, new, dup-of-first-in-request]. */
    ann_entry es[4] = {0};
    const char *iid[4] = {"n1", "k-1", "n2", "n1"};
    for (int i = 0; i < 4; i++) {
        es[i].insert_id = iid[i];
        es[i].insert_id_len = strlen(iid[i]);
        es[i].body = (const uint8_t *)"b";
        es[i].body_len = 1;
        es[i].time_ns = 5;
    }
    ann_append a = {.tenant_id = f->t.id, .log_id = "d", .entries = es, .n = 4, .ids_out = ids};
    assert_int_equal(ann_store_append(f->s, &a, &err), 0);
    assert_int_equal(a.n_new_out, 2);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], 5);
    assert_int_equal(ids[3], 4);
    assert_int_equal(entry_count(f, "d"), 5);

    /* An insert_id is per log: another log takes it. */
    make_log(f, "d2");
    assert_int_equal(append_n(f->s, f->t.id, "d2", "k", 3, NULL, ids, &n_new, &err), 0);
    assert_int_equal(n_new, 3);

    /* For the whole life of the log: after reopen and after revoke. */
    reopen(f);
    uint64_t rv = 2;
    assert_int_equal(ann_store_revoke(f->s, f->t.id, "d", &rv, 1, "me", "why", 9, &err), 0);
    assert_int_equal(append_n(f->s, f->t.id, "d", "k", 3, NULL, ids, &n_new, &err), 0);
    assert_int_equal(n_new, 0);
    assert_int_equal(ids[1], 2);
    assert_int_equal(entry_count(f, "d"), 5);
}

static void test_all_or_nothing(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[3];
    make_log(f, "x");
    ann_entry es[3] = {0};
    es[0].insert_id = "a";
    es[0].insert_id_len = 1;
    es[1].insert_id = "";
    es[1].insert_id_len = 0; /* invalid */
    es[2].insert_id = "c";
    es[2].insert_id_len = 1;
    ann_append a = {.tenant_id = f->t.id, .log_id = "x", .entries = es, .n = 3, .ids_out = ids};
    assert_int_not_equal(ann_store_append(f->s, &a, &err), 0);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "entries[1]"));
    assert_int_equal(entry_count(f, "x"), 0);
    /* Unknown log: nothing. */
    a.log_id = "nope";
    es[1].insert_id = "b";
    es[1].insert_id_len = 1;
    assert_int_not_equal(ann_store_append(f->s, &a, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
}

static void expect_nf(int rc, const ann_err *err, const char *want_msg)
{
    assert_int_not_equal(rc, 0);
    assert_int_equal(err->code, ANN_ENOTFOUND);
    assert_string_equal(err->msg, want_msg);
}

static void noop_watch(void *ud)
{
    (void)ud;
}

static void test_isolation(void **state)
{
    fx *f = *state;
    ann_err err, missing;
    uint64_t ids[2];
    ann_log_meta m;
    got g = {0};
    ann_list_query q = {.start_ns = INT64_MIN, .end_ns = INT64_MAX};
    make_log(f, "mine");
    assert_int_equal(append_n(f->s, f->t.id, "mine", "p", 2, NULL, ids, NULL, &err), 0);

    /* What a missing log says, for tenant 2. */
    char nf[256];
    assert_int_not_equal(ann_store_log_get(f->s, f->t2.id, "zzz", &m, &missing), 0);
    assert_int_equal(missing.code, ANN_ENOTFOUND);
    /* The message names the log asked for; build the one for "mine". */
    assert_int_not_equal(ann_store_log_get(f->s, f->t2.id, "mine", &m, &err), 0);
    snprintf(nf, sizeof nf, "%s", err.msg);
    {
        ann_err e2;
        ann_store_log_get(f->s, f->t.id, "mine-missing", &m, &e2);
        /* same format: only the id differs */
        char a[256], b[256];
        snprintf(a, sizeof a, "%s", e2.msg);
        snprintf(b, sizeof b, "%s", nf);
        char *pa = strstr(a, "mine-missing");
        char *pb = strstr(b, "mine");
        assert_non_null(pa);
        assert_non_null(pb);
        assert_int_equal(pa - a, pb - b);
        assert_string_equal(pa + strlen("mine-missing"), pb + strlen("mine"));
    }
    expect_nf(append_n(f->s, f->t2.id, "mine", "q", 1, NULL, ids, NULL, &err), &err, nf);
    expect_nf(ann_store_list(f->s, f->t2.id, "mine", &q, collect, &g, NULL, &err), &err, nf);
    expect_nf(ann_store_read_after(f->s, f->t2.id, "mine", 0, 0, collect, &g, &err), &err, nf);
    uint64_t one = 1;
    expect_nf(ann_store_revoke(f->s, f->t2.id, "mine", &one, 1, "a", "r", 1, &err), &err, nf);
    ann_watch *w = NULL;
    expect_nf(ann_store_watch(f->s, f->t2.id, "mine", noop_watch, NULL, &w, &err), &err, nf);
    expect_nf(ann_store_log_delete(f->s, f->t2.id, "mine", &err), &err, nf);
    assert_int_equal(g.n, 0);
    /* Nothing happened to it. */
    assert_int_equal(entry_count(f, "mine"), 2);
    read_all(f, "mine", &g);
    assert_int_equal(g.flags[0], 0);
    got_free(&g);
    /* And tenant 2 may have its own log of the same id. */
    assert_int_equal(ann_store_log_create(f->s, f->t2.id, "mine", NULL, 0, 1, &err), 0);
    assert_int_equal(ann_store_log_get(f->s, f->t2.id, "mine", &m, &err), 0);
    assert_int_equal(m.entry_count, 0);
    ann_log_meta_release(&m);
}

/* ---- listing ----------------------------------------------------------- */

typedef struct ref {
    int64_t t;
    uint64_t id;
} ref;

static int ref_cmp(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool odd_filter(const ann_entry *e, void *ud)
{
    (void)ud;
    return e->entry_id % 2 == 1;
}

static void check_query(fx *f, const char *log, const ref *all, size_t n, const ann_list_query *q)
{
    got g = {0};
    ann_err err;
    assert_int_equal(ann_store_list(f->s, f->t.id, log, q, collect, &g, NULL, &err), 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const ref *r = &all[i];
        if (r->t < q->start_ns || r->t >= q->end_ns)
            continue;
        if (q->has_cursor &&
            (r->t < q->cursor_time_ns || (r->t == q->cursor_time_ns && r->id <= q->cursor_id)))
            continue;
        if (q->max_id && r->id > q->max_id)
            continue;
        if (q->filter && r->id % 2 == 0)
            continue;
        if (q->limit && k == q->limit)
            break;
        assert_true(k < g.n);
        assert_int_equal(g.ids[k], r->id);
        assert_int_equal(g.times[k], r->t);
        k++;
    }
    assert_int_equal(g.n, k);
    got_free(&g);
}

static void test_list_order_random(void **state)
{
    fx *f = *state;
    ann_err err;
    enum { N = 3000, B = 100 };
    static int64_t times[N];
    static ref all[N];
    uint64_t ids[B];
    unsigned seed = 12345;
    make_log(f, "l");
    /* Mostly rising times with many out-of-order ones and duplicates. */
    for (size_t i = 0; i < N; i++) {
        int r = rand_r(&seed) % 10;
        times[i] = r < 6 ? (int64_t)i * 10 : (int64_t)(rand_r(&seed) % (N * 10)) - 500;
    }
    for (size_t i = 0; i < N; i += B) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "b%zu", i);
        assert_int_equal(append_n(f->s, f->t.id, "l", prefix, B, times + i, ids, NULL, &err), 0);
        for (size_t k = 0; k < B; k++) {
            all[i + k].t = times[i + k];
            all[i + k].id = ids[k];
            assert_int_equal(ids[k], i + k + 1);
        }
    }
    qsort(all, N, sizeof *all, ref_cmp);
    for (int pass = 0; pass < 2; pass++) {
        ann_list_query q = {.start_ns = INT64_MIN, .end_ns = INT64_MAX};
        check_query(f, "l", all, N, &q);
        for (int t = 0; t < 200; t++) {
            memset(&q, 0, sizeof q);
            q.start_ns = rand_r(&seed) % 3 ? (int64_t)(rand_r(&seed) % (N * 10)) - 600 : INT64_MIN;
            q.end_ns = rand_r(&seed) % 3 ? q.start_ns + rand_r(&seed) % (N * 5) : INT64_MAX;
            if (q.start_ns == INT64_MIN && q.end_ns != INT64_MAX)
                q.end_ns = rand_r(&seed) % (N * 10);
            if (rand_r(&seed) % 2) {
                const ref *c = &all[rand_r(&seed) % N];
                q.has_cursor = true;
                q.cursor_time_ns = c->t;
                q.cursor_id = c->id;
            }
            q.max_id = rand_r(&seed) % 2 ? (uint64_t)(rand_r(&seed) % N) + 1 : 0;
            q.limit = rand_r(&seed) % 2 ? (size_t)(rand_r(&seed) % 50) + 1 : 0;
            if (rand_r(&seed) % 3 == 0)
                q.filter = odd_filter;
            check_query(f, "l", all, N, &q);
        }
        reopen(f); /* the index rebuilt from the file gives the same answers */
    }
}

static void test_list_bounds_cursor_snapshot(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[6];
    int64_t t1[6] = {100, 50, 100, 200, 50, 300};
    make_log(f, "b");
    assert_int_equal(append_n(f->s, f->t.id, "b", "a", 6, t1, ids, NULL, &err), 0);
    /* order: (50,2) (50,5) (100,1) (100,3) (200,4) (300,6) */
    got g = {0};
    ann_list_query q = {.start_ns = 50, .end_ns = 200};
    assert_int_equal(ann_store_list(f->s, f->t.id, "b", &q, collect, &g, NULL, &err), 0);
    assert_int_equal(g.n, 4);
    uint64_t want[] = {2, 5, 1, 3};
    for (int i = 0; i < 4; i++)
        assert_int_equal(g.ids[i], want[i]);
    got_free(&g);

    /* Paging with cursor + snapshot while writes go on: exactly once. */
    q = (ann_list_query){.start_ns = INT64_MIN, .end_ns = INT64_MAX, .limit = 2, .max_id = 6};
    uint64_t seen[16];
    size_t nseen = 0;
    for (int page = 0; page < 10; page++) {
        assert_int_equal(ann_store_list(f->s, f->t.id, "b", &q, collect, &g, NULL, &err), 0);
        for (size_t i = 0; i < g.n; i++)
            seen[nseen++] = g.ids[i];
        if (g.n == 0) {
            got_free(&g);
            break;
        }
        q.has_cursor = true;
        q.cursor_time_ns = g.times[g.n - 1];
        q.cursor_id = g.ids[g.n - 1];
        got_free(&g);
        /* a concurrent writer adds early-time entries: the snapshot hides them */
        char p[8];
        snprintf(p, sizeof p, "w%d", page);
        int64_t early[1] = {0};
        assert_int_equal(append_n(f->s, f->t.id, "b", p, 1, early, ids, NULL, &err), 0);
    }
    assert_int_equal(nseen, 6);
    uint64_t want2[] = {2, 5, 1, 3, 4, 6};
    for (int i = 0; i < 6; i++)
        assert_int_equal(seen[i], want2[i]);

    /* Filter before limit. */
    q = (ann_list_query){
        .start_ns = INT64_MIN, .end_ns = INT64_MAX, .limit = 2, .filter = odd_filter};
    assert_int_equal(ann_store_list(f->s, f->t.id, "b", &q, collect, &g, NULL, &err), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.ids[0] % 2, 1);
    assert_int_equal(g.ids[1] % 2, 1);
    got_free(&g);
}

/* ---- revoke ------------------------------------------------------------ */

typedef struct audit {
    int n;
    ann_meta_revocation last;
} audit;

static void audit_cb(const ann_meta_revocation *r, void *ud)
{
    audit *a = ud;
    a->n++;
    a->last = *r;
}

static void test_revoke_purges(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[5];
    make_log(f, "r");
    assert_int_equal(append_n(f->s, f->t.id, "r", "SECRETTOKEN", 5, NULL, ids, NULL, &err), 0);
    assert_true(dir_contains(f->dir, "body-SECRETTOKEN-1"));
    assert_true(dir_contains(f->dir, "body-SECRETTOKEN-3"));

    /* An unknown id fails the whole call, naming it, and revokes nothing. */
    uint64_t bad[3] = {2, 99, 4};
    assert_int_not_equal(ann_store_revoke(f->s, f->t.id, "r", bad, 3, "a", "r", 1, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "99"));
    uint64_t zero = 0;
    assert_int_not_equal(ann_store_revoke(f->s, f->t.id, "r", &zero, 1, "a", "r", 1, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_true(dir_contains(f->dir, "body-SECRETTOKEN-1"));

    uint64_t rv[3] = {4, 2, 2};
    assert_int_equal(ann_store_revoke(f->s, f->t.id, "r", rv, 3, "alice", "leaked key", 5555, &err),
                     0);
    /* The bytes are gone from the data directory when the call returns. */
    assert_false(dir_contains(f->dir, "body-SECRETTOKEN-1"));
    assert_false(dir_contains(f->dir, "body-SECRETTOKEN-3"));
    assert_true(dir_contains(f->dir, "body-SECRETTOKEN-0"));
    assert_true(dir_contains(f->dir, "body-SECRETTOKEN-2"));

    got g = {0};
    read_all(f, "r", &g);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.flags[1], ANN_ENTRY_REDACTED);
    assert_int_equal(g.flags[3], ANN_ENTRY_REDACTED);
    assert_int_equal(g.flags[0], 0);
    assert_string_equal(g.bodies[1], "");
    assert_string_equal(g.iids[1], "SECRETTOKEN-1"); /* ids and times stay */
    assert_int_equal(g.times[1], 1);
    assert_string_equal(g.bodies[2], "body-SECRETTOKEN-2");
    got_free(&g);

    /* Again: harmless. The reason is kept whole at the API's limit. */
    char reason[ANN_MAX_REASON_BYTES + 1];
    memset(reason, 'w', ANN_MAX_REASON_BYTES);
    memcpy(reason, "again", 5);
    reason[ANN_MAX_REASON_BYTES] = '\0';
    assert_int_equal(ann_store_revoke(f->s, f->t.id, "r", rv, 1, "bob", reason, 6666, &err), 0);
    reopen(f);
    read_all(f, "r", &g);
    assert_int_equal(g.flags[3], ANN_ENTRY_REDACTED);
    assert_string_equal(g.bodies[3], "");
    got_free(&g);

    /* Who, when, why. */
    char p[128];
    snprintf(p, sizeof p, "%s/meta.db", f->dir);
    ann_meta *m;
    assert_int_equal(ann_meta_open(p, true, &m, &err), 0);
    audit a = {0};
    assert_int_equal(ann_meta_revocations(m, f->t.id, "r", audit_cb, &a, &err), 0);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.last.actor, "bob");
    assert_string_equal(a.last.reason, reason);
    assert_int_equal(a.last.time_ns, 6666);
    assert_true(a.last.applied);
    ann_meta_free(m);
}

/* A crash after the audit record but before (or during) the overwrite: the
 * next open finishes the revocation. */
static void test_revoke_recovery(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[5];
    char path[256];
    make_log(f, "rr");
    assert_int_equal(append_n(f->s, f->t.id, "rr", "PENDINGSECRET", 5, NULL, ids, NULL, &err), 0);
    make_log(f, "rr2");
    assert_int_equal(append_n(f->s, f->t.id, "rr2", "other", 2, NULL, ids, NULL, &err), 0);
    ann_store_close(f->s);
    f->s = NULL;

    /* The audit record, as revoke writes it first. */
    char p[128];
    snprintf(p, sizeof p, "%s/meta.db", f->dir);
    ann_meta *m;
    assert_int_equal(ann_meta_open(p, true, &m, &err), 0);
    int64_t rowid;
    uint64_t rv[3] = {2, 3, 4};
    assert_int_equal(
        ann_meta_revoke_insert(m, f->t.id, "rr", rv, 3, "eve", "crash", 1, &rowid, &err), 0);
    ann_meta_free(m);
    /* A torn overwrite of entry 3: part of its body zeroed, checksum stale. */
    data_path(f, "rr", path, sizeof path);
    size_t len;
    uint8_t *b = slurp(path, &len);
    uint8_t *hit = memmem(b, len, "body-PENDINGSECRET-2", 20);
    assert_non_null(hit);
    memset(hit, 0, 5);
    /* A torn overwrite of entry 4 (power cut): the new header (redacted,
     * body_len 0, its checksum) reached the disk, the zeroed body did not. */
    hit = memmem(b, len, "body-PENDINGSECRET-3", 20);
    assert_non_null(hit);
    uint8_t *rec = hit - ANN_LF_REC_HDR - strlen("PENDINGSECRET-3");
    uint32_t rec_len = ann_le32_get(rec + 4);
    uint8_t *copy = malloc(rec_len);
    memcpy(copy, rec, rec_len);
    ann_lf_rec_redact(copy, rec_len);
    memcpy(rec, copy, ANN_LF_REC_HDR + strlen("PENDINGSECRET-3"));
    free(copy);
    spit(path, b, len);
    free(b);

    f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
    /* Applied at open: gone before any call touches the log. */
    assert_false(dir_contains(f->dir, "body-PENDINGSECRET-1"));
    /* Entry 3's torn body remnant and entry 4's whole body are gone too: the
     * text is left only once, as the insert_id (which stays). */
    b = slurp(path, &len);
    for (int k = 2; k <= 3; k++) {
        char needle[32];
        snprintf(needle, sizeof needle, "PENDINGSECRET-%d", k);
        size_t count = 0;
        for (uint8_t *q = b; (q = memmem(q, len - (size_t)(q - b), needle, 15)); q++)
            count++;
        assert_int_equal(count, 1);
    }
    free(b);
    assert_true(dir_contains(f->dir, "body-PENDINGSECRET-0"));
    got g = {0};
    read_all(f, "rr", &g);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.flags[1], ANN_ENTRY_REDACTED);
    assert_int_equal(g.flags[2], ANN_ENTRY_REDACTED);
    assert_int_equal(g.flags[3], ANN_ENTRY_REDACTED);
    assert_int_equal(g.flags[4], 0);
    assert_string_equal(g.bodies[4], "body-PENDINGSECRET-4");
    got_free(&g);
}

/* ---- delete ------------------------------------------------------------ */

typedef struct wctx {
    pthread_mutex_t mu;
    int calls;
    bool dead; /* set after unwatch: a call then is a bug */
    bool late_call;
} wctx;

static void count_watch(void *ud)
{
    wctx *w = ud;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    if (w->dead)
        w->late_call = true;
    pthread_mutex_unlock(&w->mu);
}

static void test_delete(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[3];
    char path[256];
    make_log(f, "del");
    assert_int_equal(append_n(f->s, f->t.id, "del", "DELETEME", 3, NULL, ids, NULL, &err), 0);
    wctx wc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ann_watch *w;
    assert_int_equal(ann_store_watch(f->s, f->t.id, "del", count_watch, &wc, &w, &err), 0);
    data_path(f, "del", path, sizeof path);
    assert_int_equal(access(path, F_OK), 0);

    assert_int_equal(ann_store_log_delete(f->s, f->t.id, "del", &err), 0);
    assert_int_equal(wc.calls, 1); /* woken once */
    assert_int_not_equal(access(path, F_OK), 0);
    assert_false(dir_contains(f->dir, "body-DELETEME"));

    ann_err nf;
    ann_log_meta m;
    got g = {0};
    ann_list_query q = {.start_ns = INT64_MIN, .end_ns = INT64_MAX};
    assert_int_not_equal(ann_store_log_get(f->s, f->t.id, "del", &m, &nf), 0);
    assert_int_equal(nf.code, ANN_ENOTFOUND);
    expect_nf(ann_store_read_after(f->s, f->t.id, "del", 0, 0, collect, &g, &err), &err, nf.msg);
    expect_nf(ann_store_list(f->s, f->t.id, "del", &q, collect, &g, NULL, &err), &err, nf.msg);
    expect_nf(append_n(f->s, f->t.id, "del", "x", 1, NULL, ids, NULL, &err), &err, nf.msg);
    uint64_t one = 1;
    expect_nf(ann_store_revoke(f->s, f->t.id, "del", &one, 1, "a", "b", 1, &err), &err, nf.msg);
    expect_nf(ann_store_log_delete(f->s, f->t.id, "del", &err), &err, nf.msg);
    ann_watch *w2;
    expect_nf(ann_store_watch(f->s, f->t.id, "del", count_watch, &wc, &w2, &err), &err, nf.msg);
    /* Not woken again by anything. */
    assert_int_equal(wc.calls, 1);
    ann_store_unwatch(f->s, w);

    reopen(f);
    assert_int_not_equal(ann_store_log_get(f->s, f->t.id, "del", &m, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    /* The id can be used again, starting afresh. */
    make_log(f, "del");
    assert_int_equal(entry_count(f, "del"), 0);
    assert_int_equal(append_n(f->s, f->t.id, "del", "DELETEME", 1, NULL, ids, NULL, &err), 0);
    assert_int_equal(ids[0], 1);
}

static void test_delete_recovery(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[2];
    char path[256];
    make_log(f, "half");
    assert_int_equal(append_n(f->s, f->t.id, "half", "HALFDELETED", 2, NULL, ids, NULL, &err), 0);
    ann_store_close(f->s);
    f->s = NULL;
    /* A crash right after the deletion was decided. */
    char p[128];
    snprintf(p, sizeof p, "%s/meta.db", f->dir);
    ann_meta *m;
    assert_int_equal(ann_meta_open(p, true, &m, &err), 0);
    assert_int_equal(ann_meta_log_set_deleting(m, f->t.id, "half", NULL, &err), 0);
    ann_meta_free(m);
    f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
    data_path(f, "half", path, sizeof path);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_false(dir_contains(f->dir, "HALFDELETED"));
    ann_log_meta lm;
    assert_int_not_equal(ann_store_log_get(f->s, f->t.id, "half", &lm, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
}

/* ---- crash recovery: torn tails and corruption -------------------------- */

static void test_torn_tail_every_offset(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[4];
    char path[256];
    struct stat st;
    make_log(f, "t");
    assert_int_equal(append_n(f->s, f->t.id, "t", "one", 3, NULL, ids, NULL, &err), 0);
    assert_int_equal(append_n(f->s, f->t.id, "t", "two", 2, NULL, ids, NULL, &err), 0);
    data_path(f, "t", path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    size_t acked = (size_t)st.st_size;
    assert_int_equal(append_n(f->s, f->t.id, "t", "three", 3, NULL, ids, NULL, &err), 0);
    ann_store_close(f->s);
    f->s = NULL;
    size_t len;
    uint8_t *full = slurp(path, &len);
    assert_true(len > acked);

    /* Every cut inside the last frame drops that frame whole, nothing else. */
    for (size_t cut = acked; cut < len; cut++) {
        spit(path, full, cut);
        f->s = open_store(f->dir, ANN_DURABILITY_NONE);
        assert_int_equal(entry_count(f, "t"), 5);
        got g = {0};
        read_all(f, "t", &g);
        assert_int_equal(g.n, 5);
        assert_string_equal(g.bodies[4], "body-two-1");
        got_free(&g);
        if (cut % 37 == 0) {
            /* Writing goes on densely after the cut. */
            assert_int_equal(append_n(f->s, f->t.id, "t", "three", 3, NULL, ids, NULL, &err), 0);
            assert_int_equal(ids[0], 6);
            assert_int_equal(ids[2], 8);
        }
        ann_store_close(f->s);
        f->s = NULL;
        assert_int_equal(stat(path, &st), 0);
        assert_true((size_t)st.st_size == acked || cut % 37 == 0);
    }
    spit(path, full, len);
    f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
    assert_int_equal(entry_count(f, "t"), 8);
    free(full);
}

/* Last nonzero byte + 1: where the frames end in a preallocated file. */
static size_t data_end(const uint8_t *b, size_t len)
{
    while (len && b[len - 1] == 0)
        len--;
    return len;
}

/* A busy log keeps zeros preallocated after its end. A power loss can leave
 * any prefix of the last frame's bytes followed by zeros (the file size
 * already covers it): every such state recovers to the acknowledged
 * entries, and the zeros themselves are not damage. */
static void test_prealloc_torn_tail(void **state)
{
    fx *f = *state;
    ann_err err;
    enum { B = 3000 };
    static uint64_t ids[B];
    char path[256];
    ann_store_close(f->s);
    ann_store_embedded_opts o;
    ann_store_embedded_opts_init(&o);
    o.no_blocks = true; /* these tests read and damage the data file itself */
    o.prealloc = true;
    assert_int_equal(ann_store_embedded_open(f->dir, &o, &f->s, &err), 0);
    make_log(f, "p");
    assert_int_equal(append_n(f->s, f->t.id, "p", "one", B, NULL, ids, NULL, &err), 0);
    assert_int_equal(append_n(f->s, f->t.id, "p", "two", B, NULL, ids, NULL, &err), 0);
    data_path(f, "p", path, sizeof path);
    size_t len;
    uint8_t *b = slurp(path, &len);
    size_t acked = data_end(b, len);
    free(b);
    assert_true(len > acked); /* preallocated */
    assert_int_equal(append_n(f->s, f->t.id, "p", "three", B, NULL, ids, NULL, &err), 0);
    /* Clean reopen: zeros are not a torn tail, nothing is lost. */
    ann_store_close(f->s);
    assert_int_equal(ann_store_embedded_open(f->dir, &o, &f->s, &err), 0);
    assert_int_equal(entry_count(f, "p"), 3 * B);
    ann_store_close(f->s);
    f->s = NULL;
    uint8_t *full = slurp(path, &len);
    size_t end = data_end(full, len);
    assert_true(end > acked);
    /* The clean close gave the zeros back. */
    assert_int_equal(len, end);
    /* Simulate: the last frame partly persisted, zeros after, size kept. */
    size_t big = end + (256u << 10);
    uint8_t *img = calloc(1, big);
    for (size_t cut = acked; cut < end; cut += (cut < acked + 200 ? 1 : 4099)) {
        memset(img, 0, big);
        memcpy(img, full, cut);
        spit(path, img, big);
        f->s = open_store(f->dir, ANN_DURABILITY_NONE);
        assert_int_equal(entry_count(f, "p"), 2 * B);
        ann_store_close(f->s);
        f->s = NULL;
    }
    /* Junk (not zeros) after a torn frame is cut too. */
    memset(img, 0xEE, big);
    memcpy(img, full, acked + 1000);
    spit(path, img, big);
    f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
    assert_int_equal(entry_count(f, "p"), 2 * B);
    assert_int_equal(append_n(f->s, f->t.id, "p", "three", B, NULL, ids, NULL, &err), 0);
    assert_int_equal(ids[0], 2 * B + 1);
    got g = {0};
    read_all(f, "p", &g);
    assert_int_equal(g.n, 3 * B);
    assert_string_equal(g.bodies[3 * B - 1], "body-three-2999");
    got_free(&g);
    free(img);
    free(full);
}

/* A failed write (here: the file size limit) acknowledges nothing, leaves
 * no trace in the file, and the log works again once the cause is gone,
 * with dense ids and its watchers still attached. */
static void test_write_failure_recovers(void **state)
{
    fx *f = *state;
    ann_err err;
    enum { B = 2000 };
    static uint64_t ids[B];
    char path[256];
    struct stat st;
    make_log(f, "fail");
    assert_int_equal(append_n(f->s, f->t.id, "fail", "ok", B, NULL, ids, NULL, &err), 0);
    wctx wc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ann_watch *w;
    assert_int_equal(ann_store_watch(f->s, f->t.id, "fail", count_watch, &wc, &w, &err), 0);
    data_path(f, "fail", path, sizeof path);
    assert_int_equal(stat(path, &st), 0);

    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = append_n(f->s, f->t.id, "fail", "big", B, NULL, ids, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, oldsig);
    assert_int_not_equal(rc, 0);
    /* The file could not grow (EFBIG, as a full disk gives ENOSPC): nothing
     * was stored, and the caller is told so. */
    assert_int_equal(err.code, ANN_ENOSPC);
    assert_true(ann_code_flags(err.code) & ANN_ERR_RETRIABLE);
    assert_false(ann_code_flags(err.code) & ANN_ERR_OUTCOME_UNKNOWN);
    assert_int_equal(entry_count(f, "fail"), B);
    assert_int_equal(wc.calls, 0);

    assert_int_equal(append_n(f->s, f->t.id, "fail", "big", B, NULL, ids, NULL, &err), 0);
    assert_int_equal(ids[0], B + 1);
    assert_int_equal(entry_count(f, "fail"), 2 * B);
    assert_int_equal(wc.calls, 1);
    ann_store_unwatch(f->s, w);
    reopen(f);
    got g = {0};
    read_all(f, "fail", &g);
    assert_int_equal(g.n, 2 * B);
    assert_string_equal(g.iids[B], "big-0");
    got_free(&g);
}

static void test_corruption_is_loud(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[3];
    char path[256];
    struct stat st;
    make_log(f, "c");
    assert_int_equal(append_n(f->s, f->t.id, "c", "first", 3, NULL, ids, NULL, &err), 0);
    data_path(f, "c", path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    size_t first_frame = (size_t)st.st_size;
    assert_int_equal(append_n(f->s, f->t.id, "c", "second", 3, NULL, ids, NULL, &err), 0);
    ann_store_close(f->s);
    f->s = NULL;
    size_t len;
    uint8_t *full = slurp(path, &len);

    /* Any flipped byte in a frame that has a frame after it is corruption. */
    for (size_t off = 0; off < first_frame; off += 7) {
        uint8_t *b = malloc(len);
        memcpy(b, full, len);
        b[off] ^= 0x5a;
        spit(path, b, len);
        free(b);
        f->s = open_store(f->dir, ANN_DURABILITY_NONE);
        ann_log_meta m;
        int rc = ann_store_log_get(f->s, f->t.id, "c", &m, &err);
        if (rc == 0)
            fprintf(stderr, "offset %zu not detected\n", off);
        assert_int_not_equal(rc, 0);
        assert_int_equal(err.code, ANN_ECORRUPT);
        assert_non_null(strstr(err.msg, "c.dat"));
        ann_store_close(f->s);
        f->s = NULL;
    }
    /* Restored, all is well (nothing was cut). */
    spit(path, full, len);
    f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
    assert_int_equal(entry_count(f, "c"), 6);
    /* Damage under a live store is found when the entry is read. */
    int fd = open(path, O_WRONLY);
    uint8_t *hit = memmem(full, len, "body-first-1", 12);
    assert_int_equal(pwrite(fd, "X", 1, hit - full), 1);
    close(fd);
    got g = {0};
    assert_int_not_equal(ann_store_read_after(f->s, f->t.id, "c", 0, 0, collect, &g, &err), 0);
    assert_int_equal(err.code, ANN_ECORRUPT);
    got_free(&g);
    free(full);
}

/* kill -9 of a writer at random moments: every acknowledged entry survives
 * with its id, ids stay dense, nothing is duplicated. */
typedef struct crash_writer {
    ann_store *s;
    const char *tenant;
    int fd;
    int tid;
} crash_writer;

static void *crash_writer_main(void *arg)
{
    crash_writer *c = arg;
    for (int b = 0;; b++) {
        char prefix[32];
        uint64_t ids[20];
        ann_err err;
        snprintf(prefix, sizeof prefix, "w%d-b%d", c->tid, b);
        if (append_n(c->s, c->tenant, "crash", prefix, 20, NULL, ids, NULL, &err) != 0)
            _exit(3);
        /* Acknowledged: report (tid, batch, first id). */
        uint64_t rec[3] = {(uint64_t)c->tid, (uint64_t)b, ids[0]};
        if (write(c->fd, rec, sizeof rec) != (ssize_t)sizeof rec)
            _exit(4);
    }
    return NULL;
}

static void test_kill9_during_appends(void **state)
{
    fx *f = *state;
    make_log(f, "crash");
    ann_store_close(f->s);
    f->s = NULL;
    for (int round = 0; round < 4; round++) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            ann_store *s = NULL;
            ann_err err;
            if (ann_store_embedded_open(f->dir, NULL, &s, &err) != 0)
                _exit(2);
            crash_writer cw[3];
            pthread_t th[3];
            for (int i = 0; i < 3; i++) {
                cw[i] = (crash_writer){s, f->t.id, pfd[1], round * 10 + i};
                pthread_create(&th[i], NULL, crash_writer_main, &cw[i]);
            }
            pthread_join(th[0], NULL);
            _exit(0);
        }
        close(pfd[1]);
        /* Let it acknowledge some batches, then kill it mid-flight. */
        static uint64_t acks[4096][3];
        size_t nacks = 0;
        size_t want = 20 + (size_t)round * 15;
        while (nacks < want) {
            ssize_t r = read(pfd[0], acks[nacks], sizeof acks[0]);
            assert_int_equal(r, sizeof acks[0]);
            nacks++;
        }
        kill(pid, SIGKILL);
        /* Acks already in the pipe were acknowledged before the kill. */
        for (;;) {
            ssize_t r = read(pfd[0], acks[nacks], sizeof acks[0]);
            if (r != (ssize_t)sizeof acks[0])
                break;
            nacks++;
        }
        close(pfd[0]);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));

        f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
        got g = {0};
        read_all(f, "crash", &g);
        assert_int_equal(g.n, entry_count(f, "crash"));
        for (size_t i = 0; i < g.n; i++) {
            assert_int_equal(g.ids[i], i + 1); /* dense */
            /* no insert_id twice: each batch is whole and appears once */
            if (i % 20 == 0) {
                int w, b;
                size_t k;
                assert_int_equal(sscanf(g.iids[i], "w%d-b%d-%zu", &w, &b, &k), 3);
                assert_int_equal(k, 0);
                for (size_t j = 0; j < 20; j++) {
                    char want_iid[48];
                    snprintf(want_iid, sizeof want_iid, "w%d-b%d-%zu", w, b, j);
                    assert_string_equal(g.iids[i + j], want_iid);
                }
            }
        }
        assert_int_equal(g.n % 20, 0);
        for (size_t a = 0; a < nacks; a++) {
            uint64_t id = acks[a][2];
            assert_true(id >= 1 && id + 19 <= g.n);
            char want_iid[48];
            snprintf(want_iid, sizeof want_iid, "w%d-b%d-0", (int)acks[a][0], (int)acks[a][1]);
            assert_string_equal(g.iids[id - 1], want_iid);
        }
        got_free(&g);
        ann_store_close(f->s);
        f->s = NULL;
    }
    f->s = open_store(f->dir, ANN_DURABILITY_FSYNC);
}

/* ---- concurrency ------------------------------------------------------- */

typedef struct conc {
    ann_store *s;
    const char *tenant;
    int tid;
    int nlogs;
    int batches;
    int per;
    bool same_iids; /* every thread sends the same insert ids */
    int failures;
} conc;

static void *conc_main(void *arg)
{
    conc *c = arg;
    uint64_t *ids = calloc((size_t)c->per, sizeof *ids);
    for (int b = 0; b < c->batches; b++) {
        char log[16], prefix[32];
        snprintf(log, sizeof log, "c%d", (b + c->tid) % c->nlogs);
        if (c->same_iids)
            snprintf(prefix, sizeof prefix, "same-%d", b);
        else
            snprintf(prefix, sizeof prefix, "t%d-%d", c->tid, b);
        ann_err err;
        if (append_n(c->s, c->tenant, log, prefix, (size_t)c->per, NULL, ids, NULL, &err) != 0) {
            c->failures++;
            continue;
        }
        if (c->same_iids)
            continue;
        for (int i = 1; i < c->per; i++)
            if (ids[i] != ids[0] + (uint64_t)i)
                c->failures++; /* one request's ids are consecutive */
    }
    free(ids);
    return NULL;
}

static void run_conc(fx *f, int nthreads, int nlogs, int batches, int per, bool same)
{
    pthread_t th[16];
    conc c[16];
    for (int i = 0; i < nlogs; i++) {
        char log[16];
        snprintf(log, sizeof log, "c%d", i);
        ann_log_meta m;
        ann_err err;
        if (ann_store_log_get(f->s, f->t.id, log, &m, &err) != 0)
            make_log(f, log);
        else
            ann_log_meta_release(&m);
    }
    for (int i = 0; i < nthreads; i++) {
        c[i] = (conc){f->s, f->t.id, i, nlogs, batches, per, same, 0};
        pthread_create(&th[i], NULL, conc_main, &c[i]);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].failures, 0);
    }
}

static void check_logs_dense_unique(fx *f, int nlogs, uint64_t want_total)
{
    uint64_t total = 0;
    for (int l = 0; l < nlogs; l++) {
        char log[16];
        snprintf(log, sizeof log, "c%d", l);
        got g = {0};
        read_all(f, log, &g);
        assert_int_equal(g.n, entry_count(f, log));
        for (size_t i = 0; i < g.n; i++)
            assert_int_equal(g.ids[i], i + 1);
        /* insert ids unique */
        char **sorted = malloc(g.n * sizeof *sorted);
        memcpy(sorted, g.iids, g.n * sizeof *sorted);
        qsort(sorted, g.n, sizeof *sorted, (int (*)(const void *, const void *))strcmp);
        for (size_t i = 1; i < g.n; i++)
            assert_true(strcmp(sorted[i - 1], sorted[i]) != 0);
        free(sorted);
        total += g.n;
        got_free(&g);
    }
    assert_int_equal(total, want_total);
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_concurrent_one_log(void **state)
{
    fx *f = *state;
    run_conc(f, 6, 1, 40, 25, false);
    check_logs_dense_unique(f, 1, 6 * 40 * 25);
    reopen(f);
    check_logs_dense_unique(f, 1, 6 * 40 * 25);
    (void)cmp_strp;
}

static void test_concurrent_many_logs(void **state)
{
    fx *f = *state;
    run_conc(f, 8, 10, 30, 20, false);
    check_logs_dense_unique(f, 10, 8 * 30 * 20);
    reopen(f);
    check_logs_dense_unique(f, 10, 8 * 30 * 20);
}

static void test_concurrent_same_insert_ids(void **state)
{
    fx *f = *state;
    /* All threads race the same requests into one log: each stored once. */
    run_conc(f, 6, 1, 20, 10, true);
    check_logs_dense_unique(f, 1, 20 * 10);
}

static void test_lru_eviction(void **state)
{
    fx *f = *state;
    ann_store_close(f->s);
    ann_store_embedded_opts o;
    ann_store_embedded_opts_init(&o);
    o.no_blocks = true; /* these tests read and damage the data file itself */
    o.max_open_logs = 2;
    o.cache_bytes = 1; /* every idle log is closed */
    ann_err err;
    assert_int_equal(ann_store_embedded_open(f->dir, &o, &f->s, &err), 0);
    run_conc(f, 4, 7, 20, 10, false);
    check_logs_dense_unique(f, 7, 4 * 20 * 10);
    /* Dedup still works after a log was closed and reopened. */
    uint64_t ids[10];
    size_t n_new;
    assert_int_equal(append_n(f->s, f->t.id, "c0", "t0-0", 10, NULL, ids, &n_new, &err), 0);
    assert_int_equal(n_new, 0);
}

/* Create, write, delete one log id again and again while other threads probe
 * it with every operation. The probers may only ever see success or not
 * found; the cycler's own calls must always succeed (a create is seen by the
 * next call even if a prober's lookup began before it), and nothing of a
 * deleted incarnation may be served or left on disk. */
typedef struct race_ctx {
    fx *f;
    atomic_bool done;
    atomic_int bad;
    char why[400];
} race_ctx;

static void race_fail(race_ctx *r, const char *what, const ann_err *err)
{
    if (atomic_fetch_add(&r->bad, 1) == 0)
        snprintf(r->why, sizeof r->why, "%.40s: %.20s %.256s", what, ann_code_name(err->code),
                 err->msg);
}

static void race_noop(void *ud)
{
    (void)ud;
}

static void *race_prober(void *arg)
{
    race_ctx *r = arg;
    fx *f = r->f;
    unsigned i = 0;
    while (!atomic_load(&r->done)) {
        ann_err err;
        ann_log_meta m;
        got g = {0};
        uint64_t ids[2];
        int rc = 0;
        switch (i++ % 5) {
        case 0:
            rc = ann_store_log_get(f->s, f->t.id, "race", &m, &err);
            if (rc == 0)
                ann_log_meta_release(&m);
            break;
        case 1:
            rc = append_n(f->s, f->t.id, "race", "probe", 2, NULL, ids, NULL, &err);
            break;
        case 2:
            rc = ann_store_read_after(f->s, f->t.id, "race", 0, 0, collect, &g, &err);
            got_free(&g);
            break;
        case 3: {
            ann_watch *w;
            rc = ann_store_watch(f->s, f->t.id, "race", race_noop, NULL, &w, &err);
            if (rc == 0)
                ann_store_unwatch(f->s, w);
            break;
        }
        default: {
            uint64_t one = 1;
            rc = ann_store_revoke(f->s, f->t.id, "race", &one, 1, "a", "probe", 1, &err);
            break;
        }
        }
        if (rc != 0 && err.code != ANN_ENOTFOUND)
            race_fail(r, "prober", &err);
    }
    return NULL;
}

static void test_delete_races_acquire(void **state)
{
    fx *f = *state;
    race_ctx r = {.f = f};
    pthread_t th[3];
    char path[256];
    data_path(f, "race", path, sizeof path);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_prober, &r), 0);
    for (int round = 0; round < 150 && !atomic_load(&r.bad); round++) {
        ann_err err;
        uint64_t ids[3];
        char prefix[32];
        snprintf(prefix, sizeof prefix, "RACEROUND%03d", round);
        if (ann_store_log_create(f->s, f->t.id, "race", NULL, 0, 1, &err) != 0)
            race_fail(&r, "create", &err);
        else if (append_n(f->s, f->t.id, "race", prefix, 3, NULL, ids, NULL, &err) != 0)
            race_fail(&r, "append after create", &err);
        else if (ann_store_log_delete(f->s, f->t.id, "race", &err) != 0)
            race_fail(&r, "delete", &err);
        else if (access(path, F_OK) == 0)
            snprintf(r.why, sizeof r.why, "round %d: data file left", round),
                atomic_fetch_add(&r.bad, 1);
    }
    atomic_store(&r.done, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    if (atomic_load(&r.bad))
        fail_msg("%s", r.why);
    ann_log_meta m;
    ann_err err;
    assert_int_not_equal(ann_store_log_get(f->s, f->t.id, "race", &m, &err), 0);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_false(dir_contains(f->dir, "body-RACEROUND"));
}

/* ---- watch ------------------------------------------------------------- */

static void test_watch(void **state)
{
    fx *f = *state;
    ann_err err;
    uint64_t ids[2];
    make_log(f, "w");
    make_log(f, "other");
    wctx wc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ann_watch *w;
    assert_int_equal(ann_store_watch(f->s, f->t.id, "w", count_watch, &wc, &w, &err), 0);
    assert_int_equal(append_n(f->s, f->t.id, "w", "a", 2, NULL, ids, NULL, &err), 0);
    pthread_mutex_lock(&wc.mu);
    int c1 = wc.calls;
    pthread_mutex_unlock(&wc.mu);
    assert_true(c1 >= 1);
    /* Another log's writes do not wake it; a pure duplicate adds nothing. */
    assert_int_equal(append_n(f->s, f->t.id, "other", "a", 2, NULL, ids, NULL, &err), 0);
    assert_int_equal(append_n(f->s, f->t.id, "w", "a", 2, NULL, ids, NULL, &err), 0);
    assert_int_equal(wc.calls, c1);
    ann_store_unwatch(f->s, w);
    wc.dead = true;
    assert_int_equal(append_n(f->s, f->t.id, "w", "b", 2, NULL, ids, NULL, &err), 0);
    assert_false(wc.late_call);
    assert_int_equal(ann_store_watch(f->s, f->t.id, "missing", count_watch, &wc, &w, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    /* A watch left at close is freed by close (the leak checker sees). */
    static wctx left = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(ann_store_watch(f->s, f->t.id, "other", count_watch, &left, &w, &err), 0);
}

typedef struct wrace {
    ann_store *s;
    const char *tenant;
    atomic_bool stop;
} wrace;

static void *wrace_writer(void *arg)
{
    wrace *r = arg;
    for (int b = 0; !r->stop; b++) {
        char p[32];
        uint64_t ids[5];
        ann_err err;
        snprintf(p, sizeof p, "r%d", b);
        append_n(r->s, r->tenant, "wr", p, 5, NULL, ids, NULL, &err);
    }
    return NULL;
}

static void test_unwatch_races_writes(void **state)
{
    fx *f = *state;
    make_log(f, "wr");
    wrace r = {f->s, f->t.id, false};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, wrace_writer, &r);
    for (int i = 0; i < 200; i++) {
        wctx wc = {.mu = PTHREAD_MUTEX_INITIALIZER};
        ann_watch *w;
        ann_err err;
        assert_int_equal(ann_store_watch(f->s, f->t.id, "wr", count_watch, &wc, &w, &err), 0);
        usleep(100);
        ann_store_unwatch(f->s, w);
        pthread_mutex_lock(&wc.mu);
        wc.dead = true;
        pthread_mutex_unlock(&wc.mu);
        /* wc goes out of scope: a late call would write freed stack (ASan) */
        assert_false(wc.late_call);
    }
    r.stop = true;
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
}

/* Appends, listings, tails and revocations of one log all at once: readers
 * always see dense ids and valid records, revoked entries end up redacted
 * and nothing else changes. */
typedef struct mixed {
    ann_store *s;
    const char *tenant;
    atomic_bool stop;
    atomic_int errors;
    uint64_t revoked[64];
    atomic_int nrevoked;
    atomic_int next_writer;
} mixed;

static void *mixed_writer(void *arg)
{
    mixed *m = arg;
    int me = m->next_writer++;
    for (int b = 0; b < 60; b++) {
        char p[32];
        uint64_t ids[30];
        ann_err err;
        snprintf(p, sizeof p, "m%d-%d", me, b);
        if (append_n(m->s, m->tenant, "mix", p, 30, NULL, ids, NULL, &err) != 0)
            m->errors++;
    }
    return NULL;
}

static void *mixed_reader(void *arg)
{
    mixed *m = arg;
    while (!m->stop) {
        got g = {0};
        ann_err err;
        if (ann_store_read_after(m->s, m->tenant, "mix", 0, 0, collect, &g, &err) != 0)
            m->errors++;
        for (size_t i = 0; i < g.n; i++)
            if (g.ids[i] != i + 1)
                m->errors++;
        got_free(&g);
        ann_list_query q = {.start_ns = INT64_MIN, .end_ns = INT64_MAX, .limit = 500};
        if (ann_store_list(m->s, m->tenant, "mix", &q, collect, &g, NULL, &err) != 0)
            m->errors++;
        got_free(&g);
    }
    return NULL;
}

static void *mixed_revoker(void *arg)
{
    mixed *m = arg;
    unsigned seed = 99;
    while (!m->stop && m->nrevoked < 64) {
        ann_log_meta lm;
        ann_err err;
        if (ann_store_log_get(m->s, m->tenant, "mix", &lm, &err) != 0) {
            m->errors++;
            break;
        }
        uint64_t n = lm.entry_count;
        ann_log_meta_release(&lm);
        if (n == 0)
            continue;
        uint64_t id = (uint64_t)rand_r(&seed) % n + 1;
        if (ann_store_revoke(m->s, m->tenant, "mix", &id, 1, "r", "stress", 1, &err) != 0)
            m->errors++;
        else
            m->revoked[m->nrevoked++] = id;
    }
    return NULL;
}

static void test_mixed_stress(void **state)
{
    fx *f = *state;
    make_log(f, "mix");
    mixed m = {.s = f->s, .tenant = f->t.id};
    pthread_t w[3], r[2], v;
    for (int i = 0; i < 3; i++)
        pthread_create(&w[i], NULL, mixed_writer, &m);
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, mixed_reader, &m);
    pthread_create(&v, NULL, mixed_revoker, &m);
    for (int i = 0; i < 3; i++)
        pthread_join(w[i], NULL);
    m.stop = true;
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    pthread_join(v, NULL);
    assert_int_equal(m.errors, 0);
    got g = {0};
    read_all(f, "mix", &g);
    assert_int_equal(g.n, 3 * 60 * 30);
    int redacted = 0;
    for (size_t i = 0; i < g.n; i++) {
        bool rv = false;
        for (int k = 0; k < m.nrevoked; k++)
            rv |= m.revoked[k] == g.ids[i];
        assert_int_equal(g.flags[i] == ANN_ENTRY_REDACTED, rv);
        if (rv) {
            assert_string_equal(g.bodies[i], "");
            redacted++;
        } else {
            char want[64];
            snprintf(want, sizeof want, "body-%s", g.iids[i]);
            assert_string_equal(g.bodies[i], want);
        }
    }
    assert_true(redacted >= 1);
    got_free(&g);
}

/* ---- sealed blocks ------------------------------------------------------ */

static ann_store *open_sealing(const char *dir)
{
    ann_store_embedded_opts o;
    ann_store_embedded_opts_init(&o);
    o.seal_idle_ms = 50; /* idle logs are sealed whole at once */
    ann_store *s = NULL;
    ann_err err;
    assert_int_equal(ann_store_embedded_open(dir, &o, &s, &err), 0);
    return s;
}

static void check_log_against(fx *f, const char *log, const ref *all, size_t n)
{
    ann_list_query q = {.start_ns = INT64_MIN, .end_ns = INT64_MAX};
    check_query(f, log, all, n, &q);
    q.start_ns = 500;
    q.end_ns = 2000;
    check_query(f, log, all, n, &q);
    assert_int_equal(entry_count(f, log), n);
}

/* Bytes of the data file still allocated (not punched out by sealing). */
static long long allocated(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long long)st.st_blocks * 512;
}

/* Waits (bounded: a liveness bound, not a timing test) until the .dat file of the log has
 * been punched below `below` bytes. */
static void wait_sealed(const char *dat, long long below)
{
    for (int i = 0; i < 600 && allocated(dat) >= below; i++)
        usleep(20000);
    assert_true(allocated(dat) < below);
}

/* Every non-dead block of a .blk file, decoded: is any body exactly `needle`? */
static bool blocks_hold(const char *blk, const char *needle)
{
    size_t len;
    uint8_t *all = slurp(blk, &len);
    bool found = false;
    for (size_t off = 0; off + ANN_BLK_HDR_LEN <= len && !found;) {
        ann_blk_header h;
        ann_err err;
        assert_int_equal(ann_blk_header_decode(all + off, len - off, &h, &err), 0);
        if (!(h.flags & ANN_BLK_DEAD)) {
            ann_blk_view v;
            assert_int_equal(ann_blk_view_open(all + off, len - off, &h, &v, &err), 0);
            for (size_t i = 0; i < v.n && !found; i++)
                found = ann_integrity_strip(v.e[i].body, v.e[i].body_len) == strlen(needle) &&
                        memcmp(v.e[i].body, needle, strlen(needle)) == 0;
            ann_blk_view_release(&v);
        } else { /* a dead block keeps nothing but its header */
            for (size_t k = off + ANN_BLK_HDR_LEN; k < off + h.total_len; k++)
                assert_int_equal(all[k], 0);
        }
        off += h.total_len;
    }
    free(all);
    return found;
}

static void test_sealed_blocks(void **state)
{
    fx *f = *state;
    ann_err err;
    enum { B = 3000 };
    static int64_t times[B];
    static ref all[2 * B + 1];
    uint64_t ids[B];
    size_t n_new, n = 0;
    char dat[256], blk[256];
    unsigned seed = 5;
    ann_store_close(f->s);
    f->s = open_sealing(f->dir);
    make_log(f, "s");
    data_path(f, "s", dat, sizeof dat);
    snprintf(blk, sizeof blk, "%.*s.blk", (int)(strlen(dat) - 4), dat);
    for (int b = 0; b < 2; b++) {
        char p[8];
        snprintf(p, sizeof p, "s%d", b);
        for (size_t i = 0; i < B; i++)
            times[i] = rand_r(&seed) % 3000;
        assert_int_equal(append_n(f->s, f->t.id, "s", p, B, times, ids, NULL, &err), 0);
        for (size_t i = 0; i < B; i++)
            all[n++] = (ref){times[i], ids[i]};
    }
    qsort(all, n, sizeof *all, ref_cmp);
    long long before = allocated(dat);
    wait_sealed(dat, before / 4); /* the frames moved into blocks */
    assert_int_equal(access(blk, F_OK), 0);
    assert_false(dir_contains(f->dir, "body-s1-299")); /* compressed: no plain copy */
    assert_true(blocks_hold(blk, "body-s1-2999"));

    /* Every read sees the same entries, from the blocks. */
    check_log_against(f, "s", all, n);
    got g = {0};
    read_all(f, "s", &g);
    assert_int_equal(g.n, n);
    assert_string_equal(g.bodies[B + 7], "body-s1-7");
    assert_string_equal(g.iids[B + 7], "s1-7");
    got_free(&g);
    /* Dedup reaches into sealed entries. */
    assert_int_equal(append_n(f->s, f->t.id, "s", "s0", B, NULL, ids, &n_new, &err), 0);
    assert_int_equal(n_new, 0);
    assert_int_equal(ids[B - 1], B);

    /* Revoking sealed entries rewrites their block: the bytes leave every file. */
    uint64_t rv[3] = {8, 3001, 6000};
    assert_int_equal(ann_store_revoke(f->s, f->t.id, "s", rv, 3, "a", "leak", 9, &err), 0);
    assert_false(blocks_hold(blk, "body-s0-7"));
    assert_false(blocks_hold(blk, "body-s1-0"));
    assert_false(blocks_hold(blk, "body-s1-2999"));
    assert_true(blocks_hold(blk, "body-s1-2998"));
    read_all(f, "s", &g);
    assert_int_equal(g.flags[7], ANN_ENTRY_REDACTED);
    assert_string_equal(g.bodies[7], "");
    assert_string_equal(g.iids[7], "s0-7"); /* ids and times stay */
    assert_string_equal(g.bodies[8], "body-s0-8");
    got_free(&g);

    /* After a reopen: the same, read from the blocks and the data file's tail. */
    ann_store_close(f->s);
    f->s = open_sealing(f->dir);
    check_log_against(f, "s", all, n);
    read_all(f, "s", &g);
    assert_int_equal(g.n, n);
    assert_int_equal(g.flags[3000], ANN_ENTRY_REDACTED);
    assert_string_equal(g.bodies[3001], "body-s1-1");
    got_free(&g);
    /* More entries after the blocks, sealed in turn. */
    assert_int_equal(append_n(f->s, f->t.id, "s", "s2", 10, NULL, ids, NULL, &err), 0);
    assert_int_equal(ids[0], 2 * B + 1);
    read_all(f, "s", &g);
    assert_int_equal(g.n, 2 * B + 10);
    assert_string_equal(g.bodies[2 * B + 9], "body-s2-9");
    got_free(&g);
    /* Closing seals what is left: the data file keeps nothing, the blocks everything. */
    ann_store_close(f->s);
    assert_true(allocated(dat) < 16 * 1024);
    f->s = open_sealing(f->dir);
    read_all(f, "s", &g);
    assert_int_equal(g.n, 2 * B + 10);
    assert_string_equal(g.bodies[2 * B + 9], "body-s2-9");
    got_free(&g);

    /* Deleting the log takes its blocks too. */
    assert_int_equal(ann_store_log_delete(f->s, f->t.id, "s", &err), 0);
    assert_int_not_equal(access(blk, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secret_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_server_refused_admin_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_revoked_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_last_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_create_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_dense_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_order_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_bounds_cursor_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_purges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prealloc_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption_is_loud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_during_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_one_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_many_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_same_insert_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_races_acquire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwatch_races_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_stress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_blocks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
