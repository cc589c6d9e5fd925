/*
 * An entry's integrity field as a store keeps it inside the entry's body: LogEntry field 43,
 * EntryIntegrity { bytes body_salt = 1; bytes body_hash = 2; } (docs/integrity.md).
 *
 * A live entry's stored body ends with the field holding its 32-byte body_salt; once the
 * entry is redacted, its body is the field holding its body_hash and nothing else (the salt
 * is purged with the labels and payload). Both forms are exactly ANN_INTEGRITY_FIELD_LEN
 * bytes, so a redaction rewrites a record in place with the same length. The body bytes
 * (ann_entry_body_bytes) skip field 43, and the API returns the body verbatim, so a reader
 * gets LogEntry.integrity with no extra work. No I/O.
 */
#ifndef ANN_DOMAIN_INTEGRITY_H
#define ANN_DOMAIN_INTEGRITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ANN_INTEGRITY_FIELD 43
/* tag (2 bytes) || len 34 || inner tag || len 32 || 32 bytes */
#define ANN_INTEGRITY_FIELD_LEN 37

typedef enum ann_integrity_kind {
    ANN_INTEGRITY_NONE = 0, /* no field 43: an entry stored before integrity (no tree) */
    ANN_INTEGRITY_SALT = 1, /* a live entry */
    ANN_INTEGRITY_HASH = 2, /* a redacted entry */
} ann_integrity_kind;

/* The field holding a salt (kind SALT) or a body_hash (kind HASH), into out. */
void ann_integrity_field(ann_integrity_kind kind, const uint8_t v[32],
                         uint8_t out[ANN_INTEGRITY_FIELD_LEN]);

/* The last field 43 of a body: its kind and 32-byte value (NONE when the body has none, or
 * when it is not well-formed). */
ann_integrity_kind ann_integrity_find(const uint8_t *body, size_t len, uint8_t out[32]);

/* The length of body without a trailing integrity field (len when it has none). */
size_t ann_integrity_strip(const uint8_t *body, size_t len);

/* True when b is exactly one field holding a body_hash (a redacted entry's body). */
bool ann_integrity_is_hash_field(const uint8_t *b, size_t len);

/* The body_hash of a stored body: computed from its salt (a live entry) or read (a redacted
 * one). -1 with err (ANN_ECORRUPT) when the body has no integrity field or is malformed. */
int ann_integrity_body_hash(const uint8_t *body, size_t len, uint8_t out[32], ann_err *err);

/* A stored entry's body_hash (from its body's integrity field, as ann_integrity_body_hash)
 * and leaf hash (domain/merkle.h) from its parts: 0, or -1 when the body has no integrity
 * field (an entry stored before the tree). */
int ann_integrity_entry_leaf(uint64_t entry_id, int64_t time_ns, int64_t insert_time_ns,
                             int32_t severity, const void *insert_id, size_t insert_id_len,
                             const uint8_t *body, size_t body_len, uint8_t body_hash[32],
                             uint8_t leaf[32]);

/*
 * The leaf hash of a LogEntry as the API sends it (its wire bytes, proto/annals/v1): from
 * its entry_id (20), time (21), insert_time (22), severity (41), insert_id (2) and body_hash,
 * recomputed from integrity.body_salt (43.1) and the labels and payload (23, 30, 31) for a
 * live entry, or taken from integrity.body_hash (43.2) for a redacted one (40), which must
 * carry no salt. A live entry that also carries a body_hash must carry the right one. What
 * `annals verify` and `annals verify-proof` recompute. Returns 0, or -1 with *why.
 */
int ann_integrity_wire_leaf(const uint8_t *p, size_t n, uint64_t *entry_id, bool *redacted,
                            uint8_t leaf[32], const char **why);

#endif
