/*
 * The sequencer: Kafka batch -> per partition (heads, dedup, ids, rows, one
 * fenced head commit) -> one Kafka transaction. See sequencer.h.
 */
#include "sequencer/sequencer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "annals/events/v1/events.pb-c.h"
#include "common/fault.h"
#include "domain/event.h"
#include "domain/integrity.h"
#include "domain/merkle.h"
#include "domain/note.h"

#define MAX_BATCH 4000       /* records per poll */
#define BATCH_WAIT_MS 5      /* how long a batch may gather after its first record */
#define IDLE_POLL_MS 100     /* a poll without records: *stop is checked this often */
#define FENCE_BACKOFF_MS 500 /* before claiming a fenced partition again */
#define TXN_TIMEOUT_MS 30000

typedef Annals__Events__V1__Command Command;
typedef Annals__Events__V1__Committed Committed;
typedef Annals__Events__V1__Ack Ack;
typedef Annals__Events__V1__Entry Entry;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "annalsd sequencer: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t sz)
{
    void *q = realloc(p, sz ? sz : 1);
    if (!q) {
        fprintf(stderr, "annalsd sequencer: out of memory\n");
        abort();
    }
    return q;
}

/* ---- a string -> index map (open addressing) ---- */

typedef struct smap {
    char **keys;
    size_t *lens;
    size_t *vals;
    size_t cap, n;
} smap;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void smap_clear(smap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t *smap_slot(smap *m, const char *k, size_t n, bool *found)
{
    size_t i = (size_t)hash_bytes(k, n) & (m->cap - 1);
    while (m->keys[i]) {
        if (m->lens[i] == n && memcmp(m->keys[i], k, n) == 0) {
            *found = true;
            return &m->vals[i];
        }
        i = (i + 1) & (m->cap - 1);
    }
    *found = false;
    return &m->vals[i];
}

static bool smap_get(const smap *m, const char *k, size_t n, size_t *out)
{
    if (!m->cap)
        return false;
    bool found;
    size_t *v = smap_slot((smap *)m, k, n, &found);
    if (found)
        *out = *v;
    return found;
}

static void smap_put(smap *m, const char *k, size_t n, size_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        smap old = *m;
        m->cap = old.cap ? old.cap * 2 : 64;
        m->keys = xcalloc(m->cap, sizeof *m->keys);
        m->lens = xcalloc(m->cap, sizeof *m->lens);
        m->vals = xcalloc(m->cap, sizeof *m->vals);
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.keys[i]) {
                bool f;
                size_t *v = smap_slot(m, old.keys[i], old.lens[i], &f);
                size_t slot = (size_t)(v - m->vals);
                m->keys[slot] = old.keys[i];
                m->lens[slot] = old.lens[i];
                *v = old.vals[i];
                m->n++;
            }
        free(old.keys);
        free(old.lens);
        free(old.vals);
    }
    bool found;
    size_t *v = smap_slot(m, k, n, &found);
    if (!found) {
        size_t slot = (size_t)(v - m->vals);
        m->keys[slot] = xcalloc(1, n + 1);
        memcpy(m->keys[slot], k, n);
        m->lens[slot] = n;
        m->n++;
    }
    *v = val;
}

/* ---- state ---- */

/* A cached committed head. */
typedef struct chead {
    char *tenant, *log;
    ann_archive_head h;
} chead;

typedef struct part {
    bool owned;       /* assigned to us */
    uint64_t epoch;   /* our range_id; 0 when the claim is still to be made */
    bool serial;      /* the next head loads are linearizable (after an unknown outcome) */
    bool paused;      /* fenced or unclaimed: paused until claimed again */
    int64_t claim_at; /* when to try the claim (mono ms) */
    smap idx;         /* "<tenant>/<log>" -> heads[] */
    chead *heads;
    size_t nheads, capheads;
} part;

typedef struct seq {
    const ann_sequencer_config *cfg;
    ann_kafka_config kc;
    ann_sequencer_stats *st;
    rd_kafka_t *cons, *prod;
    ann_archive *ar;
    ann_archive_writer *wr;
    int32_t nparts, nacks;
    part *parts;
    char t_pending[256], t_committed[256], t_acks[256];
    unsigned rebalances;
    /* ANNALS_SEQ_TIMING=1: wall-clock ms per phase, printed every 5 s (diagnostics) */
    bool timing;
    int64_t tm_last, tm[8], tm_cmds, tm_batches;
} seq;

enum { TM_POLL, TM_HEADS, TM_LOOKUP, TM_ROWS, TM_COMMIT, TM_TXN, TM_N };
static const char *const tm_name[TM_N] = {"poll", "heads", "lookup", "rows", "commit", "txn"};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void tm_add(seq *s, int phase, int64_t *t0)
{
    if (!s->timing)
        return;
    int64_t now = mono_us();
    s->tm[phase] += now - *t0;
    *t0 = now;
}

static void tm_report(seq *s)
{
    if (!s->timing)
        return;
    int64_t now = mono_us();
    if (now - s->tm_last < 5000000)
        return;
    fprintf(stderr, "annalsd sequencer %s: timing ms:", s->cfg->instance);
    for (int i = 0; i < TM_N; i++)
        fprintf(stderr, " %s %lld", tm_name[i], (long long)(s->tm[i] / 1000));
    fprintf(stderr, " | batches %lld commands %lld over %lld ms\n", (long long)s->tm_batches,
            (long long)s->tm_cmds, (long long)((now - s->tm_last) / 1000));
    memset(s->tm, 0, sizeof s->tm);
    s->tm_cmds = s->tm_batches = 0;
    s->tm_last = now;
}

static void stat_add(seq *s, uint64_t *field, uint64_t n)
{
    if (s->st)
        __atomic_fetch_add(field, n, __ATOMIC_RELAXED);
}
#define STAT(s, f, n) stat_add((s), (s)->st ? &(s)->st->f : NULL, (n))

static void part_drop(part *p)
{
    for (size_t i = 0; i < p->nheads; i++) {
        free(p->heads[i].tenant);
        free(p->heads[i].log);
        ann_archive_head_release(&p->heads[i].h);
    }
    free(p->heads);
    p->heads = NULL;
    p->nheads = p->capheads = 0;
    smap_clear(&p->idx);
}

/* Caches h; the cache takes h's tree and checkpoint (and frees those it replaces). */
static size_t part_put(part *p, const char *t, const char *l, const ann_archive_head *h)
{
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(t, l, key);
    size_t i;
    if (smap_get(&p->idx, key, strlen(key), &i)) {
        ann_archive_head *old = &p->heads[i].h;
        if (old->tree != h->tree)
            free(old->tree);
        if (old->checkpoint != h->checkpoint)
            free(old->checkpoint);
        *old = *h;
        return i;
    }
    if (p->nheads == p->capheads) {
        p->capheads = p->capheads ? p->capheads * 2 : 32;
        p->heads = xrealloc(p->heads, p->capheads * sizeof *p->heads);
    }
    i = p->nheads++;
    p->heads[i].tenant = strdup(t);
    p->heads[i].log = strdup(l);
    if (!p->heads[i].tenant || !p->heads[i].log)
        abort();
    p->heads[i].h = *h;
    smap_put(&p->idx, key, strlen(key), i);
    return i;
}

/* ---- rebalance ---- */

