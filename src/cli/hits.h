/*
 * What `annals search --revoke` collects before it revokes anything: the
 * (log, entry id) of every hit, as the server sent them (untrusted bytes,
 * checked here), then sorted by log and entry id without duplicates so that
 * they can be revoked log by log, in batches.
 */
#ifndef ANN_CLI_HITS_H
#define ANN_CLI_HITS_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* A log id longer than this is not one (the server's are 36-byte UUIDs). */
#define ANN_CLI_LOG_ID_MAX 64

typedef struct ann_cli_hit {
    char log_id[ANN_CLI_LOG_ID_MAX + 1];
    uint64_t entry_id;
} ann_cli_hit;

typedef struct ann_cli_hits {
    ann_cli_hit *v;
    size_t n, cap;
} ann_cli_hits;

/* Adds a hit. Returns 0, or -1 (nothing added) when the log id is empty,
 * longer than ANN_CLI_LOG_ID_MAX or not printable ASCII, or the entry id is
 * not a decimal 1, 2, ... */
int ann_cli_hits_add(ann_cli_hits *h, ProtobufCBinaryData log_id, ProtobufCBinaryData entry_id);

/* Sorts by (log id, entry id) and drops duplicates. Returns how many distinct
 * logs there are. */
size_t ann_cli_hits_sort(ann_cli_hits *h);

/* After ann_cli_hits_sort(): the end of the run of hits in the same log as
 * h->v[start] (start < h->n). */
size_t ann_cli_hits_log_end(const ann_cli_hits *h, size_t start);

void ann_cli_hits_free(ann_cli_hits *h);

#endif
