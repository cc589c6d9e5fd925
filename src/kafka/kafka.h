/*
 * ann_kafka: what annals' roles share over librdkafka (docs/distributed.md).
 *
 * librdkafka is the client; this file only holds the settings every role must agree on
 * (message size limits for 16 MiB requests, acks=all and idempotence, read_committed,
 * the eager assignor with static membership that librdkafka 2.0 handles correctly), the
 * topics' names and creation, and the mapping of librdkafka errors onto ann_err.
 */
#ifndef ANN_KAFKA_KAFKA_H
#define ANN_KAFKA_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/metrics.h"

/* A Kafka record may carry a whole 16 MiB request plus its framing. */
#define ANN_KAFKA_MAX_MESSAGE (20 * 1024 * 1024)

typedef struct ann_kafka_config {
    const char *brokers; /* bootstrap.servers; default "127.0.0.1:9092" */
    const char *ns;      /* topic prefix; default "annals" */
    int32_t partitions;  /* of pending and committed, fixed at creation; default 12 */
    int replication;     /* replication factor; default 1 (one dev node), 3 in production */
    int min_insync;      /* min.insync.replicas; default 1, 2 with replication 3 */
    /* Purge (docs/distributed.md, "Revocation in the engines"): pending and committed roll
     * their active segment after segment_ms (on the next append; the purger's ticks make
     * one), so records deleted below the consumers' offsets leave the broker's files. */
    int64_t segment_ms;      /* segment.ms; default ANN_KAFKA_SEGMENT_MS */
    int64_t delete_delay_ms; /* file.delete.delay.ms; default ANN_KAFKA_DELETE_DELAY_MS */
} ann_kafka_config;

#define ANN_KAFKA_SEGMENT_MS 600000     /* 10 minutes */
#define ANN_KAFKA_DELETE_DELAY_MS 10000 /* a deleted segment's file goes 10 s later */

/* Fills unset fields with the defaults above. */
void ann_kafka_config_defaults(ann_kafka_config *c);

/* "<ns>.<suffix>" into out. */
void ann_kafka_topic(const ann_kafka_config *c, const char *suffix, char *out, size_t cap);

/* Creates <ns>.pending, <ns>.committed and <ns>.acks if missing (idempotent), sets their
 * configs (also on topics that existed: segment.ms and the rest follow the flags), and
 * checks that pending and committed have c->partitions partitions. */
int ann_kafka_ensure_topics(const ann_kafka_config *c, ann_err *err);

/* The partition count of a topic, from the broker's metadata. */
int ann_kafka_partition_count(rd_kafka_t *rk, const char *topic, int32_t *out, ann_err *err);

/* A producer: idempotent, acks=all, large messages. With transactional_id set, a
 * transactional producer (the caller runs init_transactions). `dr` receives delivery
 * reports from rd_kafka_poll/flush; `opaque` is rd_kafka_opaque(). */
rd_kafka_t *ann_kafka_producer(const ann_kafka_config *c, const char *client_id,
                               const char *transactional_id,
                               void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               void *opaque, ann_err *err);

/* A consumer: read_committed, no auto commit, eager range assignment; with group_id a
 * group member (static when instance_id is set), without one a plain reader that the
 * caller assigns partitions to. `rebalance` may be NULL (librdkafka's default). */
rd_kafka_t *ann_kafka_consumer(const ann_kafka_config *c, const char *group_id,
                               const char *instance_id,
                               void (*rebalance)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                 rd_kafka_topic_partition_list_t *, void *),
                               void *opaque, ann_err *err);

/* librdkafka error -> ann_err: retriable ones become ANN_EUNAVAIL, fatal ones ANN_EIO.
 * `what` names the step for the server's log. Returns -1. */
int ann_kafka_fail(ann_err *err, const char *what, rd_kafka_resp_err_t code, const char *detail);

/* Scrape time (docs/operations.md): the consumer lag of each partition assigned to `cons`,
 * as the gauge `family` {topic, partition}: the last known end of the partition (libkafka
 * keeps it from fetch responses) minus the consumer's position. Local state only, no
 * network. Partitions with no position yet (nothing consumed since the assignment) are
 * left out. */
void ann_kafka_lag_collect(rd_kafka_t *cons, const char *family, const char *help,
                           ann_metrics_out *out);

#endif