static void claim(seq *s, int32_t pn)
{
    part *p = &s->parts[pn];
    ann_err err;
    part_drop(p);
    p->epoch = 0;
    if (ann_archive_claim_partition(s->ar, pn, &p->epoch, &err) < 0) {
        fprintf(stderr, "annalsd sequencer %s: claim of partition %d: %s\n", s->cfg->instance,
                (int)pn, err.msg);
        p->epoch = 0;
        p->claim_at = mono_ms() + FENCE_BACKOFF_MS;
        return;
    }
    STAT(s, claims, 1);
    p->serial = false; /* the claim's Paxos round settled the partition */
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    seq *s = opaque;
    s->rebalances++;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < list->cnt; i++) {
            int32_t pn = list->elems[i].partition;
            if (pn < 0 || pn >= s->nparts)
                continue;
            s->parts[pn].owned = true;
            s->parts[pn].paused = false;
            claim(s, pn);
            ANN_FAULT_POINT("seq.claimed");
        }
        rd_kafka_assign(rk, list);
        /* Partitions whose claim failed wait, paused, for the next try; the others are
         * resumed: librdkafka keeps a partition's pause across a reassignment, so one we
         * paused when fenced would otherwise stay paused while we own it again (nothing
         * of it sequenced until the next rebalance). */
        for (int i = 0; i < list->cnt; i++) {
            int32_t pn = list->elems[i].partition;
            if (pn < 0 || pn >= s->nparts)
                continue;
            rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(one, s->t_pending, pn);
            if (s->parts[pn].epoch == 0) {
                rd_kafka_pause_partitions(rk, one);
                s->parts[pn].paused = true;
            } else {
                rd_kafka_resume_partitions(rk, one);
            }
            rd_kafka_topic_partition_list_destroy(one);
        }
    } else {
        for (int i = 0; i < list->cnt; i++) {
            int32_t pn = list->elems[i].partition;
            if (pn < 0 || pn >= s->nparts)
                continue;
            s->parts[pn].owned = false;
            s->parts[pn].epoch = 0;
            s->parts[pn].paused = false;
            part_drop(&s->parts[pn]);
        }
        rd_kafka_assign(rk, NULL);
    }
}

/* Seeks partitions back to their committed offsets (the start if none). */
static void rewind_parts(seq *s, const int32_t *pns, size_t n)
{
    if (n == 0)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, s->t_pending, pns[i]);
    rd_kafka_resp_err_t e = rd_kafka_committed(s->cons, l, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "annalsd sequencer %s: committed offsets: %s\n", s->cfg->instance,
                rd_kafka_err2str(e));
    for (int i = 0; i < l->cnt; i++)
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR || l->elems[i].offset < 0)
            l->elems[i].offset = e == RD_KAFKA_RESP_ERR_NO_ERROR ? RD_KAFKA_OFFSET_BEGINNING
                                                                 : RD_KAFKA_OFFSET_STORED;
    rd_kafka_error_t *err = rd_kafka_seek_partitions(s->cons, l, 10000);
    if (err) {
        fprintf(stderr, "annalsd sequencer %s: rewind: %s\n", s->cfg->instance,
                rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void set_paused(seq *s, int32_t pn, bool pause)
{
    rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(one, s->t_pending, pn);
    if (pause)
        rd_kafka_pause_partitions(s->cons, one);
    else
        rd_kafka_resume_partitions(s->cons, one);
    rd_kafka_topic_partition_list_destroy(one);
    s->parts[pn].paused = pause;
}

/* ---- one batch ---- */

/* A record to produce in the transaction (payload malloc'd). */
typedef struct outrec {
    bool ack; /* acks topic, else committed */
    int32_t partition;
    char *key;
    size_t keylen;
    void *buf;
    size_t len;
} outrec;

typedef struct outs {
    outrec *r;
    size_t n, cap;
} outs;

static void outs_free(outs *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->r[i].key);
        free(o->r[i].buf);
    }
    free(o->r);
    memset(o, 0, sizeof *o);
}

static void outs_add(outs *o, bool ack, int32_t partition, const char *key, void *buf, size_t len)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 256;
        o->r = xrealloc(o->r, o->cap * sizeof *o->r);
    }
    size_t kl = strlen(key);
    char *k = xcalloc(1, kl + 1);
    memcpy(k, key, kl);
    o->r[o->n++] = (outrec){
        .ack = ack, .partition = partition, .key = k, .keylen = kl, .buf = buf, .len = len};
}

/* A decoded command in a partition's batch. */
typedef struct cmd {
    Command *c;
    size_t log; /* index into the batch's working logs */
} cmd;

/* A log touched by the batch: its committed head and the working one. The working head's
 * tree and checkpoint are the committed ones (the cache's) until the tree grows; then they
 * are the batch's own (`own`) until the cache takes them at the head commit. */
typedef struct wlog {
    const char *tenant, *log;
    ann_archive_head committed, work;
    bool changed;
    bool delete_rows;
    ann_merkle_frontier *ft; /* the working tree, once the batch extends it */
    bool treeless;           /* written before the tree: it stays without one */
    bool grown;              /* ft changed: sign and commit it */
    bool own;
    size_t last_rec; /* its last Committed record in the batch's outs */
    bool announced;  /* it has one */
} wlog;

/* An entry stored in Cassandra that a write carries again. */
typedef struct stored {
    Entry e;
    uint8_t *body;
    char *iid;
} stored;

/* Writes: per command, the new entries to store (pointers into the commands). */
typedef struct newrows {
    size_t cmd;
    ann_entry *e;
    size_t n;
} newrows;

typedef struct pbatch {
    seq *s;
    int32_t pn;
    part *p;
    cmd *cmds;
    size_t ncmds;
    wlog *logs;
    size_t nlogs;
    smap logidx;
    smap iids;        /* "<log idx>\x01<insert_id>" -> index in assigned[] */
    Entry **assigned; /* entries given an id in this batch (or found), by iids */
    size_t nassigned, capassigned;
    stored **stored;
    size_t nstored, capstored;
    struct newrows *nr; /* per command: the new entries to store */
    bool *revoke;       /* per command: a revocation to store */
    size_t nnew;
    outs out;
    /* seals answered once the batch's trees are signed: command index and op_seq */
    size_t *seal_cmd;
    uint64_t *seal_op;
    size_t nseal;
} pbatch;

static void pbatch_free(pbatch *b)
{
    for (size_t i = 0; b->logs && i < b->nlogs; i++) {
        free(b->logs[i].ft);
        if (b->logs[i].own) {
            free(b->logs[i].work.tree);
            free(b->logs[i].work.checkpoint);
        }
    }
    smap_clear(&b->logidx);
    smap_clear(&b->iids);
    free(b->cmds);
    free(b->logs);
    free(b->assigned);
    for (size_t i = 0; i < b->nstored; i++) {
        free(b->stored[i]->body);
        free(b->stored[i]->iid);
        free(b->stored[i]);
    }
    free(b->stored);
    if (b->nr)
        for (size_t i = 0; i < b->ncmds; i++)
            free(b->nr[i].e);
    free(b->nr);
    free(b->revoke);
    free(b->seal_cmd);
    free(b->seal_op);
    outs_free(&b->out);
}

static void pack_ack(pbatch *b, const Command *c, Ack *a)
{
    a->request_id = c->request_id;
    a->origin = c->origin;
    a->tenant_id = c->tenant_id;
    a->log_id = c->log_id;
    size_t n = annals__events__v1__ack__get_packed_size(a);
    void *buf = xcalloc(1, n);
    annals__events__v1__ack__pack(a, buf);
    const char *origin = c->origin ? c->origin : "";
    int32_t pp = ann_event_partition(origin, strlen(origin), b->s->nacks);
    outs_add(&b->out, true, pp, origin, buf, n);
}

static void pack_committed(pbatch *b, const Command *c, Committed *m)
{
    m->request_id = c->request_id;
    m->origin = c->origin;
    m->tenant_id = c->tenant_id;
    m->log_id = c->log_id;
    size_t n = annals__events__v1__committed__get_packed_size(m);
    void *buf = xcalloc(1, n);
    annals__events__v1__committed__pack(m, buf);
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(c->tenant_id, c->log_id, key);
    outs_add(&b->out, false, b->pn, key, buf, n);
    size_t li;
    if (smap_get(&b->logidx, key, strlen(key), &li)) {
        b->logs[li].last_rec = b->out.n - 1;
        b->logs[li].announced = true;
    }
}

/* The echo of a purge tick: a Committed record without a log, so the committed
 * partition's active segment gets an append (and rolls once segment.ms has passed). */
static void pack_tick(pbatch *b)
{
    Committed m = ANNALS__EVENTS__V1__COMMITTED__INIT;
    Annals__Events__V1__Tick t = ANNALS__EVENTS__V1__TICK__INIT;
    m.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_TICK;
    m.tick = &t;
    size_t n = annals__events__v1__committed__get_packed_size(&m);
    void *buf = xcalloc(1, n);
    annals__events__v1__committed__pack(&m, buf);
    outs_add(&b->out, false, b->pn, "", buf, n);
}

static void ack_simple(pbatch *b, const Command *c, int code, const char *msg, uint64_t op_seq,
                       uint64_t count)
{
    Ack a = ANNALS__EVENTS__V1__ACK__INIT;
    a.code = code;
    a.message = (char *)(msg ? msg : "");
    a.op_seq = op_seq;
    a.entry_count = count;
    pack_ack(b, c, &a);
}

