/*
 * The embedded store: metadata in SQLite (meta.c), entries in one data file
 * per log (logfile.c) indexed in memory (index.c), appends group-committed by
 * one committer thread (commit.c). This file has the port's ops table,
 * open/close, tenants, log creation and the helpers the other files share;
 * internal.h has the structs, what guards each field, the lock order and a
 * map of the files. See embedded.h and docs/storage.md.
 */
#include "store/embedded/embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "store/embedded/internal.h"

static void emb_close(ann_store *st);

/* ---- helpers shared by the store's files --------------------------------- */

bool emb_valid_id(const char *s)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= EMB_MAX_ID_LEN || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                                     (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
            return false;
    }
    return n > 0;
}

/* The one message for a missing, deleted or foreign log. */
int emb_not_found(ann_err *err, const char *log)
{
    return ann_err_set(err, ANN_ENOTFOUND, "log %.64s not found", log ? log : "");
}

/* What an operation on h answers besides success (h->lk held). */
int emb_log_state(const elog *h, ann_err *err)
{
    if (h->deleted)
        return emb_not_found(err, h->log);
    if (h->load_rc != 0) {
        if (err)
            *err = h->load_err;
        return -1;
    }
    return 0;
}

int emb_sys_fail(ann_err *err, const char *what, const char *path)
{
    /* EFBIG: the file reached the process's size limit (RLIMIT_FSIZE), which
     * is how the tests make a disk full. */
    ann_code c = errno == ENOSPC || errno == EDQUOT || errno == EFBIG ? ANN_ENOSPC : ANN_EUNAVAIL;
    return ann_err_set(err, c, "%s %.180s: %s", what, path, strerror(errno));
}

int emb_sys_unknown(ann_err *err, const char *what, const char *path)
{
    return ann_err_set(err, ANN_EIO, "%s %.180s: %s", what, path, strerror(errno));
}

int emb_outcome_unknown(ann_err *err)
{
    if (err && err->code != ANN_ENOTFOUND && err->code != ANN_ECORRUPT)
        err->code = ANN_EIO;
    return -1;
}

int emb_write_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int emb_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

char *emb_path_join(const char *a, const char *b, const char *c, const char *suffix)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + strlen(suffix) + 3;
    char *p = ann_xmalloc(n);
    if (c)
        snprintf(p, n, "%s/%s/%s%s", a, b, c, suffix);
    else
        snprintf(p, n, "%s/%s%s", a, b, suffix);
    return p;
}

void emb_grow(uint8_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t ncap = *cap ? *cap : 1 << 16;
    while (ncap < need)
        ncap *= 2;
    *p = ann_xrealloc(*p, ncap);
    *cap = ncap;
}

uint64_t emb_log_hash(const emb *s, const char *tenant, const char *log)
{
    char key[2 * EMB_MAX_ID_LEN + 2];
    int n = snprintf(key, sizeof key, "%s/%s", tenant, log);
    return ann_siphash24(s->hkey, key, (size_t)n);
}

uint32_t emb_iid_tag(const emb *s, const char *iid, size_t len)
{
    return (uint32_t)ann_siphash24(s->hkey, iid, len);
}

/* ---- secret, tenants, log creation ---------------------------------------- */

