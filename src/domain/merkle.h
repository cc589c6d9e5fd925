/*
 * A log as a Merkle tree (docs/integrity.md): RFC 9162 section 2.1 over SHA-256, with no I/O.
 *
 * Leaf i-1 of a log's tree is entry i. Leaf hash = SHA-256(0x00 || leaf_input), interior node
 * = SHA-256(0x01 || left || right), the empty tree hashes to SHA-256(""), and the tree of n
 * leaves splits at the largest power of two below n.
 *
 * An entry's leaf_input is the ASCII bytes "annals.v1.entry" || u64be(entry_id) ||
 * i64be(time_ns) || i64be(insert_time_ns) || i32be(severity) || u32be(len(insert_id)) ||
 * insert_id || body_hash, where body_hash = SHA-256(body_salt || body_bytes) and body_bytes
 * is the entry's labels and payload in the canonical form ann_entry_body_bytes() writes.
 * A redacted entry keeps its body_hash (its salt and body are purged), so the tree still
 * verifies and a short secret cannot be guessed against the hash.
 *
 * Proofs (RFC 9162 2.1.3, 2.1.4) are built from the hashes of complete aligned subtrees,
 * asked of the caller (ann_merkle_subtree_fn), so storage serves them from stored leaf hashes
 * or cached interior nodes. Indexes are 0-based leaf indexes (entry id - 1).
 */
#ifndef ANN_DOMAIN_MERKLE_H
#define ANN_DOMAIN_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "store/store.h"

#define ANN_HASH_LEN 32
#define ANN_BODY_SALT_LEN 32
/* Hashes in a proof about trees of < 2^64 leaves, at most: an inclusion proof has one per
 * level of the leaf's path (<= 64); a consistency proof can have one more (the old tree's
 * last complete subtree and its path: 65 past 2^63 leaves). */
#define ANN_MERKLE_MAX_PROOF 65
#define ANN_LEAF_DOMAIN "annals.v1.entry"

/* SHA-256(0x00 || in). */
void ann_merkle_leaf_hash(const uint8_t *in, size_t n, uint8_t out[ANN_HASH_LEN]);
/* SHA-256(0x01 || left || right). */
void ann_merkle_node_hash(const uint8_t left[ANN_HASH_LEN], const uint8_t right[ANN_HASH_LEN],
                          uint8_t out[ANN_HASH_LEN]);
/* The root of the empty tree: SHA-256 of no bytes. */
void ann_merkle_empty_root(uint8_t out[ANN_HASH_LEN]);

/* ---- Entries ---------------------------------------------------------------------------- */

/*
 * body_bytes of a stored body (domain/body.h: LogEntry fields 23, 30, 31), appended to out:
 * u32be(number of labels), then each label in ascending bytewise order of key as
 * u32be(len key) || key || u32be(len value) || value; then one byte 0 (no payload), 1 (text)
 * or 2 (JSON), then for text u32be(len) || the UTF-8 bytes, for JSON u32be(len) || the
 * google.protobuf.Struct's bytes as stored. Labels are a map: a key repeated in the body
 * counts once, with its last value, as a client parsing the returned LogEntry sees it; of
 * several payload fields the last wins, as protobuf's oneof does. Returns 0, or -1 with err
 * (ANN_ECORRUPT) when the body is not well-formed protobuf or holds more than
 * ANN_MAX_LABELS distinct keys.
 */
int ann_entry_body_bytes(const uint8_t *body, size_t len, ann_buf *out, ann_err *err);

/* body_hash = SHA-256(salt || body_bytes(body)). Returns 0, or -1 as ann_entry_body_bytes. */
int ann_entry_body_hash(const uint8_t salt[ANN_BODY_SALT_LEN], const uint8_t *body, size_t len,
                        uint8_t out[ANN_HASH_LEN], ann_err *err);

/* leaf_input of entry e (entry_id, time_ns, insert_time_ns, severity, insert_id; the body is
 * not read: its hash is given), appended to out. */
void ann_entry_leaf_input(const ann_entry *e, const uint8_t body_hash[ANN_HASH_LEN], ann_buf *out);

/* SHA-256(0x00 || leaf_input(e, body_hash)), without building leaf_input. */
void ann_entry_leaf_hash(const ann_entry *e, const uint8_t body_hash[ANN_HASH_LEN],
                         uint8_t out[ANN_HASH_LEN]);

/* ---- The frontier: the tree's right edge, enough to extend it and to know its root ------ */

