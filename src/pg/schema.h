/*
 * The read model's schema in PostgreSQL schema <ns> (docs/distributed.md):
 *
 *   entries            (tenant_id, log_id, entry_id, ts) key, partitioned by RANGE (ts), one
 *                      partition per month of 1970..2199 (created on demand) and a default
 *                      partition for any other time; index (tenant_id, log_id, ts, entry_id).
 *   logs               one row per created log: create_ts, labels (encoded), label_set
 *                      (text[] of "<hex key>=<hex value>", GIN-indexed, for ListLogs filters).
 *   log_state          visible_count, applied_op, deleted: what QUERYABLE waits on.
 *   revocations        the first revocation of an entry.
 *   projector_offsets  (partition) next_offset, epoch: the projector's fence.
 *   purge_pending      (rel) gen: entries partitions whose rows a revocation or a delete
 *                      changed since the purger last rewrote them (VACUUM FULL).
 *   search_docs        the search projection (its own consumer, group <ns>.search): per
 *                      entry (tenant_id, log_id, entry_id, ts) key, insert_ts, doc (the
 *                      searchable strings, domain/body.h's ann_body_search_doc) with a
 *                      pg_trgm GIN index; partitioned by month like entries.
 *   search_state       (tenant_id, log_id) indexed: every id <= it has its doc (or was
 *                      revoked); ids above it are searched in entries directly.
 *   search_offsets     (partition) next_offset, epoch: the search consumer's fence.
 *
 * Text keys use COLLATE "C", so ORDER BY and row comparisons are byte order (strcmp).
 */
#ifndef ANN_PG_SCHEMA_H
#define ANN_PG_SCHEMA_H

#include <libpq-fe.h>
#include <stdint.h>

#include "common/err.h"

#define ANN_PG_FIRST_YEAR 1970
#define ANN_PG_END_YEAR 2200 /* exclusive */
#define ANN_PG_MONTHS ((ANN_PG_END_YEAR - ANN_PG_FIRST_YEAR) * 12)

/* Creates the schema and its tables if missing (idempotent, safe concurrently). */
int ann_pg_schema_ensure(PGconn *c, const char *ns, ann_err *err);

/* Drops schema <ns> and everything in it (tests). */
int ann_pg_schema_drop(PGconn *c, const char *ns, ann_err *err);

/* The month partition index of a time (0 = 1970-01), or -1 for the default partition. */
int ann_pg_month_of(int64_t ts_ns);

/* Creates the partitions of month `m` (entries and search_docs) if missing (own
 * transaction: call outside one). */
int ann_pg_month_ensure(PGconn *c, const char *ns, int m, ann_err *err);

/* The queryable form of labels: a text[] literal (NUL-terminated in b) of
 * "<hex key>=<hex value>" elements, from encoded labels (field `field` of buf) or from
 * filter pairs. `@>` on two such sets is ann_labels_match. */
#include "common/buf.h"
#include "domain/body.h"
void ann_pg_label_set_of_labels(ann_buf *b, const uint8_t *buf, size_t len, uint32_t field);
void ann_pg_label_set_of_pairs(ann_buf *b, const ann_label_pair *pairs, size_t n);

/* A text[] literal of strings (quoted and escaped), NUL-terminated in b. */
void ann_pg_text_array(ann_buf *b, const char *const *v, size_t n);

#endif
