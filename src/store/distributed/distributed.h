/*
 * The distributed backend of the storage port: what an API server (`annalsd serve` in
 * distributed mode) uses. Commands go to Kafka and complete asynchronously, when the
 * sequencer's answer arrives (annals.acks) and the read model shows them (PostgreSQL
 * NOTIFY, polled as a fallback); reads come from PostgreSQL; tenants, keys and log
 * metadata from Cassandra. docs/distributed.md has the design.
 */
#ifndef ANN_STORE_DISTRIBUTED_DISTRIBUTED_H
#define ANN_STORE_DISTRIBUTED_DISTRIBUTED_H

#include "cql/cql.h"
#include "kafka/kafka.h"
#include "store/store.h"

typedef struct ann_store_distributed_opts {
    ann_kafka_config kafka;      /* brokers, namespace, partitions */
    ann_cql_config cql;          /* contact points and login; keyspace = the namespace */
    const char *replication;     /* Cassandra replication map; NULL: one dev node */
    const char *conninfo;        /* libpq conninfo of the read model */
    const char *instance;        /* this server's name in answers; NULL: random */
    int pg_pool;                 /* read connections; default 4 */
    struct ann_metrics *metrics; /* where the read-model lag gauges go; NULL: none */
} ann_store_distributed_opts;

/* Connects to the three engines, creates what is missing (topics, keyspace, schema). */
int ann_store_distributed_open(const ann_store_distributed_opts *o, ann_store **out, ann_err *err);

#endif