static int emb_secret(ann_store *st, uint8_t out[32], ann_err *err)
{
    emb *s = (emb *)st;
    return ann_meta_secret(s->meta, out, err);
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int emb_tenant_create(ann_store *st, const char *name, const uint8_t key_hash[32],
                             ann_tenant *out, ann_err *err)
{
    emb *s = (emb *)st;
    ann_tenant t;
    if (!name || !name[0] || strlen(name) > 128)
        return ann_err_set(err, ANN_EINVAL, "name: must be 1 to 128 bytes");
    if (!key_hash)
        return ann_err_set(err, ANN_EINVAL, "key_hash: missing");
    memset(&t, 0, sizeof t);
    ann_uuid_v4_new(t.id);
    ann_uuid_v4_new(t.key_id);
    snprintf(t.name, sizeof t.name, "%s", name);
    snprintf(t.key_name, sizeof t.key_name, "%s", ANN_ADMIN_KEY_NAME);
    t.roles = ANN_ROLE_ADMIN;
    if (ann_meta_tenant_create(s->meta, t.id, name, t.key_id, key_hash, wall_ns(), err) != 0)
        return -1;
    if (out)
        *out = t;
    return 0;
}

static int emb_tenant_by_key(ann_store *st, const uint8_t key_hash[32], ann_tenant *out,
                             ann_err *err)
{
    emb *s = (emb *)st;
    ann_tenant t;
    int64_t now = wall_ns();
    uint64_t valid;
    bool touch = false;
    if (emb_keys_validate(s, &valid, err) != 0)
        return -1;
    if (!emb_keys_get(s, key_hash, now, &t, &touch)) {
        /* A miss asks SQLite, which also sees keys other processes made. */
        ann_key k;
        int r = ann_meta_key_by_hash(s->meta, key_hash, &t, &k, err);
        if (r < 0)
            return -1;
        if (r == 0 || k.revoke_ns != 0)
            return ann_err_set(err, ANN_EUNAUTH, "unknown API key"); /* not cached */
        touch = now - k.last_used_ns >= ANN_KEY_LAST_USE_EVERY_NS;
        emb_keys_put(s, key_hash, &t, touch ? now : k.last_used_ns, valid);
    }
    if (touch) { /* at most once a minute per key: a failure only delays the record */
        ann_err e;
        (void)ann_meta_key_touch(s->meta, t.key_id, now, &e);
    }
    if (out)
        *out = t;
    return 0;
}

static int emb_key_create(ann_store *st, const ann_key_spec *spec, ann_key *out, ann_err *err)
{
    emb *s = (emb *)st;
    char id[ANN_UUID_LEN + 1];
    ann_uuid_v4_new(id);
    return ann_meta_key_create(s->meta, spec, id, out, err);
}

static int emb_key_list(ann_store *st, const char *tenant_name, ann_key_visit_fn visit, void *ud,
                        ann_err *err)
{
    return ann_meta_key_list(((emb *)st)->meta, tenant_name, visit, ud, err);
}

static int emb_key_revoke(ann_store *st, const char *key_id, int64_t now_ns, ann_key *out,
                          ann_err *err)
{
    emb *s = (emb *)st;
    if (ann_meta_key_revoke(s->meta, key_id, now_ns, out, err) != 0)
        return -1;
    emb_keys_bump(s); /* every process of the directory, this one included: at once */
    return 0;
}

int emb_log_create_days(ann_store *st, const char *tenant_id, const char *log_id,
                        const uint8_t *labels, size_t labels_len, int64_t now_ns,
                        int32_t retention_days, ann_err *err)
{
    emb *s = (emb *)st;
    char *tdir = NULL, *path = NULL;
    int fd = -1, rc = -1;
    if (s->opts.admin_only)
        return ann_err_set(err, ANN_EINVAL, "store opened admin-only");
    if (!emb_valid_id(tenant_id))
        return ann_err_set(err, ANN_EINVAL, "tenant_id: 1 to 36 of [A-Za-z0-9_-]");
    if (!emb_valid_id(log_id))
        return ann_err_set(err, ANN_EINVAL, "log_id: 1 to 36 of [A-Za-z0-9_-]");
    if (labels_len && !labels)
        return ann_err_set(err, ANN_EINVAL, "labels: missing");
    int r = ann_meta_tenant_exists(s->meta, tenant_id, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return ann_err_set(err, ANN_ENOTFOUND, "tenant not found");

    pthread_mutex_lock(&s->create_mu);
    int state;
    int64_t cns;
    r = ann_meta_log_lookup(s->meta, tenant_id, log_id, &state, &cns, NULL, NULL, err);
    if (r < 0)
        goto done;
    if (r > 0) {
        ann_err_set(err, ANN_EEXISTS, "log %.64s already exists", log_id);
        goto done;
    }
    tdir = emb_path_join(s->dir, "logs", tenant_id, "");
    size_t plen = strlen(s->dir) + strlen(tenant_id) + strlen(log_id) + 16;
    path = ann_xmalloc(plen);
    snprintf(path, plen, "%s/logs/%s/%s.dat", s->dir, tenant_id, log_id);
    if (mkdir(tdir, 0700) == 0) {
        char *logs = emb_path_join(s->dir, "logs", NULL, "");
        int fr = s->durable ? emb_fsync_dir(logs) : 0;
        free(logs);
        if (fr != 0) {
            emb_sys_fail(err, "sync", s->dir);
            goto done;
        }
    } else if (errno != EEXIST) {
        emb_sys_fail(err, "mkdir", tdir);
        goto done;
    }
    /* A snapshot left by a log of the same id that a crash half deleted. */
    snprintf(path, plen, "%s/logs/%s/%s.idx", s->dir, tenant_id, log_id);
    if (unlink(path) != 0 && errno != ENOENT) {
        emb_sys_fail(err, "unlink", path);
        goto done;
    }
    snprintf(path, plen, "%s/logs/%s/%s.dat", s->dir, tenant_id, log_id);
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        emb_sys_fail(err, "create", path);
        goto done;
    }
    if (s->durable && (fsync(fd) != 0 || emb_fsync_dir(tdir) != 0)) {
        emb_sys_fail(err, "sync", path);
        goto done;
    }
    if (ann_meta_log_insert(s->meta, tenant_id, log_id, labels, labels_len, now_ns, retention_days,
                            err) != 0)
        goto done;
    rc = 0;
done:
    pthread_mutex_unlock(&s->create_mu);
    if (fd >= 0)
        close(fd);
    free(tdir);
    free(path);
    return rc;
}

static int emb_log_create(ann_store *st, const char *tenant_id, const char *log_id,
                          const uint8_t *labels, size_t labels_len, int64_t now_ns, ann_err *err)
{
    return emb_log_create_days(st, tenant_id, log_id, labels, labels_len, now_ns, 0, err);
}

/* ---- the ops table, open, close ------------------------------------------- */

static const ann_store_ops embedded_ops = {
    .version = 4, /* the v2 fields (the commands stay synchronous), keys, retention, holds */
    .name = "embedded",
    .close = emb_close,
    .secret = emb_secret,
    .tenant_create = emb_tenant_create,
    .tenant_by_key = emb_tenant_by_key,
    .key_create = emb_key_create,
    .key_list = emb_key_list,
    .key_revoke = emb_key_revoke,
    .log_create_spec = emb_log_create_spec,
    .log_set_hold = emb_log_set_hold,
    .tenant_set_retention = emb_tenant_set_retention,
    .retention_pass = emb_retention_pass,
    .checkpoint = emb_checkpoint,
    .inclusion_proof = emb_inclusion_proof,
    .consistency_proof = emb_consistency_proof,
    .log_seal = emb_log_seal,
    .log_create = emb_log_create,
    .log_get = emb_log_get,
    .log_delete = emb_log_delete,
    .append = emb_append,
    .revoke = emb_revoke,
    .list = emb_list,
    .logs_list = emb_logs_list,
    .search = emb_search,
    .read_after = emb_read_after,
    .watch = emb_watch,
    .unwatch = emb_unwatch,
};

void ann_store_embedded_opts_init(ann_store_embedded_opts *o)
{
    memset(o, 0, sizeof *o);
}

/* Scrape time: open logs and the data directory's bytes on disk (allocated blocks). The
 * walk is per scrape: nothing on the write path keeps a running total. */
static uint64_t du(const char *dir)
{
    char *paths[] = {(char *)dir, NULL};
    FTS *f = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
    uint64_t total = 0;
    if (!f)
        return 0;
    for (FTSENT *e; (e = fts_read(f)) != NULL;)
        if ((e->fts_info == FTS_F || e->fts_info == FTS_D) && e->fts_statp)
            total += (uint64_t)e->fts_statp->st_blocks * 512u;
    fts_close(f);
    return total;
}

static void emb_collect(void *ud, ann_metrics_out *out)
{
    emb *s = ud;
    pthread_mutex_lock(&s->mu);
    size_t open_logs = s->tcount;
    pthread_mutex_unlock(&s->mu);
    ann_metrics_out_family(out, "annals_store_open_logs", "gauge",
                           "Logs open in the store's cache (file descriptor and index)");
    ann_metrics_out_sample(out, "annals_store_open_logs", "", (double)open_logs);
    uint64_t disk = du(s->dir);
    ann_metrics_out_family(out, "annals_store_disk_bytes", "gauge",
                           "Bytes the data directory takes on disk (allocated blocks)");
    ann_metrics_out_sample(out, "annals_store_disk_bytes", "", (double)disk);
}

static void emb_metrics_register(emb *s)
{
    ann_metrics *m = s->opts.metrics;
    if (!m)
        return;
    static const uint64_t sizes[] = {1,   2,   4,   8,    16,   32,    64,
                                     128, 256, 512, 1024, 4096, 16384, 65536};
    s->m_entries = ann_metrics_counter(m, "annals_store_entries_appended_total",
                                       "Entries appended (durable and visible)", "");
    s->m_bytes = ann_metrics_counter(m, "annals_store_bytes_appended_total",
                                     "Bytes appended to the logs' data files", "");
    s->m_rounds =
        ann_metrics_counter(m, "annals_store_group_commits_total", "Group-commit rounds", "");
    s->m_fsync = ann_metrics_histogram(
        m, "annals_store_fsync_seconds", "fdatasync of one group commit's files (in parallel)", "",
        ann_metrics_latency_bounds_ns, ann_metrics_latency_bounds_n, 1e-9);
    s->m_batch_requests = ann_metrics_histogram(m, "annals_store_group_commit_requests",
                                                "Requests (appends, revocations, ...) per group "
                                                "commit",
                                                "", sizes, sizeof sizes / sizeof sizes[0], 1);
    s->m_batch_entries = ann_metrics_histogram(m, "annals_store_group_commit_entries",
                                               "New entries per group commit", "", sizes,
                                               sizeof sizes / sizeof sizes[0], 1);
    ann_metrics_collector(m, emb_collect, s);
}

static void emb_close(ann_store *st)
{
    emb *s = (emb *)st;
    ann_metrics_collector_remove(s->opts.metrics, s);
    bool sealing = s->sealer_started;
    emb_checkpointer_stop(s);
    emb_sealer_stop(s);
    emb_committer_stop(s);
    if (sealing) /* what is left unsealed is compressed before the files are closed */
        emb_seal_all(s);
    /* Watches the caller did not remove (they should have): freed here. */
    while (s->watches)
        emb_unwatch(st, s->watches);
    emb_cache_free_all(s);
    free(s->notify);
    ann_meta_free(s->meta);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->create_mu);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_cond_destroy(&s->sync_go);
    pthread_cond_destroy(&s->sync_done);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_cond_destroy(&s->watch_cv);
    pthread_cond_destroy(&s->load_cv);
    pthread_mutex_destroy(&s->seal_mu);
    pthread_mutex_destroy(&s->ckpt_mu);
    pthread_cond_destroy(&s->ckpt_cv);
    emb_summaries_free(s);
    pthread_cond_destroy(&s->seal_cv);
    emb_keys_release(&s->keys);
    if (s->has_signer)
        ann_note_signer_release(&s->signer);
    free(s->dir);
    free(s);
}