/*
 * Invariant: for every bit k set in `size`, hash[k] is the hash of the complete subtree of
 * 2^k leaves that bit covers (the higher bits' subtrees are to its left); other slots are
 * unspecified. 2 KiB in memory; serialized it is 9 + 32 * popcount(size) bytes.
 */
typedef struct ann_merkle_frontier {
    uint64_t size;
    uint8_t hash[64][ANN_HASH_LEN];
} ann_merkle_frontier;

/* The empty tree. */
void ann_merkle_frontier_init(ann_merkle_frontier *f);

/* Adds one leaf (its leaf hash): O(1) amortised node hashes, O(log n) at most. Returns 0, or
 * -1 with err (ANN_ERANGE) when the tree holds 2^64 - 1 leaves. */
int ann_merkle_frontier_append(ann_merkle_frontier *f, const uint8_t leaf_hash[ANN_HASH_LEN],
                               ann_err *err);

/* The root of the tree of f->size leaves. */
void ann_merkle_frontier_root(const ann_merkle_frontier *f, uint8_t out[ANN_HASH_LEN]);

/* Serialized: one version byte 0x01, u64be(size), then hash[k] for each bit k set in size,
 * highest k first (left to right). Appended to out. */
#define ANN_MERKLE_FRONTIER_MAX_BYTES (1 + 8 + 64 * ANN_HASH_LEN)
void ann_merkle_frontier_encode(const ann_merkle_frontier *f, ann_buf *out);
/* Parses exactly that form (any other version or length is ANN_ECORRUPT). */
int ann_merkle_frontier_decode(const uint8_t *p, size_t n, ann_merkle_frontier *f, ann_err *err);

/* ---- Proofs --------------------------------------------------------------------------- */

/*
 * The hash of the complete subtree of leaves [start, start + 2^level), start a multiple of
 * 2^level, all below the tree size the caller asked about (level 0: a leaf hash). Returns 0,
 * or -1 with err (e.g. a storage failure), which the proof functions pass on.
 */
typedef int (*ann_merkle_subtree_fn)(void *ud, uint64_t start, unsigned level,
                                     uint8_t out[ANN_HASH_LEN], ann_err *err);

/* The root of the tree of `size` leaves (popcount(size) subtree calls). */
int ann_merkle_root(uint64_t size, ann_merkle_subtree_fn fn, void *ud, uint8_t out[ANN_HASH_LEN],
                    ann_err *err);

/* The frontier of the tree of `size` leaves (after a restart, from stored hashes). */
int ann_merkle_frontier_at(uint64_t size, ann_merkle_subtree_fn fn, void *ud,
                           ann_merkle_frontier *f, ann_err *err);

/*
 * RFC 9162 2.1.3.1: the inclusion proof of leaf `index` in the tree of `size` leaves, into
 * out[ANN_MERKLE_MAX_PROOF], *n set to its length (the leaf's sibling first). index < size,
 * else -1 with err ANN_EINVAL. At most 2 * log2(size) subtree calls.
 */
int ann_merkle_inclusion_proof(uint64_t index, uint64_t size, ann_merkle_subtree_fn fn, void *ud,
                               uint8_t out[][ANN_HASH_LEN], size_t *n, ann_err *err);

/*
 * RFC 9162 2.1.4.1: the consistency proof between the trees of `first` and `second` leaves,
 * 0 < first <= second (first == second: an empty proof), else -1 with err ANN_EINVAL.
 */
int ann_merkle_consistency_proof(uint64_t first, uint64_t second, ann_merkle_subtree_fn fn,
                                 void *ud, uint8_t out[][ANN_HASH_LEN], size_t *n, ann_err *err);

/* RFC 9162 2.1.3.2: true when `proof` shows leaf_hash at `index` in the tree of `size` leaves
 * whose root is `root`. */
bool ann_merkle_verify_inclusion(uint64_t index, uint64_t size,
                                 const uint8_t leaf_hash[ANN_HASH_LEN],
                                 const uint8_t (*proof)[ANN_HASH_LEN], size_t n,
                                 const uint8_t root[ANN_HASH_LEN]);

/* RFC 9162 2.1.4.2: true when `proof` shows the tree of `first` leaves (root1) to be a prefix
 * of the tree of `second` leaves (root2). first == second: the proof is empty and the roots
 * equal; first == 0: the proof is empty (every tree extends the empty one). */
bool ann_merkle_verify_consistency(uint64_t first, uint64_t second,
                                   const uint8_t root1[ANN_HASH_LEN],
                                   const uint8_t root2[ANN_HASH_LEN],
                                   const uint8_t (*proof)[ANN_HASH_LEN], size_t n);

#endif
