/*
 * The data file of one log (DIR/logs/<tenant>/<log>.dat): an append-only
 * sequence of frames, one frame per group commit of that log.
 *
 *   frame  = header(32) record*
 *   header = magic u32 "ANF1" | crc32c(bytes 8..31) u32 | first_id u64 |
 *            count u32 | reserved u32 | frame_len u64 (header included)
 *   record = crc32c(bytes 4..47, insert_id, body[0..body_len)) u32 |
 *            rec_len u32 (header + insert_id + body capacity) | id u64 |
 *            time_ns i64 | insert_time_ns i64 | severity i32 | flags u32 |
 *            insert_id_len u16 | reserved u16 | body_len u32 |
 *            insert_id | body
 *
 * All little-endian. The file may end with zeros (space preallocated so that
 * fdatasync need not journal a size change). Only the last frame can be
 * unsynced, so a damaged frame with no well-formed frame header after it is a
 * torn tail (dropped whole: none of it was acknowledged), while damage before
 * another frame is corruption. Revoke rewrites a record in place with the
 * same length: flags |= ANN_ENTRY_REDACTED, body_len 0, body bytes zeroed.
 */
#ifndef ANN_STORE_EMBEDDED_LOGFILE_H
#define ANN_STORE_EMBEDDED_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

#define ANN_LF_MAGIC 0x31464E41u /* "ANF1" */
#define ANN_LF_FRAME_HDR 32u
#define ANN_LF_REC_HDR 48u

static inline size_t ann_lf_rec_size(size_t iid_len, size_t body_len)
{
    return ANN_LF_REC_HDR + iid_len + body_len;
}

/* Encodes entry `e` as record `id` at p (ann_lf_rec_size bytes). */
void ann_lf_rec_encode(uint8_t *p, uint64_t id, const ann_entry *e);
/* The same with `tail` appended to the body (the integrity field, domain/integrity.h):
 * ann_lf_rec_size(e->insert_id_len, e->body_len + tail_len) bytes. */
void ann_lf_rec_encode_tail(uint8_t *p, uint64_t id, const ann_entry *e, const uint8_t *tail,
                            size_t tail_len);

/* Fills the frame header at p. */
void ann_lf_frame_encode(uint8_t *p, uint64_t first_id, uint32_t count, uint64_t frame_len);
/* Reads a frame header (ANN_LF_FRAME_HDR bytes at p); false unless its magic and CRC hold. */
bool ann_lf_frame_decode(const uint8_t *p, uint64_t *first_id, uint32_t *count,
                         uint64_t *frame_len);

/*
 * Decodes and checks the record at p (avail bytes readable). On success
 * fills e (pointers into p) and *rec_len. Returns 0, or -1 if the record is
 * truncated or fails its checksum (*rec_len is still set when the header's
 * length is readable, else 0).
 */
int ann_lf_rec_decode(const uint8_t *p, size_t avail, ann_entry *e, uint32_t *rec_len);
/* The same without the CRC check: for records this process encoded and still holds in
 * memory (a round's pending frame), never for bytes read from a file. */
int ann_lf_rec_decode_own(const uint8_t *p, size_t avail, ann_entry *e, uint32_t *rec_len);

/* Rewrites the record at p (rec_len bytes, header fields trusted) as redacted. */
void ann_lf_rec_redact(uint8_t *p, uint32_t rec_len);

/* Called for each record the scan accepts, in id order. `e` points into the
 * scan's buffer. `needs_redact`: the record is in the pending set and not yet
 * (correctly) redacted; the caller must redact it. */
typedef int (*ann_lf_scan_fn)(const ann_entry *e, uint64_t off, uint32_t rec_len, bool needs_redact,
                              void *ud, ann_err *err);

/*
 * Reads the file from start_off (a frame boundary; 0 for the whole file),
 * where id start_id is expected, calling fn per record. `pending` is a sorted
 * array of ids with a revocation not yet known to be applied: such a record
 * is accepted even if its checksum fails (a torn in-place rewrite).
 * On success *valid_end is the end of the last good frame; if it is below the
 * file size the rest is preallocated zeros or a torn tail.
 * Fails with ANN_ECORRUPT (naming path and offset) for damage before the last
 * frame, ANN_EUNAVAIL for read errors (nothing is changed by a scan).
 */
int ann_lf_scan(int fd, const char *path, uint64_t start_off, uint64_t start_id,
                const uint64_t *pending, size_t npending, ann_lf_scan_fn fn, void *ud,
                uint64_t *valid_end, uint64_t *last_id, ann_err *err);

/* pread() of exactly len bytes at off, retrying short reads and EINTR; -1 with errno set
 * (EIO at end of file). */
int ann_lf_pread_full(int fd, void *buf, size_t len, uint64_t off);

#endif