static uint64_t count_of(const ann_archive_head *h)
{
    return h->exists && h->next_id > 0 ? h->next_id - 1 : 0;
}

static stored *stored_copy(const ann_entry *e)
{
    stored *st = xcalloc(1, sizeof *st);
    annals__events__v1__entry__init(&st->e);
    st->e.entry_id = e->entry_id;
    st->e.time_ns = e->time_ns;
    st->e.insert_time_ns = e->insert_time_ns;
    st->e.severity = e->severity;
    st->iid = xcalloc(1, e->insert_id_len + 1);
    memcpy(st->iid, e->insert_id, e->insert_id_len);
    st->e.insert_id = (ProtobufCBinaryData){e->insert_id_len, (uint8_t *)st->iid};
    st->body = xcalloc(1, e->body_len + 1);
    if (e->body_len)
        memcpy(st->body, e->body, e->body_len);
    st->e.body = (ProtobufCBinaryData){e->body_len, st->body};
    return st;
}

static int u64_cmp(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

/* Entries found stored, loaded by runs of ids (one read per run: a replayed command's
 * ids are consecutive, and a batch row holds up to 1,024 of them). */
typedef struct stored_set {
    uint64_t *ids; /* sorted, distinct */
    stored **got;  /* got[k]: ids[k] as stored, or NULL */
    size_t n;
} stored_set;

static int keep_entries(const ann_entry *e, void *ud)
{
    stored_set *ss = ud;
    uint64_t *at = bsearch(&e->entry_id, ss->ids, ss->n, sizeof *ss->ids, u64_cmp);
    if (at && !ss->got[at - ss->ids])
        ss->got[at - ss->ids] = stored_copy(e);
    return 0;
}

/* Loads the entries ids[0..n) of a log as Cassandra stores them (so a redacted one stays
 * so) into ss (ids sorted and made distinct here; ss owns them until stored_set_done). */
static int stored_load(pbatch *b, const wlog *w, uint64_t *ids, size_t n, stored_set *ss,
                       ann_err *err)
{
    qsort(ids, n, sizeof *ids, u64_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || ids[m - 1] != ids[i])
            ids[m++] = ids[i];
    ss->ids = ids;
    ss->n = m;
    ss->got = xcalloc(m ? m : 1, sizeof *ss->got);
    for (size_t i = 0; i < m;) {
        size_t j = i + 1;
        while (j < m && ids[j] - ids[i] < ANN_ARCHIVE_BATCH_IDS)
            j++;
        if (ann_archive_read_at(b->s->ar, w->tenant, w->log, w->committed.next_id, ids[i],
                                ids[j - 1] + 1, keep_entries, ss, err) < 0)
            return -1;
        i = j;
    }
    return 0;
}

/* The stored entry of id, registered in the batch (freed with it). */
static int stored_take(pbatch *b, const wlog *w, stored_set *ss, uint64_t id, Entry **out,
                       ann_err *err)
{
    uint64_t *at = bsearch(&id, ss->ids, ss->n, sizeof *ss->ids, u64_cmp);
    stored *st = at ? ss->got[at - ss->ids] : NULL;
    if (!st)
        return ann_err_set(err, ANN_EINTERNAL, "entry %llu of log %s vanished",
                           (unsigned long long)id, w->log);
    ss->got[at - ss->ids] = NULL;
    if (b->nstored == b->capstored) {
        b->capstored = b->capstored ? b->capstored * 2 : 16;
        b->stored = xrealloc(b->stored, b->capstored * sizeof *b->stored);
    }
    b->stored[b->nstored++] = st;
    *out = &st->e;
    return 0;
}

static void stored_set_done(stored_set *ss)
{
    for (size_t i = 0; i < ss->n; i++)
        if (ss->got[i]) {
            free(ss->got[i]->body);
            free(ss->got[i]->iid);
            free(ss->got[i]);
        }
    free(ss->got);
    free(ss->ids);
}

static void assigned_put(pbatch *b, size_t log, const Entry *e, Entry *val)
{
    size_t kl = 24 + e->insert_id.len;
    char *k = xcalloc(1, kl);
    int hl = snprintf(k, 24, "%zu", log);
    k[hl] = '\x01';
    memcpy(k + hl + 1, e->insert_id.data, e->insert_id.len);
    if (b->nassigned == b->capassigned) {
        b->capassigned = b->capassigned ? b->capassigned * 2 : 256;
        b->assigned = xrealloc(b->assigned, b->capassigned * sizeof *b->assigned);
    }
    b->assigned[b->nassigned] = val;
    smap_put(&b->iids, k, (size_t)hl + 1 + e->insert_id.len, b->nassigned++);
    free(k);
}

static Entry *assigned_get(pbatch *b, size_t log, const Entry *e)
{
    size_t kl = 24 + e->insert_id.len;
    char *k = xcalloc(1, kl);
    int hl = snprintf(k, 24, "%zu", log);
    k[hl] = '\x01';
    memcpy(k + hl + 1, e->insert_id.data, e->insert_id.len);
    size_t i;
    bool f = smap_get(&b->iids, k, (size_t)hl + 1 + e->insert_id.len, &i);
    free(k);
    return f ? b->assigned[i] : NULL;
}

/* Result of a partition's batch. */
enum { P_OK, P_FENCED, P_FAILED };

/* ---- the tree (docs/integrity.md, "Distributed mode") ---- */

/* The log's working tree, decoded from its head the first time the batch extends it; NULL
 * when the log has none (no signer, or entries from before the tree). A stored frontier
 * that does not match the head's count is refused: err, and the batch fails loudly. */
static ann_merkle_frontier *tree_of(pbatch *b, wlog *w, ann_err *err)
{
    if (w->ft || w->treeless || !b->s->cfg->signer)
        return w->ft;
    uint64_t count = count_of(&w->work);
    ann_merkle_frontier *f = xcalloc(1, sizeof *f);
    if (!w->work.tree) {
        if (count > 0) { /* entries from before the tree */
            free(f);
            w->treeless = true;
            return NULL;
        }
        ann_merkle_frontier_init(f);
    } else if (ann_merkle_frontier_decode(w->work.tree, w->work.tree_len, f, err) != 0 ||
               f->size != count) {
        free(f);
        ann_err_set(err, ANN_ECORRUPT,
                    "log %.64s of tenant %.64s: its stored tree does not match its head "
                    "(%llu entries): refusing to extend it",
                    w->log, w->tenant, (unsigned long long)count);
        return NULL;
    }
    w->ft = f;
    return f;
}

/* Adds new entry e (its id set) to the log's tree. */
static int tree_add(pbatch *b, wlog *w, const Entry *e, ann_err *err)
{
    err->code = 0;
    ann_merkle_frontier *f = tree_of(b, w, err);
    if (!f)
        return err->code ? -1 : 0;
    uint8_t bh[ANN_HASH_LEN], leaf[ANN_HASH_LEN];
    if (ann_integrity_entry_leaf(e->entry_id, e->time_ns, e->insert_time_ns, e->severity,
                                 e->insert_id.data, e->insert_id.len, e->body.data, e->body.len, bh,
                                 leaf) != 0) {
        ann_err_set(err, ANN_ECORRUPT, "log %.64s: entry %llu has no salt field", w->log,
                    (unsigned long long)e->entry_id);
        return -1;
    }
    if (ann_merkle_frontier_append(f, leaf, err) != 0)
        return -1;
    w->grown = true;
    return 0;
}

/* For each log whose tree grew (or began): its frontier and a checkpoint signed over it
 * become the working head's, committed together under the fence, and the checkpoint rides
 * on the log's last Committed record of the batch (after every entry it covers). */
static int trees_sign(pbatch *b, ann_err *err)
{
    for (size_t i = 0; i < b->nlogs; i++) {
        wlog *w = &b->logs[i];
        uint64_t size = 0;
        if (w->grown) {
            ann_buf t = ANN_BUF_INIT, note = ANN_BUF_INIT;
            uint8_t root[ANN_HASH_LEN];
            ann_merkle_frontier_encode(w->ft, &t);
            ann_merkle_frontier_root(w->ft, root);
            if (ann_checkpoint_sign(b->s->cfg->signer, w->log, w->ft->size, root, &note, err) !=
                0) {
                ann_buf_release(&t);
                ann_buf_release(&note);
                return -1;
            }
            if (w->own) {
                free(w->work.tree);
                free(w->work.checkpoint);
            }
            w->own = true;
            w->work.tree = t.data;
            w->work.tree_len = t.len;
            w->work.checkpoint = note.data;
            w->work.checkpoint_len = note.len;
            w->changed = true;
            size = w->ft->size;
        } else {
            /* Announced again without growing (a retry, or the replay of a batch whose Kafka
             * transaction aborted after its heads were committed): the checkpoint already
             * committed goes along, so a projector that never saw it gets it. */
            ann_merkle_frontier f;
            if (!w->announced || !w->work.checkpoint ||
                ann_merkle_frontier_decode(w->work.tree, w->work.tree_len, &f, NULL) != 0)
                continue;
            size = f.size;
        }
        /* Committed.checkpoint (7) appended to the log's last record: protobuf merges a
         * field given after the others, so the record need not be packed again. */
        Annals__Events__V1__Checkpoint ck = ANNALS__EVENTS__V1__CHECKPOINT__INIT;
        ck.note.data = w->work.checkpoint;
        ck.note.len = w->work.checkpoint_len;
        ck.size = size;
        size_t n = annals__events__v1__checkpoint__get_packed_size(&ck);
        outrec *r = &b->out.r[w->last_rec];
        r->buf = xrealloc(r->buf, r->len + 1 + 10 + n);
        uint8_t *p = (uint8_t *)r->buf + r->len;
        *p++ = (7 << 3) | 2;
        for (uint64_t v = n;; v >>= 7) {
            *p++ = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
            if (v < 0x80)
                break;
        }
        annals__events__v1__checkpoint__pack(&ck, p);
        r->len = (size_t)(p - (uint8_t *)r->buf) + n;
    }
    return 0;
}

/* `replayed`: the command's server-made ids were found stored (its probe hit); any of
 * them still new then get insert_id rows of their own, so the request's row written the
 * first time keeps naming the first. */
static int seq_write(pbatch *b, cmd *cm, const uint64_t *found, bool replayed, newrows *nr,
                     ann_err *err)
{
    Command *c = cm->c;
    wlog *w = &b->logs[cm->log];
    Annals__Events__V1__Write *wr = c->write;
    size_t n = wr ? wr->n_entries : 0;
    char msg[160];
    if (!w->work.exists || w->work.deleted) {
        snprintf(msg, sizeof msg, "log %.64s not found", c->log_id);
        ack_simple(b, c, ANN_ENOTFOUND, msg, 0, count_of(&w->work));
        return 0;
    }
    if (n == 0) {
        ack_simple(b, c, 0, "", 0, count_of(&w->work));
        return 0;
    }
    if (w->work.sealed) { /* only a retry of stored entries gets an answer: their ids */
        for (size_t i = 0; i < n; i++)
            if (!assigned_get(b, cm->log, wr->entries[i]) &&
                !(found[i] && found[i] < w->committed.next_id)) {
                snprintf(msg, sizeof msg, "log %.64s is sealed: it takes no new entries",
                         c->log_id);
                ack_simple(b, c, ANN_EPRECOND, msg, 0, count_of(&w->work));
                return 0;
            }
    }
    /* the entries found stored, read once */
    stored_set ss = {0};
    {
        uint64_t *fids = xcalloc(n, sizeof *fids);
        size_t nf = 0;
        for (size_t i = 0; i < n; i++)
            if (found[i] && found[i] < w->committed.next_id)
                fids[nf++] = found[i];
        if (stored_load(b, w, fids, nf, &ss, err) < 0) {
            stored_set_done(&ss);
            return -1;
        }
    }
    uint64_t *ids = xcalloc(n, sizeof *ids);
    Entry **carry = xcalloc(n, sizeof *carry);
    size_t ncarry = 0, n_new = 0;
    nr->e = xcalloc(n, sizeof *nr->e);
    nr->n = 0;
    for (size_t i = 0; i < n; i++) {
        Entry *e = wr->entries[i];
        Entry *prev = assigned_get(b, cm->log, e);
        if (prev) {
            ids[i] = prev->entry_id;
            /* carried once per command */
            bool dup = false;
            for (size_t k = 0; k < ncarry && !dup; k++)
                dup = carry[k]->entry_id == prev->entry_id;
            if (!dup)
                carry[ncarry++] = prev;
            continue;
        }
        if (found[i] && found[i] < w->committed.next_id) {
            Entry *st = NULL;
            if (stored_take(b, w, &ss, found[i], &st, err) < 0) {
                free(ids);
                free(carry);
                stored_set_done(&ss);
                return -1;
            }
            ids[i] = found[i];
            carry[ncarry++] = st;
            assigned_put(b, cm->log, e, st);
            continue;
        }
        e->entry_id = w->work.next_id; /* the tree holds the entries before it */
        if (tree_add(b, w, e, err) != 0) {
            free(ids);
            free(carry);
            stored_set_done(&ss);
            return -1;
        }
        w->work.next_id++;
        ids[i] = e->entry_id;
        carry[ncarry++] = e;
        assigned_put(b, cm->log, e, e);
        nr->e[nr->n++] =
            (ann_entry){.entry_id = e->entry_id,
                        .flags = e->insert_id_generated && !replayed ? ANN_ENTRY_GENERATED_ID : 0,
                        .time_ns = e->time_ns,
                        .insert_time_ns = e->insert_time_ns,
                        .severity = e->severity,
                        .insert_id = (const char *)e->insert_id.data,
                        .insert_id_len = e->insert_id.len,
                        .body = e->body.data,
                        .body_len = e->body.len};
        n_new++;
    }
    /* Announced even when nothing is new (a retry, or the replay of a batch whose Kafka
     * transaction aborted after its heads were committed): then with op_seq 0 and the
     * entries as stored, so a projector that never saw them gets them, redactions kept. */
    uint64_t op_seq = 0;
    {
        if (n_new > 0) {
            op_seq = w->work.next_op++;
            w->changed = true;
        }
        Committed m = ANNALS__EVENTS__V1__COMMITTED__INIT;
        Annals__Events__V1__Write cw = ANNALS__EVENTS__V1__WRITE__INIT;
        cw.n_entries = ncarry;
        cw.entries = carry;
        m.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_WRITE;
        m.write = &cw;
        m.op_seq = op_seq;
        m.entry_count = count_of(&w->work);
        pack_committed(b, c, &m);
    }
    Ack a = ANNALS__EVENTS__V1__ACK__INIT;
    a.message = "";
    a.n_entry_ids = n;
    a.entry_ids = ids;
    a.n_new = n_new;
    a.op_seq = op_seq;
    a.entry_count = count_of(&w->work);
    pack_ack(b, c, &a);
    free(ids);
    free(carry);
    stored_set_done(&ss);
    return 0;
}

static void seq_other(pbatch *b, cmd *cm, bool *revoke)
{
    Command *c = cm->c;
    wlog *w = &b->logs[cm->log];
    char msg[200];
    Committed m = ANNALS__EVENTS__V1__COMMITTED__INIT;
    *revoke = false;
    switch (c->op_case) {
    case ANNALS__EVENTS__V1__COMMAND__OP_CREATE_LOG:
        if (w->work.exists && w->work.deleted) {
            ack_simple(b, c, 0, "", 0, count_of(&w->work));
            return;
        }
        if (!w->work.exists) {
            w->work = (ann_archive_head){.exists = true, .next_id = 1, .next_op = 2};
            w->changed = true;
            ann_err ignored;
            if (tree_of(b, w, &ignored)) /* the empty tree, signed: a checkpoint at once */
                w->grown = true;
        }
        /* new, or a replay: announced (again) as op 1 */
        m.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG;
        m.create_log = c->create_log;
        m.op_seq = 1;
        m.entry_count = count_of(&w->work);
        pack_committed(b, c, &m);
        ack_simple(b, c, 0, "", 1, count_of(&w->work));
        return;
    case ANNALS__EVENTS__V1__COMMAND__OP_REVOKE: {
        if (!w->work.exists || w->work.deleted) {
            snprintf(msg, sizeof msg, "log %.64s not found", c->log_id);
            ack_simple(b, c, ANN_ENOTFOUND, msg, 0, count_of(&w->work));
            return;
        }
        Annals__Events__V1__Revoke *rv = c->revoke;
        uint64_t count = count_of(&w->work);
        for (size_t i = 0; i < rv->n_entry_ids; i++)
            if (rv->entry_ids[i] == 0 || rv->entry_ids[i] > count) {
                snprintf(msg, sizeof msg, "entry %llu not found in log %.64s",
                         (unsigned long long)rv->entry_ids[i], c->log_id);
                ack_simple(b, c, ANN_ENOTFOUND, msg, 0, count);
                return;
            }
        if (rv->n_entry_ids == 0) {
            ack_simple(b, c, 0, "", 0, count);
            return;
        }
        *revoke = true;
        m.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_REVOKE;
        m.revoke = rv;
        m.op_seq = w->work.next_op++;
        m.entry_count = count;
        w->changed = true;
        pack_committed(b, c, &m);
        ack_simple(b, c, 0, "", m.op_seq, count);
        return;
    }
    case ANNALS__EVENTS__V1__COMMAND__OP_DELETE_LOG: {
        if (!w->work.exists) {
            snprintf(msg, sizeof msg, "log %.64s not found", c->log_id);
            ack_simple(b, c, ANN_ENOTFOUND, msg, 0, 0);
            return;
        }
        Annals__Events__V1__DeleteLog dl = ANNALS__EVENTS__V1__DELETE_LOG__INIT;
        if (w->work.deleted) {
            m.op_seq = w->work.next_op > 1 ? w->work.next_op - 1 : 1; /* a replay */
        } else {
            w->work.deleted = true;
            m.op_seq = w->work.next_op++;
            w->changed = true;
        }
        w->delete_rows = true;
        m.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG;
        m.delete_log = c->delete_log ? c->delete_log : &dl;
        m.entry_count = count_of(&w->work);
        pack_committed(b, c, &m);
        ack_simple(b, c, 0, "", m.op_seq, count_of(&w->work));
        return;
    }
    case ANNALS__EVENTS__V1__COMMAND__OP_SEAL: {
        if (!w->work.exists || w->work.deleted) {
            snprintf(msg, sizeof msg, "log %.64s not found", c->log_id);
            ack_simple(b, c, ANN_ENOTFOUND, msg, 0, count_of(&w->work));
            return;
        }
        ann_err ignored;
        if (!tree_of(b, w, &ignored) && !w->work.checkpoint) {
            snprintf(msg, sizeof msg,
                     "log %.64s has no tree: its entries were written before checkpoints",
                     c->log_id);
            ack_simple(b, c, ANN_EPRECOND, msg, 0, count_of(&w->work));
            return;
        }
        Annals__Events__V1__Seal sl = ANNALS__EVENTS__V1__SEAL__INIT;
        if (w->work.sealed) {
            m.op_seq = w->work.next_op > 1 ? w->work.next_op - 1 : 1; /* again: harmless */
        } else {
            w->work.sealed = true;
            m.op_seq = w->work.next_op++;
            w->changed = true;
        }
        m.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_SEAL;
        m.seal = c->seal ? c->seal : &sl;
        m.entry_count = count_of(&w->work);
        pack_committed(b, c, &m);
        /* answered with the final checkpoint once the batch's trees are signed */
        b->seal_cmd = xrealloc(b->seal_cmd, (b->nseal + 1) * sizeof *b->seal_cmd);
        b->seal_op = xrealloc(b->seal_op, (b->nseal + 1) * sizeof *b->seal_op);
        b->seal_cmd[b->nseal] = (size_t)(cm - b->cmds);
        b->seal_op[b->nseal++] = m.op_seq;
        return;
    }
    default:
        snprintf(msg, sizeof msg, "command without an operation");
        ack_simple(b, c, ANN_EINVAL, msg, 0, count_of(&w->work));
        return;
    }
}

/* Sequences one partition's commands: heads, dedup lookups, ids; nothing written yet
 * (store_partitions writes the rows and commits the heads). */
static int prepare_partition(pbatch *b, ann_err *err)
{
    seq *s = b->s;
    part *p = b->p;
    int64_t t0 = s->timing ? mono_us() : 0;
    /* 1. the logs, their committed heads (cached, else loaded) */
    const char **lt = xcalloc(b->ncmds, sizeof *lt), **ll = xcalloc(b->ncmds, sizeof *ll);
    size_t *miss = xcalloc(b->ncmds, sizeof *miss), nmiss = 0;
    b->logs = xcalloc(b->ncmds, sizeof *b->logs);
    for (size_t i = 0; i < b->ncmds; i++) {
        Command *c = b->cmds[i].c;
        char key[ANN_EVENT_KEY_LEN + 1];
        ann_event_key(c->tenant_id, c->log_id, key);
        size_t li;
        if (!smap_get(&b->logidx, key, strlen(key), &li)) {
            li = b->nlogs++;
            smap_put(&b->logidx, key, strlen(key), li);
            wlog *w = &b->logs[li];
            w->tenant = c->tenant_id;
            w->log = c->log_id;
            size_t ci;
            if (smap_get(&p->idx, key, strlen(key), &ci)) {
                w->committed = p->heads[ci].h;
            } else {
                lt[nmiss] = c->tenant_id;
                ll[nmiss] = c->log_id;
                miss[nmiss++] = li;
            }
        }
        b->cmds[i].log = li;
    }
    int rc = 0;
    if (nmiss) {
        ann_archive_head *hs = xcalloc(nmiss, sizeof *hs);
        rc = ann_archive_heads_load(s->ar, b->pn, lt, ll, nmiss, p->serial, hs, err);
        for (size_t k = 0; k < nmiss; k++) {
            if (rc != 0) { /* those loaded before the failure */
                ann_archive_head_release(&hs[k]);
                continue;
            }
            b->logs[miss[k]].committed = hs[k];
            part_put(p, lt[k], ll[k], &hs[k]); /* the cache owns its tree now */
        }
        free(hs);
        if (rc == 0)
            p->serial = false;
    }
    free(lt);
    free(ll);
    free(miss);
    if (rc < 0)
        return P_FAILED;
    for (size_t i = 0; i < b->nlogs; i++)
        b->logs[i].work = b->logs[i].committed;
    tm_add(s, TM_HEADS, &t0);

    /* 2. dedup lookups of every write's insert_ids against committed rows. Server-made
     * insert_ids (events.proto, insert_id_generated) are unique to their command, so only
     * a replay of the command can find them stored: one probe (the first) decides, and
     * only a probe that hits looks the others up (through their request's row in the
     * archive). Client-given insert_ids are each looked up. */
    size_t *qprobe = xcalloc(b->ncmds, sizeof *qprobe);
    uint64_t **found = xcalloc(b->ncmds, sizeof *found);
    bool *replayed = xcalloc(b->ncmds, sizeof *replayed);
    ann_archive_iid_query *q = NULL;
    size_t *qcmd = NULL, *qent = NULL;
    size_t nq = 0, cap = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        size_t from = nq;
        for (size_t i = 0; i < b->ncmds; i++) {
            Command *c = b->cmds[i].c;
            const wlog *w = &b->logs[b->cmds[i].log];
            if (pass == 0)
                qprobe[i] = SIZE_MAX;
            if (c->op_case != ANNALS__EVENTS__V1__COMMAND__OP_WRITE || !c->write ||
                c->write->n_entries == 0)
                continue;
            size_t n = c->write->n_entries;
            if (pass == 0)
                found[i] = xcalloc(n, sizeof *found[i]);
            if (!w->committed.exists || w->committed.deleted || w->committed.next_id <= 1)
                continue;
            if (pass == 1) {
                if (qprobe[i] == SIZE_MAX || q[qprobe[i]].id_out == 0)
                    continue; /* no probe, or one that missed: the server-made ids are new */
                replayed[i] = true;
            }
            bool probed = false;
            for (size_t k = 0; k < n; k++) {
                Entry *e = c->write->entries[k];
                bool gen = e->insert_id_generated;
                if (pass == 0 && gen && probed)
                    continue;
                if (pass == 1 && (!gen || k == qent[qprobe[i]]))
                    continue;
                if (pass == 0 && gen) {
                    probed = true;
                    qprobe[i] = nq;
                }
                if (nq == cap) {
                    cap = cap ? cap * 2 : 1024;
                    q = xrealloc(q, cap * sizeof *q);
                    qcmd = xrealloc(qcmd, cap * sizeof *qcmd);
                    qent = xrealloc(qent, cap * sizeof *qent);
                }
                qcmd[nq] = i;
                qent[nq] = k;
                q[nq++] = (ann_archive_iid_query){.tenant_id = w->tenant,
                                                  .log_id = w->log,
                                                  .next_id = w->committed.next_id,
                                                  .insert_id = (const char *)e->insert_id.data,
                                                  .insert_id_len = e->insert_id.len,
                                                  .generated = gen};
            }
        }
        if (nq > from && ann_archive_lookup_many(s->ar, q + from, nq - from, err) < 0)
            rc = -1;
    }
    for (size_t j = 0; rc == 0 && j < nq; j++)
        found[qcmd[j]][qent[j]] = q[j].id_out;
    free(q);
    free(qcmd);
    free(qent);
    free(qprobe);
    if (rc < 0) {
        for (size_t i = 0; i < b->ncmds; i++)
            free(found[i]);
        free(found);
        free(replayed);
        return P_FAILED;
    }

    tm_add(s, TM_LOOKUP, &t0);
    /* 3. sequence in order */
    newrows *nr = xcalloc(b->ncmds, sizeof *nr);
    bool *revoke = xcalloc(b->ncmds, sizeof *revoke);
    for (size_t i = 0; i < b->ncmds && rc == 0; i++) {
        cmd *cm = &b->cmds[i];
        if (cm->c->op_case == ANNALS__EVENTS__V1__COMMAND__OP_WRITE) {
            uint64_t zero_found[1] = {0};
            rc = seq_write(b, cm, found[i] ? found[i] : zero_found, replayed[i], &nr[i], err);
        } else {
            seq_other(b, cm, &revoke[i]);
        }
    }
    if (rc == 0)
        rc = trees_sign(b, err);
    for (size_t k = 0; rc == 0 && k < b->nseal; k++) {
        const cmd *cm = &b->cmds[b->seal_cmd[k]];
        const wlog *w = &b->logs[cm->log];
        Ack a = ANNALS__EVENTS__V1__ACK__INIT;
        a.message = "";
        a.op_seq = b->seal_op[k];
        a.entry_count = count_of(&w->work);
        a.checkpoint.data = w->work.checkpoint;
        a.checkpoint.len = w->work.checkpoint_len;
        pack_ack(b, cm->c, &a);
    }
    for (size_t i = 0; i < b->ncmds; i++)
        free(found[i]);
    free(found);
    free(replayed);
    b->nr = nr;
    b->revoke = revoke;
    for (size_t i = 0; i < b->ncmds; i++)
        b->nnew += nr[i].n;
    return rc < 0 ? P_FAILED : P_OK;
}

