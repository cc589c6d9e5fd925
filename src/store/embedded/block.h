/*
 * Sealed blocks: a run of consecutive entries of one log, compressed, with a search filter.
 * A pure codec (no I/O, no threads, no global state); the store appends blocks to a
 * per-log file `<log>.blk` and decides what to seal (docs/storage.md, "Sealed blocks").
 *
 *   block  = header(128) | sec_meta | sec_iid | sec_body | sec_salt | filter
 *   header (all little-endian; checksums CRC-32C, hash.h)
 *     0  u32 magic "ANB1"
 *     4  u32 hdr_crc        crc32c of header bytes 8..127
 *     8  u32 block_crc      crc32c of bytes 128..total_len-1 (the sections and the filter)
 *    12  u32 flags          bit 0 ANN_BLK_DEAD; other bits 0
 *    16  u64 first_id       id of the first entry (>= 1); ids are first_id..first_id+count-1
 *    24  u32 count          entries, 1..ANN_BLK_MAX_COUNT
 *    28  u32 gen            version: a block rewritten by a revocation is appended with gen+1
 *    32  i64 min_time       least event time_ns of the entries
 *    40  i64 max_time       greatest event time_ns
 *    48  i64 min_insert_time
 *    56  i64 max_insert_time
 *    64  u64 dat_end        opaque to the codec: the store's position in the data file
 *    72  u32 meta_zlen, 76 u32 meta_raw     compressed and raw length of sec_meta
 *    80  u32 iid_zlen,  84 u32 iid_raw      ... of sec_iid
 *    88  u32 body_zlen, 92 u32 body_raw     ... of sec_body
 *    96  u32 filter_len
 *   100  u32 total_len      128 + meta_zlen + iid_zlen + body_zlen + salt_len + filter_len
 *   104  u32 meta_crc, 108 u32 iid_crc, 112 u32 body_crc, 116 u32 filter_crc
 *                           crc32c of each section's stored bytes (a loader that reads only
 *                           meta + iid, or only the filter, checks what it read)
 *   120  u32 salt_len       length of sec_salt (0: none; every block before it had 0 here)
 *   124  u32 salt_crc       crc32c of sec_salt
 *
 *   Each section is one standard zstd frame (content size in the frame header, window at
 *   most 2^ANN_BLK_WINDOW_LOG bytes), so `tail -c +$((off+1)) f.blk | head -c $zlen |
 *   zstd -d` reads it. Raw contents, varints as in protobuf (LEB128, minimal length),
 *   zigzag as in protobuf (0,-1,1,-2 -> 0,1,2,3), n = count, in id order:
 *     sec_meta = n zigzag varints: time_ns - previous time_ns (the first from 0) |
 *                n zigzag varints: insert_time_ns - previous (the first from 0) |
 *                n zigzag varints: severity | n varints: flags
 *                (deltas are two's complement, wrapping: INT64_MIN after INT64_MAX is fine)
 *     sec_iid  = n x (varint length >= 1, insert_id bytes)
 *     sec_body = n x (varint length, body bytes); length 0 for a redacted entry
 *     sec_salt = not compressed (absent when no entry has a salt): a bitmap of ceil(n / 8)
 *                bytes (bit i & 7 of byte i >> 3: entry i's body ended with its salt
 *                field, domain/integrity.h, which sec_body holds without it; bits past n
 *                are 0), then the 32-byte salts of those entries in order. The salts are
 *                random: kept out of zstd's input, they cost it nothing (docs/integrity.md).
 *     filter   = u8 version (1) | u8 k (2) | u16 0 | u32 trigrams | bits (8-byte multiple)
 *                or nothing (filter_len 0: no filter, every query may match)
 *
 *   Filter: a Bloom filter of the byte trigrams of every searchable string (domain/body.h:
 *   label values, text payload, JSON string values; each string on its own, so no trigram
 *   spans two strings) of every non-redacted entry, with ASCII letters folded to lower case
 *   (other bytes unchanged), so one filter serves case-sensitive and ignore_case queries.
 *   Trigram t = b0 << 16 | b1 << 8 | b2 (folded bytes). With m = 8 * (filter_len - 8) bits:
 *     x = t * 0x9E3779B97F4A7C15; x ^= x >> 31; x *= 0xBF58476D1CE4E5B9; x ^= x >> 29
 *     (all mod 2^64); h1 = low 32 bits of x, h2 = high 32 bits
 *     bit i (0 <= i < k) = ((h1 + i * h2) mod 2^32) * m >> 32; bit b is bit (b & 7) of byte b >> 3
 *   The encoder gives ANN_BLK_FILTER_BITS (5) bits per distinct trigram (rounded up to
 *   64) and k = 2: about 11% of trigrams absent from the block test present, so a query
 *   with j distinct trigrams absent from the block passes the filter with probability
 *   about 0.11^j (measured figures: docs/storage.md). A block with no trigram has m = 0.
 *
 *   DEAD (ANN_BLK_DEAD): a block superseded by its rewrite (gen + 1) whose sections and
 *   filter were overwritten with zeros (the filter's trigrams and the section CRCs would
 *   reveal revoked content); its header keeps every other field, with block_crc and the
 *   section CRCs those of the zeros, so a scan still validates it and skips it by total_len.
 *
 * Nothing in a block is trusted: header_decode checks the header alone (magic, CRC, ranges,
 * lengths summing to total_len); the decoders check each section's CRC, zstd frame, every
 * varint and length, counts and trailing bytes, and that the decoded times agree with the
 * header. Every failure is ANN_ECORRUPT (ann_err). Decoders allocate in proportion to what
 * the frames really decompress to (never more than the header's raw sizes), so a header
 * that lies about sizes costs no large allocation.
 */
