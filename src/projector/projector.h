/*
 * ann_projector: applies the sequencer's Committed records (<ns>.committed) to the
 * PostgreSQL read model (docs/distributed.md, pg/schema.h).
 *
 * The apply step takes a batch of decoded records of several partitions, each in its
 * partition's order, and applies it in ONE transaction: the fence (every partition's
 * projector_offsets.epoch must still be the one this projector claimed, or nothing is
 * committed), COPY of the new entries into a staging table and INSERT ... ON CONFLICT DO
 * NOTHING (a redacted row is never overwritten by a replayed write), CreateLog, Revoke
 * (body emptied, ANN_ENTRY_REDACTED, the first revocation record kept), DeleteLog (the
 * log's rows removed, marked deleted), log_state (visible_count and applied_op only grow),
 * one NOTIFY "<ns>_visible" per changed log, and each partition's next offset.
 *
 * The role (ann_projector_run) consumes <ns>.committed in consumer group <ns>.projector
 * (the group only assigns partitions: offsets live in PostgreSQL), claims each assigned
 * partition (epoch + 1) and starts at its stored next offset; a fenced apply drops the
 * batch, re-claims and rewinds.
 */
#ifndef ANN_PROJECTOR_PROJECTOR_H
#define ANN_PROJECTOR_PROJECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "annals/events/v1/events.pb-c.h"
#include "common/err.h"
#include "cql/cql.h"
#include "kafka/kafka.h"

typedef struct ann_projector ann_projector;

/* Which projection: browse (entries, log_state, revocations, logs; group <ns>.projector,
 * offsets in projector_offsets) or search (search_docs, search_state; group <ns>.search,
 * offsets in search_offsets). Both share the fence, the run loop and the apply order; the
 * search one never slows the browse one's transactions (its own connection and group). */
typedef enum ann_projector_kind {
    ANN_PROJECTOR_BROWSE = 0,
    ANN_PROJECTOR_SEARCH = 1
} ann_projector_kind;

/* Connects and ensures the schema of `ns` (the browse projection). */
int ann_projector_open(const char *conninfo, const char *ns, ann_projector **out, ann_err *err);
int ann_projector_open_kind(const char *conninfo, const char *ns, ann_projector_kind kind,
                            ann_projector **out, ann_err *err);
void ann_projector_close(ann_projector *p);

/* Claims a partition: its epoch + 1 (the row is created if missing), remembered as this
 * projector's; *next_offset is where the partition's projection continues. */
int ann_projector_claim(ann_projector *p, int32_t partition, int64_t *next_offset, ann_err *err);

/* Forgets every claimed epoch (the assignment was revoked). */
void ann_projector_forget(ann_projector *p);

/* One record of a batch: its Kafka position and the decoded record (NULL for a record
 * that could not be decoded: only its offset counts). */
typedef struct ann_projector_record {
    int32_t partition;
    int64_t offset;
    const Annals__Events__V1__Committed *rec;
} ann_projector_record;

#define ANN_PROJECTOR_FENCED 1

/* Applies a batch in one transaction. Returns 0 when committed, ANN_PROJECTOR_FENCED
 * when another projector claimed one of the batch's partitions since (or this one never
 * claimed it): nothing was committed; -1 with err on failure (nothing committed either,
 * unless the COMMIT's outcome itself is unknown, which a re-apply repairs). */
int ann_projector_apply(ann_projector *p, const ann_projector_record *v, size_t n, ann_err *err);

/* The role. */
typedef struct ann_projector_config {
    ann_kafka_config kafka; /* kafka.ns is also the PostgreSQL schema */
    const char *conninfo;
    const char *instance; /* group.instance.id (static membership); may be NULL */
    /* Optional (docs/operations.md): batches and records applied, aborted batches, the
     * read model's delay behind the sequencer, the consumer lag per partition. */
    ann_metrics *metrics;
    ann_projector_kind kind;
} ann_projector_config;

/* Runs until *stop becomes nonzero (then returns 0), or fails on a fatal error. */
int ann_projector_run(const ann_projector_config *cfg, volatile int *stop, ann_err *err);

/* ---- the purger (purge.c; docs/distributed.md, "Revocation in the engines") ---- */

typedef struct ann_purge_config {
    ann_kafka_config kafka; /* kafka.ns is also the PostgreSQL schema */
    const char *conninfo;
    int interval_ms; /* between passes; ANN_PURGE_INTERVAL_MS by default (the caller sets) */
} ann_purge_config;

#define ANN_PURGE_INTERVAL_MS 60000

typedef struct purger ann_purger;
int ann_purger_open(const ann_purge_config *cfg, ann_purger **out, ann_err *err);
void ann_purger_close(ann_purger *p);
/* One pass: VACUUM FULL of the partitions in purge_pending, DeleteRecords below the
 * consumers' offsets on pending and committed, ticks. */
int ann_purge_pass(ann_purger *p, ann_err *err);
/* A pass every interval_ms until *stop; errors are logged and retried next pass. */
int ann_purge_run(const ann_purge_config *cfg, volatile int *stop, ann_err *err);

/* ---- rebuild (rebuild.c; docs/distributed.md, "Rebuild") ---- */

typedef struct ann_rebuild_config {
    ann_kafka_config kafka; /* kafka.ns: topics, keyspace and schema */
    const char *conninfo;
    const ann_cql_config *cql;
    const char *replication; /* the keyspace's replication map (if it must be created) */
} ann_rebuild_config;

typedef struct ann_rebuild_stats {
    uint64_t logs, deleted_logs, entries, revocations;
} ann_rebuild_stats;

/* Rebuilds schema <ns> from Cassandra into <ns>_rb, then swaps it in (one transaction)
 * with projector_offsets at the committed topic's ends taken BEFORE Cassandra was read. */
int ann_rebuild(const ann_rebuild_config *cfg, ann_rebuild_stats *st, ann_err *err);

#endif