/* Stores the prepared partitions bs[0..n): every partition's rows under its epoch in
 * flight together, then revocations (they may name ids just written), then each
 * partition's ONE conditional head commit, all in flight together. res[i] and errs[i]
 * get each partition's outcome (P_OK, P_FENCED, P_FAILED). */
static void store_partitions(seq *s, pbatch **bs, size_t n, int *res, ann_err *errs)
{
    int64_t t0 = s->timing ? mono_us() : 0;
    bool rows_ok = true;
    ann_err rerr;
    ann_err_clear(&rerr);
    for (size_t k = 0; k < n; k++) {
        res[k] = P_OK;
        pbatch *b = bs[k];
        for (size_t i = 0; rows_ok && i < b->ncmds; i++)
            if (b->nr[i].n) {
                const wlog *w = &b->logs[b->cmds[i].log];
                if (ann_archive_writer_add(s->wr, w->tenant, w->log, b->p->epoch, b->nr[i].e,
                                           b->nr[i].n, &rerr) < 0)
                    rows_ok = false;
            }
    }
    if (ann_archive_writer_wait(s->wr, rows_ok ? &rerr : NULL) < 0)
        rows_ok = false;
    if (!rows_ok) {
        for (size_t k = 0; k < n; k++) {
            res[k] = P_FAILED;
            errs[k] = rerr;
        }
        return;
    }
    bool any = false;
    for (size_t k = 0; k < n; k++) {
        pbatch *b = bs[k];
        for (size_t i = 0; res[k] == P_OK && i < b->ncmds; i++)
            if (b->revoke[i]) {
                Command *c = b->cmds[i].c;
                Annals__Events__V1__Revoke *rv = c->revoke;
                if (ann_archive_revoke(s->ar, c->tenant_id, c->log_id, rv->entry_ids,
                                       rv->n_entry_ids, rv->actor, rv->reason, rv->time_ns,
                                       &errs[k]) < 0)
                    res[k] = P_FAILED;
            }
        any = any || (res[k] == P_OK && b->ncmds > 0);
    }
    if (any)
        ANN_FAULT_POINT("seq.rows_written");
    tm_add(s, TM_ROWS, &t0);

    /* ONE conditional commit per partition of every head it advanced, all in flight */
    ann_cql_future **f = xcalloc(n, sizeof *f);
    for (size_t k = 0; k < n; k++) {
        pbatch *b = bs[k];
        if (res[k] != P_OK)
            continue;
        ann_archive_head_update *u = xcalloc(b->nlogs, sizeof *u);
        size_t nu = 0;
        for (size_t i = 0; i < b->nlogs; i++)
            if (b->logs[i].changed)
                u[nu++] =
                    (ann_archive_head_update){.tenant_id = b->logs[i].tenant,
                                              .log_id = b->logs[i].log,
                                              .next_id = b->logs[i].work.next_id,
                                              .next_op = b->logs[i].work.next_op,
                                              .deleted = b->logs[i].work.deleted,
                                              .tree = b->logs[i].work.tree,
                                              .tree_len = b->logs[i].work.tree_len,
                                              .checkpoint = b->logs[i].work.checkpoint,
                                              .checkpoint_len = b->logs[i].work.checkpoint_len,
                                              .sealed = b->logs[i].work.sealed};
        if (nu) {
            f[k] = ann_archive_commit_heads_submit(s->ar, b->pn, b->p->epoch, u, nu, &errs[k]);
            if (!f[k])
                res[k] = P_FAILED; /* never sent: the heads are as they were */
        }
        free(u);
    }
    any = false;
    for (size_t k = 0; k < n; k++) {
        pbatch *b = bs[k];
        if (!f[k])
            continue;
        uint64_t cur = 0;
        int cr = ann_archive_commit_heads_finish(f[k], &cur, &errs[k]);
        if (cr == ANN_ARCHIVE_FENCED) {
            ann_err_set(&errs[k], ANN_EUNAVAIL, "partition %d: fenced (range_id %llu, ours %llu)",
                        (int)b->pn, (unsigned long long)cur, (unsigned long long)b->p->epoch);
            res[k] = P_FENCED;
        } else if (cr < 0) {
            b->p->serial = true; /* outcome unknown: settle with serial reads */
            res[k] = P_FAILED;
        } else {
            any = true;
        }
    }
    free(f);
    tm_add(s, TM_COMMIT, &t0);
    if (any)
        ANN_FAULT_POINT("seq.heads_committed");
    for (size_t k = 0; k < n; k++) {
        pbatch *b = bs[k];
        if (res[k] != P_OK)
            continue;
        for (size_t i = 0; i < b->nlogs; i++)
            if (b->logs[i].changed) {
                part_put(b->p, b->logs[i].tenant, b->logs[i].log, &b->logs[i].work);
                b->logs[i].own = false; /* the cache's now */
            }
        STAT(s, entries, b->nnew);
    }
}

