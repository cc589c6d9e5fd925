/*
 * ann_archive_cassandra: the Cassandra archive of the distributed sequencer
 * (the source of truth in distributed mode; docs/distributed.md, docs/cql.md).
 *
 * Tables (keyspace configurable, created by ann_archive_open, idempotently):
 *   seq_heads       ((partition), tenant_id, log_id): static range_id (the
 *                   partition's fence); per log next_id, next_op, deleted.
 *   log_batches     ((tenant_id, log_id, bucket), first_id, epoch DESC): n, packed.
 *                   One row per run of consecutive ids a command added (at most
 *                   ANN_ARCHIVE_BATCH_IDS entries, about ANN_ARCHIVE_BATCH_BYTES),
 *                   the entries packed in one blob (batch_codec.h); bucket =
 *                   first_id / 65536. An id is read from the row of the highest
 *                   epoch covering it (rows start at most BATCH_IDS - 1 ids before).
 *   log_insert_ids  ((tenant_id, log_id, bucket), insert_id, epoch DESC),
 *                   bucket = fnv1a(insert_id) % 64: a row per client-given insert_id.
 *   log_requests    ((tenant_id, log_id, bucket), request, epoch DESC): first_id.
 *                   Server-made insert_ids are "<request key>/<index>" (36-byte key,
 *                   one per API request); one row per request key names the id of its
 *                   first entry, and entry <index> is at most <index> ids after it.
 *                   bucket = fnv1a(request) % 64.
 *   revocations     ((tenant_id, log_id), entry_id): actor, reason, time_ns
 *                   (the first revocation of an entry).
 *
 * Fencing per partition (the Temporal pattern, per shard): a sequencer that is
 * assigned a pending partition claims it (range_id + 1, a lightweight
 * transaction) and writes every batch, insert_id and request row under that
 * epoch with plain writes. It then commits all the heads it advanced in the partition
 * with ONE conditional batch `IF range_id = <epoch>`. A stale owner's commit is
 * refused, so its rows stay invisible: readers take, per id below next_id,
 * the batch row of the highest epoch covering it.
 *
 * Threading: every call may run from any thread; the archive holds one CQL
 * connection shared by all (requests are multiplexed on it).
 */
#ifndef ANN_ARCHIVE_CASSANDRA_H
#define ANN_ARCHIVE_CASSANDRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "cql/cql.h"
#include "store/store.h"

#define ANN_ARCHIVE_BUCKET_IDS 65536       /* entry ids per log_entries partition */
#define ANN_ARCHIVE_ID_BUCKETS 64          /* log_insert_ids partitions per log */
#define ANN_ARCHIVE_MAX_APPEND 65536       /* entries per write command (spans <= 2 buckets) */
#define ANN_ARCHIVE_REQUEST_KEY 36         /* bytes of a server-made insert_id's request key */
#define ANN_ARCHIVE_BATCH_IDS 1024         /* entries per log_batches row, at most */
#define ANN_ARCHIVE_BATCH_BYTES (1u << 20) /* packed bytes per row (one entry may exceed) */

/* Returned (positive) by ann_archive_commit_heads when the conditional batch
 * was refused: the partition was claimed by a newer owner. */
#define ANN_ARCHIVE_FENCED 1

typedef struct ann_archive_config {
    const ann_cql_config *cql;   /* where and who; its keyspace is ignored */
    const char *keyspace;        /* default "annals" */
    int replication_factor;      /* SimpleStrategy factor; default 1 (one dev node) */
    const char *replication;     /* optional full replication map, e.g.
                                    "{'class': 'NetworkTopologyStrategy', 'dc1': 3}" */
    uint16_t consistency;        /* default LOCAL_QUORUM */
    uint16_t serial_consistency; /* default LOCAL_SERIAL */
} ann_archive_config;

typedef struct ann_archive ann_archive;

/* Connects and creates the keyspace and tables if missing. */
int ann_archive_open(const ann_archive_config *cfg, ann_archive **out, ann_err *err);
void ann_archive_close(ann_archive *a);

/* ---- the partition fence ---- */

/* Claims a partition: range_id + 1 with a lightweight transaction (retried
 * when another claimer wins a race, a few times, then ANN_EUNAVAIL). *epoch_out
 * is the new range_id, under which the caller writes and commits. The Paxos
 * round also settles any conditional commit of the partition still in flight,
 * so plain reads of its heads are current afterwards. */
int ann_archive_claim_partition(ann_archive *a, int32_t partition, uint64_t *epoch_out,
                                ann_err *err);

/* The partition's range_id now (serial read); 0 when never claimed. */
int ann_archive_partition_epoch(ann_archive *a, int32_t partition, uint64_t *out, ann_err *err);

