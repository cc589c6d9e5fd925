/*
 * ann_archive_cassandra: the Cassandra archive of the distributed sequencer
 * (the source of truth in distributed mode; see docs/cql.md for the schema).
 *
 * Tables (keyspace configurable, created by ann_archive_open):
 *   log_heads       ((tenant_id, log_id), first_id): static next_id,
 *                   owner_epoch, deleted, create_time per log (the head), and
 *                   one clustering row per committed batch (first_id, last_id,
 *                   epoch, commit_time): who sequenced what, kept for audit.
 *   log_entries     ((tenant_id, log_id, bucket), entry_id, epoch DESC),
 *                   bucket = entry_id / 65536: bounded partitions, range reads.
 *   log_insert_ids  ((tenant_id, log_id, bucket), insert_id, epoch DESC),
 *                   bucket = fnv1a(insert_id) % 64.
 *
 * Fencing: a sequencer owns a log by claiming it (owner_epoch + 1, a
 * conditional update). Append writes the entry and insert_id rows under the
 * writer's epoch, then commits with one conditional single-partition batch
 * on the head partition: next_id advances and the batch row is added only
 * IF owner_epoch and next_id are what the writer believes. A stale owner's
 * commit is refused, so its rows stay invisible: readers take, per id below
 * next_id, the row of the highest epoch (the committing owner's; the
 * argument is in docs/cql.md).
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

#define ANN_ARCHIVE_BUCKET_IDS 65536 /* entry ids per log_entries partition */
#define ANN_ARCHIVE_ID_BUCKETS 64    /* log_insert_ids partitions per log */
#define ANN_ARCHIVE_MAX_APPEND 65536 /* entries per append (spans <= 2 buckets) */

/* Returned (positive) by ann_archive_append and ann_archive_claim when the
 * conditional write was refused: another owner, or another next_id. */
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

typedef struct ann_archive_head {
    bool exists;
    bool deleted;
    uint64_t next_id;     /* the id the next appended entry gets (1 for a new log) */
    uint64_t owner_epoch; /* the current owner's epoch (0: never claimed) */
} ann_archive_head;

/* Loads a log's head with a linearizable (serial) read, so an append whose
 * outcome was unknown (timeout) is settled by the time it returns. */
int ann_archive_head_load(ann_archive *a, const char *tenant_id, const char *log_id,
                          ann_archive_head *out, ann_err *err);

/* Becomes the owner of a log: creates its head (next_id 1) if missing and
 * raises owner_epoch by one. On success *out is the head as this owner will
 * append to it. ANN_ENOTFOUND for a deleted log. Retries internally when
 * another claimer wins a race, up to a few times (then ANN_EUNAVAIL). */
int ann_archive_claim(ann_archive *a, const char *tenant_id, const char *log_id,
                      ann_archive_head *out, ann_err *err);

/* Looks up insert_ids: ids_out[i] is the entry id holding insert_ids[i], or 0.
 * Only committed rows count (ids below head.next_id written by the epoch that
 * committed them), so rows a fenced or crashed writer left are ignored. */
int ann_archive_lookup(ann_archive *a, const char *tenant_id, const char *log_id,
                       const ann_archive_head *head, const char *const *insert_ids,
                       const size_t *insert_id_lens, size_t n, uint64_t *ids_out, ann_err *err);

/* Appends n entries as ids first_id .. first_id+n-1, as owner `epoch`,
 * expecting the head at next_id == first_id. Returns 0 when committed,
 * ANN_ARCHIVE_FENCED when the head moved on (cur_out, if not NULL, then holds
 * the head now), -1 on failure: then the outcome may be unknown (e.g. a
 * timeout of the conditional write) and the caller reloads the head with
 * ann_archive_head_load before doing anything else. Entries' entry_id and
 * insert_id must be set; insert_ids must be distinct and new (lookup first). */
int ann_archive_append(ann_archive *a, const char *tenant_id, const char *log_id, uint64_t epoch,
                       uint64_t first_id, const ann_entry *entries, size_t n,
                       ann_archive_head *cur_out, ann_err *err);

/* Visits the committed entries with from_id <= id < to_id, in id order.
 * A visitor returning nonzero stops the walk (not an error). */
int ann_archive_read(ann_archive *a, const char *tenant_id, const char *log_id, uint64_t from_id,
                     uint64_t to_id, ann_entry_visit_fn visit, void *ud, ann_err *err);

/* Revokes entries: their body (payload and labels) is deleted (a tombstone,
 * purged from disk by compaction after gc_grace_seconds) in every row stored
 * for the id, and ANN_ENTRY_REDACTED is set. All ids are checked first: one
 * that is 0 or not yet sequenced fails the call (ANN_ENOTFOUND) and revokes
 * nothing. */
int ann_archive_revoke(ann_archive *a, const char *tenant_id, const char *log_id,
                       const uint64_t *ids, size_t n, ann_err *err);

/* Deletes a log: fences every owner (deleted = true, owner_epoch + 1), then
 * deletes its entries, insert_ids and batch rows. Idempotent. */
int ann_archive_delete_log(ann_archive *a, const char *tenant_id, const char *log_id, ann_err *err);

/* The log_insert_ids bucket of an insert_id (fnv1a % ANN_ARCHIVE_ID_BUCKETS). */
int32_t ann_archive_insert_id_bucket(const char *insert_id, size_t len);

/* The connection (for tests and figures). */
ann_cql_conn *ann_archive_conn(ann_archive *a);

#endif