/* ---- the Kafka transaction ---- */

enum { TXN_OK, TXN_ABORTED, TXN_FATAL };

/* Handles a transactional call's error: TXN_OK to retry it, else the outcome. */
static int txn_error(seq *s, const char *what, rd_kafka_error_t *e, ann_err *err)
{
    int ret;
    fprintf(stderr, "annalsd sequencer %s: %s: %s\n", s->cfg->instance, what,
            rd_kafka_error_string(e));
    if (rd_kafka_error_is_fatal(e)) {
        ann_err_set(err, ANN_EIO, "kafka %s: %s (fatal)", what, rd_kafka_error_string(e));
        ret = TXN_FATAL;
    } else if (rd_kafka_error_is_retriable(e) && !rd_kafka_error_txn_requires_abort(e)) {
        ret = TXN_OK;
    } else {
        ret = TXN_ABORTED;
    }
    rd_kafka_error_destroy(e);
    return ret;
}

static int txn_abort(seq *s, ann_err *err)
{
    for (int i = 0; i < 10; i++) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(s->prod, TXN_TIMEOUT_MS);
        if (!e)
            return TXN_ABORTED;
        int r = txn_error(s, "abort", e, err);
        if (r == TXN_FATAL)
            return TXN_FATAL;
    }
    ann_err_set(err, ANN_EIO, "kafka abort: gave up");
    return TXN_FATAL;
}