/* ---- heads ---- */

typedef struct ann_archive_head {
    bool exists;
    bool deleted;
    uint64_t next_id; /* the id the next new entry gets (1 for a new log) */
    uint64_t next_op; /* the op_seq the next committed operation gets (1: the create) */
    /* The log's Merkle tree frontier (ann_merkle_frontier_encode, docs/integrity.md) and its
     * latest signed checkpoint, committed with next_id under the same fence. Loaded heads
     * own them (malloc'd: ann_archive_head_release); NULL when none is stored: a log with
     * no entries yet, or one written before the tree (it stays without one). */
    uint8_t *tree;
    size_t tree_len;
    uint8_t *checkpoint;
    size_t checkpoint_len;
    bool sealed; /* SealLog took: no new entries */
} ann_archive_head;

/* Frees a loaded head's tree and checkpoint (and clears them). */
void ann_archive_head_release(ann_archive_head *h);

/* Loads a log's committed head from seq_heads at `partition`. With `serial`, a
 * linearizable read (settles a conditional commit whose outcome was unknown). */
int ann_archive_head_load(ann_archive *a, int32_t partition, const char *tenant_id,
                          const char *log_id, bool serial, ann_archive_head *out, ann_err *err);

/* Loads n heads of one partition at once (requests in flight together). */
int ann_archive_heads_load(ann_archive *a, int32_t partition, const char *const *tenant_ids,
                           const char *const *log_ids, size_t n, bool serial, ann_archive_head *out,
                           ann_err *err);

/* One head as a commit sets it. */
typedef struct ann_archive_head_update {
    const char *tenant_id;
    const char *log_id;
    uint64_t next_id;
    uint64_t next_op;
    bool deleted;
    const uint8_t *tree; /* NULL: none (the cell is cleared) */
    size_t tree_len;
    const uint8_t *checkpoint; /* NULL: none */
    size_t checkpoint_len;
    bool sealed;
} ann_archive_head_update;

/* Commits n heads of one partition with ONE conditional batch
 * `IF range_id = epoch`. Returns 0 when applied, ANN_ARCHIVE_FENCED when
 * refused (*cur_epoch, if not NULL, then holds the range_id now), -1 on
 * failure: then the outcome may be unknown and the caller reloads heads with
 * a serial read (or claims again) before trusting any. */
int ann_archive_commit_heads(ann_archive *a, int32_t partition, uint64_t epoch,
                             const ann_archive_head_update *u, size_t n, uint64_t *cur_epoch,
                             ann_err *err);

/* The same in two steps, so that several partitions' commits are in flight at once:
 * submit returns the request (NULL on failure to submit, err filled; the updates may be
 * freed at once), finish waits for it and answers as ann_archive_commit_heads. n must be
 * at least 1. */
ann_cql_future *ann_archive_commit_heads_submit(ann_archive *a, int32_t partition, uint64_t epoch,
                                                const ann_archive_head_update *u, size_t n,
                                                ann_err *err);
int ann_archive_commit_heads_finish(ann_cql_future *f, uint64_t *cur_epoch, ann_err *err);

/* ---- rows ---- */

/* Writes batch rows and insert_id rows under `epoch` with plain writes: unlogged
 * batches per Cassandra partition key, many requests in flight. Add any number
 * of logs' entries (each entry's entry_id and insert_id set), then wait. One add
 * is one command's new entries: runs of consecutive ids become batch rows; a
 * client-given insert_id gets a log_insert_ids row; entries flagged
 * ANN_ENTRY_GENERATED_ID with a server-made shape get one log_requests row per
 * request key (so flag them only when the command's entries with that key are
 * all new in this add, in request order). The caller's strings and entries must stay
 * valid until ann_archive_writer_wait (a partly filled batch waits for it). */
typedef struct ann_archive_writer ann_archive_writer;
ann_archive_writer *ann_archive_writer_new(ann_archive *a, ann_err *err);
int ann_archive_writer_add(ann_archive_writer *w, const char *tenant_id, const char *log_id,
                           uint64_t epoch, const ann_entry *entries, size_t n, ann_err *err);
/* Waits for every request added; -1 if any failed. The writer can be reused. */
int ann_archive_writer_wait(ann_archive_writer *w, ann_err *err);
void ann_archive_writer_free(ann_archive_writer *w);

/* Writes one log's entries under `epoch` (a writer, added once, waited for). */
int ann_archive_write_entries(ann_archive *a, const char *tenant_id, const char *log_id,
                              uint64_t epoch, const ann_entry *entries, size_t n, ann_err *err);

