/*
 * The distributed mode's topic layout, as pure rules (docs/distributed.md).
 *
 * Every command, committed record and answer of one log travels under the key
 * "<tenant_id>/<log_id>" on the same partition number of annals.pending and
 * annals.committed, so a log's operations keep their order end to end and one
 * sequencer (the partition's owner) numbers them. The partition is ours to compute,
 * not the client library's (librdkafka's default partitioner differs from Java's):
 * FNV-1a of the key modulo the partition count, which is fixed when the topics are
 * created (adding partitions would move logs).
 *
 * The records themselves are protobuf messages (proto/annals/events/v1/events.proto).
 */
#ifndef ANN_DOMAIN_EVENT_H
#define ANN_DOMAIN_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Topic names are "<namespace>.<suffix>"; the namespace (default "annals") is also the
 * Cassandra keyspace and the PostgreSQL schema, so test runs can share engines. */
#define ANN_TOPIC_PENDING "pending"
#define ANN_TOPIC_COMMITTED "committed"
#define ANN_TOPIC_ACKS "acks"
#define ANN_NAMESPACE_DEFAULT "annals"
#define ANN_PARTITIONS_DEFAULT 12

#define ANN_EVENT_KEY_LEN 73 /* uuid "/" uuid, without the NUL */
#define ANN_NAMESPACE_MAX 40 /* [a-z][a-z0-9_]*: a topic prefix, keyspace and schema name */

/* A namespace every engine accepts as a name: [a-z][a-z0-9_]*, 1..ANN_NAMESPACE_MAX. */
bool ann_namespace_valid(const char *ns);

/* 32-bit FNV-1a of n bytes (partitions, buckets, hash tables). */
uint32_t ann_fnv1a32(const void *p, size_t n);

/* "<tenant_id>/<log_id>" into out (ANN_EVENT_KEY_LEN + 1 bytes). */
void ann_event_key(const char *tenant_id, const char *log_id, char out[ANN_EVENT_KEY_LEN + 1]);

/* The partition of a log, in [0, n_partitions). */
int32_t ann_event_partition(const char *key, size_t key_len, int32_t n_partitions);

#endif