static int produce_one(seq *s, const outrec *r)
{
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(s->prod, RD_KAFKA_V_TOPIC(r->ack ? s->t_acks : s->t_committed),
                              RD_KAFKA_V_PARTITION(r->partition), RD_KAFKA_V_KEY(r->key, r->keylen),
                              RD_KAFKA_V_VALUE(r->buf, r->len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(s->prod, 10);
            continue;
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            fprintf(stderr, "annalsd sequencer %s: produce: %s\n", s->cfg->instance,
                    rd_kafka_err2str(e));
        return e == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
    }
}

/* One transaction: the records, then the offsets, then the commit. */
static int run_txn(seq *s, pbatch *pb, size_t npb, const int64_t *next_off, ann_err *err)
{
    rd_kafka_error_t *e;
    while ((e = rd_kafka_begin_transaction(s->prod))) {
        int r = txn_error(s, "begin transaction", e, err);
        if (r != TXN_OK)
            return r == TXN_FATAL ? TXN_FATAL : TXN_ABORTED;
        rd_kafka_poll(s->prod, 50);
    }
    for (size_t i = 0; i < npb; i++)
        for (size_t k = 0; k < pb[i].out.n; k++)
            if (produce_one(s, &pb[i].out.r[k]) < 0)
                return txn_abort(s, err);
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)npb);
    for (size_t i = 0; i < npb; i++)
        rd_kafka_topic_partition_list_add(offs, s->t_pending, pb[i].pn)->offset =
            next_off[pb[i].pn];
    for (int attempt = 0;; attempt++) {
        /* fresh group metadata for every call: the generation may have moved */
        rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(s->cons);
        e = rd_kafka_send_offsets_to_transaction(s->prod, offs, gm, TXN_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(gm);
        if (!e)
            break;
        int r = txn_error(s, "send offsets", e, err);
        if (r == TXN_FATAL || r == TXN_ABORTED || attempt == 5) {
            rd_kafka_topic_partition_list_destroy(offs);
            return r == TXN_FATAL ? TXN_FATAL : txn_abort(s, err);
        }
    }
    rd_kafka_topic_partition_list_destroy(offs);
    ANN_FAULT_POINT("seq.txn_produced");
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_commit_transaction(s->prod, TXN_TIMEOUT_MS);
        if (!e)
            return TXN_OK;
        int r = txn_error(s, "commit transaction", e, err);
        if (r == TXN_FATAL)
            return TXN_FATAL;
        if (r == TXN_ABORTED || attempt == 5)
            return txn_abort(s, err);
    }
}