#ifndef ANN_STORE_EMBEDDED_BLOCK_H
#define ANN_STORE_EMBEDDED_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "domain/body.h"
#include "store/store.h"

#define ANN_BLK_MAGIC 0x31424E41u /* "ANB1" */
#define ANN_BLK_HDR_LEN 128u
#define ANN_BLK_DEAD 1u
#define ANN_BLK_MAX_COUNT (1u << 20)   /* entries per block */
#define ANN_BLK_MAX_RAW (64u << 20)    /* raw bytes per section */
#define ANN_BLK_MAX_FILTER (16u << 20) /* filter bytes (2^24 trigrams x 5 bits < 11 MiB) */
#define ANN_BLK_WINDOW_LOG 23          /* zstd window of the sections: 8 MiB at most */
#define ANN_BLK_FILTER_BITS 5          /* Bloom bits per distinct trigram */
#define ANN_BLK_META_MAX_PER_ENTRY (10 + 10 + 5 + 5)

/* A decoded header (the fields above; the magic and hdr_crc are checked, not kept). */
typedef struct ann_blk_header {
    uint32_t flags;
    uint32_t block_crc;
    uint64_t first_id;
    uint32_t count;
    uint32_t gen;
    int64_t min_time_ns, max_time_ns;
    int64_t min_insert_time_ns, max_insert_time_ns;
    uint64_t dat_end;
    uint32_t meta_zlen, meta_raw;
    uint32_t iid_zlen, iid_raw;
    uint32_t body_zlen, body_raw;
    uint32_t filter_len;
    uint32_t total_len;
    uint32_t meta_crc, iid_crc, body_crc, filter_crc;
    uint32_t salt_len, salt_crc;
} ann_blk_header;

/* Bytes from the block's start through sec_iid: what decode_meta + decode_iids need. */
static inline uint64_t ann_blk_index_end(const ann_blk_header *h)
{
    return (uint64_t)ANN_BLK_HDR_LEN + h->meta_zlen + h->iid_zlen;
}
/* Bytes from the block's start through sec_body and sec_salt: what ann_blk_view_open
 * needs. */
static inline uint64_t ann_blk_body_end(const ann_blk_header *h)
{
    return ann_blk_index_end(h) + h->body_zlen + h->salt_len;
}
/* Offset of the filter from the block's start (filter_len bytes). */
static inline uint64_t ann_blk_filter_off(const ann_blk_header *h)
{
    return ann_blk_body_end(h);
}