int ann_store_embedded_open(const char *dir, const ann_store_embedded_opts *opts, ann_store **out,
                            ann_err *err)
{
    emb *s = NULL;
    char *p = NULL;
    int rc = -1;
    *out = NULL;
    if (!dir || !dir[0])
        return ann_err_set(err, ANN_EINVAL, "data directory: missing");
    s = ann_xcalloc(1, sizeof *s);
    s->base.ops = &embedded_ops;
    s->lock_fd = -1;
    if (opts)
        s->opts = *opts;
    if (!s->opts.max_open_logs)
        s->opts.max_open_logs = 512;
    if (!s->opts.idle_evict_ms)
        s->opts.idle_evict_ms = 5000;
    if (!s->opts.snapshot_min)
        s->opts.snapshot_min = 100000;
    if (!s->opts.cache_bytes)
        s->opts.cache_bytes = 64u << 20;
    if (!s->opts.seal_idle_ms)
        s->opts.seal_idle_ms = 3000;
    if (!s->opts.checkpoint_ms)
        s->opts.checkpoint_ms = 1000;
    if (!s->opts.summary_bytes)
        s->opts.summary_bytes = 128u << 20;
    s->durable = s->opts.durability != ANN_DURABILITY_NONE;
    const char *tr = getenv("ANN_STORE_TRACE");
    s->trace = tr ? atof(tr) : 0;
    s->lru.lru_next = s->lru.lru_prev = &s->lru;
    pthread_mutex_init(&s->create_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->sync_mu, NULL);
    pthread_cond_init(&s->sync_go, NULL);
    pthread_cond_init(&s->sync_done, NULL);
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_cond_init(&s->watch_cv, NULL);
    pthread_cond_init(&s->load_cv, NULL);
    pthread_mutex_init(&s->seal_mu, NULL);
    pthread_mutex_init(&s->ckpt_mu, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    emb_summaries_init(s);
    pthread_cond_init(&s->seal_cv, NULL);
    emb_keys_init(&s->keys);
    s->dir = ann_xmalloc(strlen(dir) + 1);
    memcpy(s->dir, dir, strlen(dir) + 1);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        emb_sys_fail(err, "mkdir", dir);
        goto done;
    }
    p = emb_path_join(dir, "logs", NULL, "");
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        emb_sys_fail(err, "mkdir", p);
        goto done;
    }
    /* A killed process may have made logs/ or a tenant's directory and died before
     * syncing the directory holding it: found again here (and by log_create's mkdir,
     * EEXIST), it would never be synced. */
    if (s->durable && (emb_fsync_dir(dir) != 0 || emb_fsync_dir(p) != 0)) {
        emb_sys_fail(err, "sync", p);
        goto done;
    }
    free(p);
    p = NULL;
    if (!s->opts.admin_only) {
        p = emb_path_join(dir, "LOCK", NULL, "");
        s->lock_fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        if (s->lock_fd < 0) {
            emb_sys_fail(err, "open", p);
            goto done;
        }
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            ann_err_set(err, ANN_EUNAVAIL, "data directory %.180s is in use by another server",
                        dir);
            goto done;
        }
        free(p);
        p = NULL;
    }
    p = emb_path_join(dir, "meta.db", NULL, "");
    if (ann_meta_open(p, s->durable, &s->meta, err) != 0 ||
        ann_meta_hashkey(s->meta, s->hkey, err) != 0)
        goto done;
    if (emb_keys_map(s, err) != 0) /* revocations reach every process through it */
        goto done;
    if (!s->opts.admin_only) {
        /* The checkpoint key: --signing-key, else DIR/signing.key (made on first start). */
        if (emb_signer_load(dir, s->opts.signing_key, s->opts.key_name, &s->signer, err) != 0)
            goto done;
        s->has_signer = true;
        emb_metrics_register(s);
        if (emb_recover(s, err) != 0 || emb_committer_start(s, err) != 0 ||
            emb_sealer_start(s, err) != 0 || emb_checkpointer_start(s, err) != 0)
            goto done;
    }
    rc = 0;
done:
    free(p);
    if (rc != 0) {
        emb_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