/* A partition's batch failed (r: P_FENCED or P_FAILED): its cache goes, a fenced one
 * waits to be claimed again; the caller rewinds it. Frees b. */
static void fail_partition(seq *s, pbatch *b, int r, const ann_err *perr)
{
    fprintf(stderr, "annalsd sequencer %s: partition %d: %s; rewinding\n", s->cfg->instance,
            (int)b->pn, perr->msg);
    STAT(s, aborted, 1);
    part_drop(b->p);
    if (r == P_FENCED) {
        STAT(s, fenced, 1);
        b->p->epoch = 0;
        b->p->claim_at = mono_ms() + FENCE_BACKOFF_MS;
    }
    pbatch_free(b);
}

/* Polls a batch, sequences it, commits it. Returns -1 on a fatal error. */
static int run_batch(seq *s, ann_err *err)
{
    rd_kafka_message_t **msgs = xcalloc(MAX_BATCH, sizeof *msgs);
    size_t n = 0;
    unsigned reb = s->rebalances;
    int64_t deadline = 0;
    int64_t poll_t0 = s->timing ? mono_us() : 0;
    while (n < MAX_BATCH) {
        int timeout = IDLE_POLL_MS;
        if (n) {
            int64_t left = deadline - mono_ms();
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->cons, timeout);
        if (!m) {
            if (n == 0)
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "annalsd sequencer %s: consume: %s\n", s->cfg->instance,
                        rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                /* e.g. FENCED_INSTANCE_ID after a broker restart: this consumer never
                 * fetches again; give up so the role starts over with a new one. The
                 * records in hand are not sequenced (nothing was written for them). */
                ann_err_set(err, ANN_EIO, "kafka consumer: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                for (size_t i = 0; i < n; i++)
                    rd_kafka_message_destroy(msgs[i]);
                free(msgs);
                return -1;
            }
            rd_kafka_message_destroy(m);
            if (n == 0)
                break;
            continue;
        }
        if (n == 0)
            deadline = mono_ms() + BATCH_WAIT_MS;
        msgs[n++] = m;
        if (s->rebalances != reb)
            break;
    }
    if (n == 0) {
        free(msgs);
        return 0;
    }
    int64_t t0 = s->timing ? mono_us() : 0;
    if (s->timing)
        s->tm[TM_POLL] += t0 - poll_t0;

    /* group by partition, in order; records of partitions we no longer own, or
     * hold no claim for, are left (they are rewound or revoked) */
    int64_t *next_off = xcalloc((size_t)s->nparts, sizeof *next_off);
    size_t *count = xcalloc((size_t)s->nparts, sizeof *count);
    Command **decoded = xcalloc(n, sizeof *decoded);
    bool *skip_part = xcalloc((size_t)s->nparts, sizeof *skip_part);
    bool *tick = xcalloc((size_t)s->nparts, sizeof *tick);
    /* A rebalance while gathering: the records read before it belong to the old
     * assignment; read everything again from the committed offsets. */
    bool stale = s->rebalances != reb;
    for (size_t i = 0; i < n; i++) {
        int32_t pn = msgs[i]->partition;
        if (pn < 0 || pn >= s->nparts)
            continue;
        part *p = &s->parts[pn];
        if (stale || !p->owned || p->epoch == 0 || p->paused) {
            skip_part[pn] = true;
            continue;
        }
        next_off[pn] = msgs[i]->offset + 1;
        count[pn]++;
        decoded[i] = annals__events__v1__command__unpack(NULL, msgs[i]->len, msgs[i]->payload);
        if (decoded[i] && decoded[i]->op_case == ANNALS__EVENTS__V1__COMMAND__OP_TICK) {
            /* A purge tick: echoed into the committed partition (see below), no answer. */
            tick[pn] = true;
            annals__events__v1__command__free_unpacked(decoded[i], NULL);
            decoded[i] = NULL;
            continue;
        }
        if (!decoded[i] || !decoded[i]->tenant_id || !*decoded[i]->tenant_id ||
            !decoded[i]->log_id || !*decoded[i]->log_id) {
            fprintf(stderr,
                    "annalsd sequencer %s: partition %d offset %lld: not a Command, skipped\n",
                    s->cfg->instance, (int)pn, (long long)msgs[i]->offset);
            if (decoded[i])
                annals__events__v1__command__free_unpacked(decoded[i], NULL);
            decoded[i] = NULL;
            STAT(s, undecoded, 1);
        }
    }
    pbatch *pb = xcalloc((size_t)s->nparts, sizeof *pb);
    size_t npb = 0;
    int32_t *failed = xcalloc((size_t)s->nparts, sizeof *failed);
    size_t nfailed = 0;
    for (int32_t pn = 0; pn < s->nparts; pn++) {
        if (!count[pn])
            continue;
        pbatch *b = &pb[npb];
        memset(b, 0, sizeof *b);
        b->s = s;
        b->pn = pn;
        b->p = &s->parts[pn];
        b->cmds = xcalloc(count[pn], sizeof *b->cmds);
        for (size_t i = 0; i < n; i++)
            if (decoded[i] && msgs[i]->partition == pn)
                b->cmds[b->ncmds++].c = decoded[i];
        ann_err perr;
        ann_err_clear(&perr);
        int r = b->ncmds ? prepare_partition(b, &perr) : P_OK;
        if (r == P_OK) {
            npb++;
            continue;
        }
        fail_partition(s, b, r, &perr);
        failed[nfailed++] = pn;
    }
    /* the prepared partitions' rows and heads, together; the failed ones drop out */
    if (npb) {
        pbatch **bs = xcalloc(npb, sizeof *bs);
        int *res = xcalloc(npb, sizeof *res);
        ann_err *errs = xcalloc(npb, sizeof *errs);
        for (size_t i = 0; i < npb; i++)
            bs[i] = &pb[i];
        store_partitions(s, bs, npb, res, errs);
        size_t kept = 0;
        for (size_t i = 0; i < npb; i++) {
            if (res[i] != P_OK) {
                fail_partition(s, &pb[i], res[i], &errs[i]);
                failed[nfailed++] = pb[i].pn;
                continue;
            }
            if (tick[pb[i].pn])
                pack_tick(&pb[i]);
            if (kept != i)
                pb[kept] = pb[i];
            kept++;
        }
        npb = kept;
        free(bs);
        free(res);
        free(errs);
    }
    for (int32_t pn = 0; pn < s->nparts; pn++)
        if (skip_part[pn] && s->parts[pn].owned && !count[pn])
            failed[nfailed++] = pn; /* records read while unclaimed: read them again */

    int ret = 0;
    if (npb) {
        size_t ncmd = 0;
        for (size_t i = 0; i < npb; i++)
            ncmd += pb[i].ncmds;
        t0 = s->timing ? mono_us() : 0;
        int r = run_txn(s, pb, npb, next_off, err);
        tm_add(s, TM_TXN, &t0);
        s->tm_batches++;
        s->tm_cmds += (int64_t)ncmd;
        if (r == TXN_OK) {
            ANN_FAULT_POINT("seq.txn_committed");
            STAT(s, batches, 1);
            STAT(s, commands, ncmd);
            /* deleted logs: their rows go now (the head stays, deleted) */
            for (size_t i = 0; i < npb; i++)
                for (size_t k = 0; k < pb[i].nlogs; k++)
                    if (pb[i].logs[k].delete_rows) {
                        ann_err derr;
                        if (ann_archive_delete_rows(s->ar, pb[i].logs[k].tenant, pb[i].logs[k].log,
                                                    pb[i].logs[k].work.next_id, &derr) < 0)
                            fprintf(stderr, "annalsd sequencer %s: delete rows of %s: %s\n",
                                    s->cfg->instance, pb[i].logs[k].log, derr.msg);
                    }
        } else {
            STAT(s, aborted, 1);
            for (size_t i = 0; i < npb; i++) {
                part_drop(pb[i].p);
                pb[i].p->serial = true;
                failed[nfailed++] = pb[i].pn;
            }
            if (r == TXN_FATAL)
                ret = -1;
        }
    }
    if (ret == 0) {
        rewind_parts(s, failed, nfailed);
        for (size_t i = 0; i < nfailed; i++)
            if (s->parts[failed[i]].owned && s->parts[failed[i]].epoch == 0 &&
                !s->parts[failed[i]].paused)
                set_paused(s, failed[i], true);
    }
    for (size_t i = 0; i < npb; i++)
        pbatch_free(&pb[i]);
    for (size_t i = 0; i < n; i++) {
        if (decoded[i])
            annals__events__v1__command__free_unpacked(decoded[i], NULL);
        rd_kafka_message_destroy(msgs[i]);
    }
    free(pb);
    free(failed);
    free(skip_part);
    free(tick);
    free(decoded);
    free(count);
    free(next_off);
    free(msgs);
    return ret;
}