/* One insert_id lookup: id_out is the committed entry id holding insert_id, or
 * 0. Only committed rows count (ids below next_id, the head's committed
 * next_id, whose winning entry, from the batch row of the highest epoch, holds
 * this insert_id). An id not found in log_insert_ids that has the server-made
 * shape is looked up through its request's log_requests row (one read of the
 * entries after that row's first id confirms it); `generated` skips the
 * log_insert_ids round (an id the API server made has no row there). */
typedef struct ann_archive_iid_query {
    const char *tenant_id;
    const char *log_id;
    uint64_t next_id;
    const char *insert_id;
    size_t insert_id_len;
    bool generated; /* made by the API server: if of the shape, only its request row is asked */
    uint64_t id_out;
} ann_archive_iid_query;

/* Runs n lookups, of any logs, with requests in flight together. */
int ann_archive_lookup_many(ann_archive *a, ann_archive_iid_query *q, size_t n, ann_err *err);

/* The same for one log: ids_out[i] for insert_ids[i]. */
int ann_archive_lookup(ann_archive *a, const char *tenant_id, const char *log_id,
                       const ann_archive_head *head, const char *const *insert_ids,
                       const size_t *insert_id_lens, size_t n, uint64_t *ids_out, ann_err *err);

/* Visits the committed entries with from_id <= id < min(to_id, next_id), in id
 * order, taking per id the row of the highest epoch. `next_id` is the log's
 * committed next_id (a head the caller holds). A visitor returning nonzero
 * stops the walk (not an error). */
int ann_archive_read_at(ann_archive *a, const char *tenant_id, const char *log_id, uint64_t next_id,
                        uint64_t from_id, uint64_t to_id, ann_entry_visit_fn visit, void *ud,
                        ann_err *err);

/* The same, loading the head from seq_heads at ann_event_partition(key):
 * ANN_ENOTFOUND ("log %s not found") for a missing or deleted log. */
int ann_archive_read(ann_archive *a, int32_t n_partitions, const char *tenant_id,
                     const char *log_id, uint64_t from_id, uint64_t to_id, ann_entry_visit_fn visit,
                     void *ud, ann_err *err);

/* Revokes entries (the caller checked the ids against the head): every batch
 * row stored over each id (the committed one and any a fenced writer left) is
 * rewritten under its own key with the entry's body removed and
 * ANN_ENTRY_REDACTED set (the old blob is a shadowed cell until compaction), and a revocations row
 * records actor, reason and time; only the first revocation of an id is kept (INSERT ... IF NOT
 * EXISTS). Idempotent. */
int ann_archive_revoke(ann_archive *a, const char *tenant_id, const char *log_id,
                       const uint64_t *ids, size_t n, const char *actor, const char *reason,
                       int64_t time_ns, ann_err *err);

/* The first revocation of an entry; *found false if it was never revoked.
 * actor and reason are copied into the caller's buffers (truncated). */
int ann_archive_revocation(ann_archive *a, const char *tenant_id, const char *log_id,
                           uint64_t entry_id, bool *found, char *actor, size_t actor_cap,
                           char *reason, size_t reason_cap, int64_t *time_ns, ann_err *err);

/* Deletes a log's rows (entries up to one bucket past next_id + the largest
 * command, the 64 insert_id partitions, its revocations). The head stays, as
 * the sequencer committed it (deleted), so no sequencer resurrects the log.
 * Idempotent. */
int ann_archive_delete_rows(ann_archive *a, const char *tenant_id, const char *log_id,
                            uint64_t next_id, ann_err *err);

/* For the API servers: the log's state from seq_heads at
 * ann_event_partition("<tenant_id>/<log_id>", n_partitions). */
int ann_archive_log_count(ann_archive *a, int32_t n_partitions, const char *tenant_id,
                          const char *log_id, bool *exists, bool *deleted, uint64_t *entry_count,
                          ann_err *err);

/* Whether an insert_id has the shape of a server-made one, "<request key>/<index>"
 * (ANN_ARCHIVE_REQUEST_KEY bytes without '/', then '/' and 1..9 digits, an index below
 * ANN_ARCHIVE_MAX_APPEND: src/api/service.c
 * makes them from a UUID per request); *index (if not NULL) gets the index. Such an id
 * is found through its request's log_requests row, whoever sends it later. */
bool ann_archive_generated_shape(const char *s, size_t n, uint64_t *index);

/* The log_insert_ids bucket of an insert_id (fnv1a % ANN_ARCHIVE_ID_BUCKETS). */
int32_t ann_archive_insert_id_bucket(const char *insert_id, size_t len);

/* The connection (for tests and figures). */
ann_cql_conn *ann_archive_conn(ann_archive *a);

#endif
