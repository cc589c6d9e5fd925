/*
 * ann_sequencer: the distributed mode's sequencer role (docs/distributed.md).
 *
 * A member of the consumer group "<ns>.sequencer" over "<ns>.pending". For each
 * batch it polls, per Kafka partition touched: dedup against Cassandra, ids and
 * op numbers from the cached heads, batch, insert_id and request rows under the
 * partition's epoch, then ONE conditional head commit (IF range_id = epoch).
 * Then ONE Kafka transaction holds a Committed record per accepted command
 * ("<ns>.committed", same partition and key), an Ack per command ("<ns>.acks",
 * key = origin) and the consumed offsets. On an aborted transaction, an unknown
 * outcome or a refused (fenced) head commit it rewinds to the committed
 * offsets, drops its cached heads and reloads them; a fenced partition is
 * claimed again. Partitions assigned are claimed in Cassandra (range_id + 1).
 */
#ifndef ANN_SEQUENCER_SEQUENCER_H
#define ANN_SEQUENCER_SEQUENCER_H

#include <stdbool.h>
#include <stdint.h>

#include "archive/archive_cassandra.h"
#include "common/err.h"
#include "kafka/kafka.h"

struct ann_note_signer;

/* Counters a running sequencer updates (for tests and figures); read them
 * from another thread with __atomic loads. */
typedef struct ann_sequencer_stats {
    uint64_t batches;   /* Kafka transactions committed */
    uint64_t commands;  /* commands acknowledged */
    uint64_t entries;   /* new entries sequenced */
    uint64_t fenced;    /* head commits refused (another owner claimed) */
    uint64_t aborted;   /* batches abandoned: Kafka abort, unknown outcome, Cassandra failure */
    uint64_t undecoded; /* records skipped because they did not decode */
    uint64_t claims;    /* partition claims */
} ann_sequencer_stats;

typedef struct ann_sequencer_config {
    ann_kafka_config kafka;     /* ns, brokers, partitions (defaults filled) */
    ann_archive_config archive; /* the keyspace (normally the namespace) */
    const char *instance;       /* group.instance.id and transactional.id suffix */
    bool dynamic;               /* no group.instance.id: for a name that changes at every
                                   start (it leaves the group when it stops, instead of
                                   holding its partitions for a session timeout) */
    ann_sequencer_stats *stats; /* optional */
    ann_metrics *metrics;       /* optional: the consumer lag per partition, at scrape time */
    /* The deployment's checkpoint signing key (docs/integrity.md): with it, each log's
     * Merkle tree is extended as entries get ids, its frontier committed with the head, and
     * a checkpoint signed and announced whenever the tree grows. NULL: no trees. */
    const struct ann_note_signer *signer;
} ann_sequencer_config;

/* Runs until *stop becomes nonzero (checked at least every 100 ms), then
 * leaves cleanly and returns 0. Returns -1 on a failure it cannot ride out
 * (bad settings, unreachable engines at start, a fatal Kafka producer error
 * such as fencing by another producer with the same transactional.id).
 * Usable in a thread; it holds no global state. */
int ann_sequencer_run(const ann_sequencer_config *cfg, volatile int *stop, ann_err *err);

#endif