/* Claims again the partitions that wait for it (fenced, or a failed claim). */
static void reclaim(seq *s)
{
    int64_t now = mono_ms();
    for (int32_t pn = 0; pn < s->nparts; pn++) {
        part *p = &s->parts[pn];
        if (!p->owned || p->epoch != 0 || now < p->claim_at)
            continue;
        /* A zombie (its session expired while it stood still) must not claim back what
         * the group gave another sequencer: it waits for the rebalance that tells it. */
        if (rd_kafka_assignment_lost(s->cons))
            continue;
        claim(s, pn);
        if (p->epoch) {
            int32_t one = pn;
            rewind_parts(s, &one, 1);
            if (p->paused)
                set_paused(s, pn, false);
        }
    }
}

/* Scrape time: how far behind the pending topic this sequencer is. */
static void seq_collect(void *ud, ann_metrics_out *out)
{
    seq *s = ud;
    ann_kafka_lag_collect(s->cons, "annals_sequencer_consumer_lag",
                          "Commands in the pending topic not yet sequenced, per partition", out);
}

int ann_sequencer_run(const ann_sequencer_config *cfg, volatile int *stop, ann_err *err)
{
    if (!cfg->instance || !*cfg->instance || strlen(cfg->instance) > 128)
        return ann_err_set(err, ANN_EINVAL, "sequencer: instance: 1 to 128 bytes");
    seq s = {.cfg = cfg, .kc = cfg->kafka, .st = cfg->stats};
    ann_kafka_config_defaults(&s.kc);
    s.nparts = s.kc.partitions;
    int ret = -1;
    char group[300], txid[300];
    ann_kafka_topic(&s.kc, ANN_TOPIC_PENDING, s.t_pending, sizeof s.t_pending);
    ann_kafka_topic(&s.kc, ANN_TOPIC_COMMITTED, s.t_committed, sizeof s.t_committed);
    ann_kafka_topic(&s.kc, ANN_TOPIC_ACKS, s.t_acks, sizeof s.t_acks);
    snprintf(group, sizeof group, "%s.sequencer", s.kc.ns);
    snprintf(txid, sizeof txid, "%s.sequencer.%s", s.kc.ns, cfg->instance);
    s.parts = xcalloc((size_t)s.nparts, sizeof *s.parts);
    s.timing = getenv("ANNALS_SEQ_TIMING") != NULL;
    s.tm_last = mono_us();

    if (ann_archive_open(&cfg->archive, &s.ar, err) < 0)
        goto out;
    if (!(s.wr = ann_archive_writer_new(s.ar, err)))
        goto out;
    s.prod = ann_kafka_producer(&s.kc, txid, txid, NULL, NULL, err);
    if (!s.prod)
        goto out;
    int32_t npend = 0;
    if (ann_kafka_partition_count(s.prod, s.t_pending, &npend, err) < 0 ||
        ann_kafka_partition_count(s.prod, s.t_acks, &s.nacks, err) < 0)
        goto out;
    if (npend != s.nparts) {
        ann_err_set(err, ANN_EINVAL, "sequencer: %s has %d partitions, the deployment says %d",
                    s.t_pending, (int)npend, (int)s.nparts);
        goto out;
    }
    rd_kafka_error_t *e = rd_kafka_init_transactions(s.prod, TXN_TIMEOUT_MS);
    if (e) {
        ann_err_set(err, rd_kafka_error_is_retriable(e) ? ANN_EUNAVAIL : ANN_EIO,
                    "kafka init transactions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        goto out;
    }
    s.cons = ann_kafka_consumer(&s.kc, group, cfg->dynamic ? NULL : cfg->instance, rebalance_cb, &s,
                                err);
    if (!s.cons)
        goto out;
    ann_metrics_collector(cfg->metrics, seq_collect, &s);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, s.t_pending, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(s.cons, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (se != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ann_kafka_fail(err, "subscribe", se, s.t_pending);
        goto out;
    }
    while (!*stop) {
        reclaim(&s);
        if (run_batch(&s, err) < 0)
            goto out;
        tm_report(&s);
        rd_kafka_poll(s.prod, 0);
    }
    ret = 0;
out:
    ann_metrics_collector_remove(cfg->metrics, &s);
    if (s.cons) {
        rd_kafka_consumer_close(s.cons);
        rd_kafka_destroy(s.cons);
    }
    if (s.prod)
        rd_kafka_destroy(s.prod);
    ann_archive_writer_free(s.wr);
    ann_archive_close(s.ar);
    for (int32_t pn = 0; pn < s.nparts; pn++)
        part_drop(&s.parts[pn]);
    free(s.parts);
    return ret;
}