/*
 * Appends one block of the n entries e[0..n) (ids first_id..first_id+n-1 in that order;
 * e[i].entry_id and .revocation are ignored) to `out`. A redacted entry (flags &
 * ANN_ENTRY_REDACTED) is stored with an empty body whatever its body_len, and adds nothing
 * to the filter. zstd_level: any level libzstd accepts (3 is a good default; 0 means 3).
 * ANN_EINVAL (out unchanged) when n is 0 or above ANN_BLK_MAX_COUNT, first_id is 0 or the
 * ids would overflow, an insert_id is empty, a section would exceed ANN_BLK_MAX_RAW, or the
 * level is out of range; ANN_EINTERNAL if zstd fails.
 */
int ann_blk_encode(const ann_entry *e, size_t n, uint64_t first_id, uint32_t gen, uint64_t dat_end,
                   int zstd_level, ann_buf *out, ann_err *err);

/* Decodes and checks the header at p (avail bytes readable; ANN_BLK_HDR_LEN are needed):
 * magic, hdr_crc, reserved bits, ranges and lengths. Does not read past the header. */
int ann_blk_header_decode(const uint8_t *p, size_t avail, ann_blk_header *h, ann_err *err);

/* The whole-block CRC: len >= h->total_len bytes at block (h from header_decode). */
int ann_blk_check(const uint8_t *block, size_t len, const ann_blk_header *h, ann_err *err);

/*
 * Decodes sec_meta (checks meta_crc) into the caller's arrays of h->count elements each.
 * block: the block's first len bytes, len >= ANN_BLK_HDR_LEN + h->meta_zlen.
 */
int ann_blk_decode_meta(const uint8_t *block, size_t len, const ann_blk_header *h, int64_t *time_ns,
                        int64_t *insert_time_ns, int32_t *severity, uint32_t *flags, ann_err *err);

/*
 * Decodes sec_iid (checks iid_crc): iid[i], iid_len[i] (caller's arrays of h->count) point
 * into `raw`, which the call fills (its previous contents are dropped); release it with
 * ann_buf_release when done. len >= ann_blk_index_end(h).
 */
int ann_blk_decode_iids(const uint8_t *block, size_t len, const ann_blk_header *h, ann_buf *raw,
                        const char **iid, size_t *iid_len, ann_err *err);

/* Every entry of a block, decoded: e[i] has id h.first_id + i, pointers into the view's own
 * buffers (valid until ann_blk_view_release), revocation NULL. */
typedef struct ann_blk_view {
    ann_blk_header h;
    size_t n;
    ann_entry *e;
    ann_buf iids, bodies;
    ann_buf salted; /* the bodies with their salt fields put back (a block with sec_salt) */
} ann_blk_view;

/* Decodes sections meta, iid and body (checking their CRCs; len >= ann_blk_body_end(h)).
 * A DEAD block fails with ANN_EINTERNAL (the caller skips those). On failure the view
 * holds nothing. */
int ann_blk_view_open(const uint8_t *block, size_t len, const ann_blk_header *h, ann_blk_view *view,
                      ann_err *err);
void ann_blk_view_release(ann_blk_view *view);

/*
 * Killing a superseded block. ann_blk_make_dead turns *h into the DEAD form (flag set,
 * block_crc and section CRCs those of all-zero sections and filter) and writes the 128
 * header bytes to hdr: for a store that pwrites zeros over bytes [128, total_len) of the
 * block on disk and then this header. ann_blk_zero does both on an in-memory copy.
 */
void ann_blk_make_dead(ann_blk_header *h, uint8_t hdr[ANN_BLK_HDR_LEN]);
void ann_blk_zero(uint8_t *block, ann_blk_header *h);

/* The filter's CRC (filter_crc): filter points at h->filter_len bytes (ann_blk_filter_off). */
int ann_blk_filter_check(const uint8_t *filter, const ann_blk_header *h, ann_err *err);

/*
 * False only if no entry of the block can match m (ann_body_matches): never a false
 * negative; false positives happen (see the format above). A query shorter than 3 bytes,
 * an empty (len 0) or unknown-version filter may match everything. Reads only filter[0..len).
 */
bool ann_blk_filter_may_match(const uint8_t *filter, size_t len, const ann_matcher *m);

#endif
