/*
 * Inside the distributed backend: the structs its files share and the lock that guards
 * each field. distributed.c: commands, acks, waiters, watchers; readmodel_port.c: the
 * reads and the read model's notifications.
 */
#ifndef ANN_STORE_DISTRIBUTED_INTERNAL_H
#define ANN_STORE_DISTRIBUTED_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "domain/event.h"
#include "kafka/kafka.h"
#include "store/distributed/catalog.h"
#include "store/store.h"

#define DIST_BUCKETS 1024
#define DIST_STATE_POLL_MS 250               /* fallback re-read of logs someone waits on */
#define DIST_KEY_SLOTS 256                   /* API keys remembered (direct-mapped by hash) */
#define DIST_KEY_TTL_NS (5LL * 1000000000LL) /* how long a remembered key is trusted */
#define DIST_LOG_SLOTS 4096                  /* logs known to exist (direct-mapped by key) */

enum { OP_CREATE, OP_WRITE, OP_REVOKE, OP_DELETE, OP_SEAL };

/* One command in flight. Immutable after send_command except where noted. */
typedef struct dop dop;
struct dop {
    int kind;
    ann_wait wait;
    char request_id[ANN_UUID_LEN + 1];
    char tenant[ANN_UUID_LEN + 1];
    char log[ANN_UUID_LEN + 1];
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_append *ap; /* writes: the caller's, until done; filled under d->mu */
    ann_buf *ckpt;  /* seals: the caller's, until done; filled under d->mu */
    ann_done_fn done;
    void *ud;
    /* Guarded by d->mu: */
    int refs;
    bool finished;
    bool waiting;          /* on its log's waiter list */
    int outcome;           /* set when taken off the list: 1 ok, -1 log gone */
    uint64_t want_visible; /* written before wait_visible, read under d->mu */
    uint64_t want_op;
    dop *hnext; /* request table chain */
    dop *wnext; /* waiter list */
};

struct ann_watch {
    ann_watch_fn fn;
    void *ud;
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_watch *next, *prev; /* guarded by d->mu */
};

/* Read-model lag (lag.c): a run of ids this server's writes had sequenced (acks) that the
 * read model did not show yet, and when its ack came. */
#define DIST_LAG_RUNS 8     /* runs kept per log; more merge into the last (overcounting) */
#define DIST_LAG_LOGS 65536 /* logs tracked; past it, new logs' writes are not counted */
typedef struct dist_lag_run {
    uint64_t lo, hi; /* ids lo+1..hi */
    int64_t acked_ns;
} dist_lag_run;

/* A log someone waits on or watches, or with sequenced entries not visible yet. Guarded by
 * d->mu. */
typedef struct wlog {
    char key[ANN_EVENT_KEY_LEN + 1];
    dop *waiters;
    ann_watch *watchers;
    dist_lag_run lag[DIST_LAG_RUNS]; /* ascending, disjoint, all above visible */
    int nlag;
    uint64_t visible; /* the highest visible count seen for the log */
    unsigned polls;   /* rounds of the fallback poller */
    struct wlog *next;
} wlog;

/* A log's state in the read model. */
typedef struct dist_log_state {
    bool exists;
    bool deleted;
    uint64_t visible_count;
    uint64_t applied_op;
    bool sealed; /* dist_rm_state only */
} dist_log_state;

struct ann_catalog;
struct ann_archive;
struct ann_readmodel;

typedef struct dist {
    ann_store base;
    ann_kafka_config kcfg;
    ann_wait default_wait;
    char origin[96];     /* acks for this process carry this key */
    char t_pending[256]; /* topic name */
    struct ann_catalog *cat;
    struct ann_archive *arch;
    struct ann_readmodel *rm;
    rd_kafka_t *prod; /* thread-safe */
    rd_kafka_t *acks; /* ack thread only */

    pthread_mutex_t mu; /* guards: ops, logs, inflight, stop, and dop/wlog fields above */
    pthread_cond_t cv;  /* inflight reached 0 */
    pthread_cond_t cv_poll;
    dop *ops[DIST_BUCKETS];
    wlog *logs[DIST_BUCKETS];
    long inflight;
    volatile int stop;

    pthread_mutex_t jmu; /* guards the job queue */
    pthread_cond_t jcv;
    struct job *jhead, *jtail;
    bool jstop;
    pthread_t jobs[4];
    int n_jobs;

    pthread_mutex_t kmu; /* guards keys */
    struct {
        uint8_t hash[32];
        ann_tenant t;
        int64_t until_ns; /* 0: empty */
    } keys[DIST_KEY_SLOTS];
    /* Logs seen existing in the catalog ("<tenant>/<log>"; "" empty), so that a write or a
     * revocation need not read the catalog first. Guarded by kmu. See log_known(). */
    char known[DIST_LOG_SLOTS][ANN_EVENT_KEY_LEN + 1];

    bool threads_started;
    pthread_t t_poll, t_ack, t_state;

    /* Read-model lag of this server's writes (lag.c), guarded by mu: entries in the runs of
     * every wlog, and how many wlogs have runs. */
    uint64_t lag_entries;
    size_t lag_logs;
    struct ann_metrics *metrics; /* the collector's registry (NULL: none) */

    pthread_mutex_t scan_mu; /* guards scan: one retention pass at a time */
    ann_catalog_scan scan;   /* where the retention walk over the catalog resumes */
} dist;

/* distributed.c */
void dist_on_state(dist *d, const char *key, const dist_log_state *st);
void dist_on_notify(void *ud, const char *tenant_id, const char *log_id, uint64_t visible,
                    uint64_t applied_op, bool deleted);

/* lag.c: the read-model lag of this server's writes, under d->mu. */
void dist_lag_add_locked(dist *d, wlog *w, uint64_t lo, uint64_t hi, int64_t now_ns);
void dist_lag_seen_locked(dist *d, wlog *w, const dist_log_state *st);
void dist_lag_collect(void *ud, struct ann_metrics_out *out);

/* readmodel_port.c: the read model behind the port. */
int dist_rm_open(dist *d, const char *conninfo, int pool, ann_err *err);
void dist_rm_close(dist *d);
int dist_rm_listen_start(dist *d, ann_err *err);
void dist_rm_listen_stop(dist *d);
int dist_rm_state(dist *d, const char *tenant_id, const char *log_id, dist_log_state *out,
                  ann_err *err);
int dist_rm_list(ann_store *s, const char *tenant_id, const char *log_id, const ann_list_query *q,
                 ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err);
int dist_rm_logs_list(ann_store *s, const char *tenant_id, const ann_logs_query *q,
                      ann_log_visit_fn visit, void *ud, ann_err *err);
int dist_rm_search(ann_store *s, const char *tenant_id, const ann_search_query *q,
                   ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err);
int dist_rm_checkpoint(ann_store *s, const char *tenant_id, const char *log_id, ann_buf *out,
                       ann_err *err);
int dist_rm_inclusion_proof(ann_store *s, const char *tenant_id, const char *log_id,
                            uint64_t entry_id, uint64_t tree_size, uint8_t (*out)[32], size_t *n,
                            ann_err *err);
int dist_rm_consistency_proof(ann_store *s, const char *tenant_id, const char *log_id,
                              uint64_t first, uint64_t second, uint8_t (*out)[32], size_t *n,
                              ann_err *err);
int dist_rm_read_after(ann_store *s, const char *tenant_id, const char *log_id, uint64_t after_id,
                       size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err);

#endif
