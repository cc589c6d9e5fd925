#include "store/embedded/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "domain/integrity.h"
#include "store/embedded/hash.h"

#define MAX_FRAME_LEN (1ull << 30) /* frames are capped far below this */

void ann_lf_rec_encode(uint8_t *p, uint64_t id, const ann_entry *e)
{
    ann_lf_rec_encode_tail(p, id, e, NULL, 0);
}

void ann_lf_rec_encode_tail(uint8_t *p, uint64_t id, const ann_entry *e, const uint8_t *tail,
                            size_t tail_len)
{
    size_t body_len = e->body_len + tail_len;
    uint32_t rec_len = (uint32_t)ann_lf_rec_size(e->insert_id_len, body_len);
    ann_le32_put(p + 4, rec_len);
    ann_le64_put(p + 8, id);
    ann_le64_put(p + 16, (uint64_t)e->time_ns);
    ann_le64_put(p + 24, (uint64_t)e->insert_time_ns);
    ann_le32_put(p + 32, (uint32_t)e->severity);
    ann_le32_put(p + 36, e->flags & ANN_ENTRY_REDACTED);
    ann_le16_put(p + 40, (uint16_t)e->insert_id_len);
    ann_le16_put(p + 42, 0);
    ann_le32_put(p + 44, (uint32_t)body_len);
    memcpy(p + ANN_LF_REC_HDR, e->insert_id, e->insert_id_len);
    if (e->body_len)
        memcpy(p + ANN_LF_REC_HDR + e->insert_id_len, e->body, e->body_len);
    if (tail_len)
        memcpy(p + ANN_LF_REC_HDR + e->insert_id_len + e->body_len, tail, tail_len);
    ann_le32_put(p, ann_crc32c(0, p + 4, rec_len - 4));
}

void ann_lf_frame_encode(uint8_t *p, uint64_t first_id, uint32_t count, uint64_t frame_len)
{
    ann_le32_put(p, ANN_LF_MAGIC);
    ann_le64_put(p + 8, first_id);
    ann_le32_put(p + 16, count);
    ann_le32_put(p + 20, 0);
    ann_le64_put(p + 24, frame_len);
    ann_le32_put(p + 4, ann_crc32c(0, p + 8, 24));
}

static void fill_entry(const uint8_t *p, ann_entry *e, bool with_body)
{
    uint16_t iid_len = ann_le16_get(p + 40);
    e->entry_id = ann_le64_get(p + 8);
    e->time_ns = (int64_t)ann_le64_get(p + 16);
    e->insert_time_ns = (int64_t)ann_le64_get(p + 24);
    e->severity = (int32_t)ann_le32_get(p + 32);
    e->flags = ann_le32_get(p + 36);
    e->insert_id = (const char *)p + ANN_LF_REC_HDR;
    e->insert_id_len = iid_len;
    e->body = p + ANN_LF_REC_HDR + iid_len;
    e->body_len = with_body ? ann_le32_get(p + 44) : 0;
}

static int rec_decode(const uint8_t *p, size_t avail, ann_entry *e, uint32_t *rec_len,
                      bool check_crc)
{
    *rec_len = 0;
    if (avail < ANN_LF_REC_HDR)
        return -1;
    uint32_t len = ann_le32_get(p + 4);
    uint16_t iid_len = ann_le16_get(p + 40);
    uint32_t body_len = ann_le32_get(p + 44);
    if (len < ANN_LF_REC_HDR + (uint32_t)iid_len || len > avail)
        return -1;
    *rec_len = len;
    if ((uint64_t)ANN_LF_REC_HDR + iid_len + body_len > len)
        return -1;
    if (check_crc &&
        ann_crc32c(0, p + 4, ANN_LF_REC_HDR - 4 + iid_len + body_len) != ann_le32_get(p))
        return -1;
    fill_entry(p, e, true);
    return 0;
}

int ann_lf_rec_decode(const uint8_t *p, size_t avail, ann_entry *e, uint32_t *rec_len)
{
    return rec_decode(p, avail, e, rec_len, true);
}

int ann_lf_rec_decode_own(const uint8_t *p, size_t avail, ann_entry *e, uint32_t *rec_len)
{
    return rec_decode(p, avail, e, rec_len, false);
}

void ann_lf_rec_redact(uint8_t *p, uint32_t rec_len)
{
    uint16_t iid_len = ann_le16_get(p + 40);
    uint8_t *body = p + ANN_LF_REC_HDR + iid_len;
    size_t cap = rec_len - ANN_LF_REC_HDR - iid_len;
    size_t body_len = ann_le32_get(p + 44);
    /* The body_hash stays (docs/integrity.md): computed from the salt and body before they
     * go, or kept when the record already holds it (a redaction redone after a crash; a
     * torn rewrite may have left the new header over the old body, so the whole capacity
     * is tried too). */
    uint8_t hash[32], field[ANN_INTEGRITY_FIELD_LEN];
    bool have = (body_len <= cap && ann_integrity_body_hash(body, body_len, hash, NULL) == 0) ||
                ann_integrity_body_hash(body, cap, hash, NULL) == 0;
    ann_le32_put(p + 36, ann_le32_get(p + 36) | ANN_ENTRY_REDACTED);
    memset(body, 0, cap);
    body_len = 0;
    if (have && cap >= ANN_INTEGRITY_FIELD_LEN) {
        ann_integrity_field(ANN_INTEGRITY_HASH, hash, field);
        memcpy(body, field, sizeof field);
        body_len = sizeof field;
    }
    ann_le32_put(p + 44, (uint32_t)body_len);
    ann_le32_put(p, ann_crc32c(0, p + 4, ANN_LF_REC_HDR - 4 + iid_len + body_len));
}

int ann_lf_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static bool header_ok(const uint8_t *h)
{
    return ann_le32_get(h) == ANN_LF_MAGIC && ann_le32_get(h + 4) == ann_crc32c(0, h + 8, 24);
}

bool ann_lf_frame_decode(const uint8_t *p, uint64_t *first_id, uint32_t *count, uint64_t *frame_len)
{
    if (!header_ok(p))
        return false;
    *first_id = ann_le64_get(p + 8);
    *count = ann_le32_get(p + 16);
    *frame_len = ann_le64_get(p + 24);
    return *frame_len >= ANN_LF_FRAME_HDR;
}

/* Is there a well-formed frame header anywhere in [from, size)? Such a
 * header after a damaged one means the damage is not a torn tail. */
static int frame_header_after(int fd, uint64_t from, uint64_t size, bool *found)
{
    enum { BUF = 1 << 20 };
    uint8_t *buf = ann_xmalloc(BUF);
    int rc = -1;
    *found = false;
    for (uint64_t off = from; off + ANN_LF_FRAME_HDR <= size;) {
        size_t len = size - off < BUF ? (size_t)(size - off) : BUF;
        if (ann_lf_pread_full(fd, buf, len, off) != 0)
            goto done;
        for (size_t i = 0; i + ANN_LF_FRAME_HDR <= len; i++) {
            if (buf[i] == 'A' && header_ok(buf + i)) {
                *found = true;
                rc = 0;
                goto done;
            }
        }
        if (len < BUF)
            break;
        off += len - ANN_LF_FRAME_HDR + 1;
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

/* Fails with ANN_ECORRUPT if a well-formed frame header follows the damaged
 * frame at `off` (so the damage is not a torn tail). */
static int later_frame(int fd, const char *path, uint64_t off, uint64_t size, ann_err *err)
{
    bool found;
    if (frame_header_after(fd, off + 1, size, &found) != 0)
        return ann_err_set(err, ANN_EUNAVAIL, "%s: read: %s", path, strerror(errno));
    if (found)
        return ann_err_set(err, ANN_ECORRUPT,
                           "%s: damaged frame at offset %llu before later frames", path,
                           (unsigned long long)off);
    return 0;
}

static bool is_pending(const uint64_t *pending, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pending[mid] == id)
            return true;
        if (pending[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Checks every record of the frame in buf; returns 0 if all are good (or
 * torn rewrites of pending revocations). */
static int frame_check(const uint8_t *buf, uint64_t frame_len, uint64_t first_id, uint32_t count,
                       const uint64_t *pending, size_t npending)
{
    uint64_t pos = ANN_LF_FRAME_HDR;
    for (uint32_t i = 0; i < count; i++) {
        ann_entry e;
        uint32_t rl;
        if (ann_lf_rec_decode(buf + pos, frame_len - pos, &e, &rl) != 0) {
            if (rl == 0 || ann_le64_get(buf + pos + 8) != first_id + i ||
                !is_pending(pending, npending, first_id + i))
                return -1;
        } else if (e.entry_id != first_id + i) {
            return -1;
        }
        pos += rl;
    }
    return pos == frame_len ? 0 : -1;
}

int ann_lf_scan(int fd, const char *path, uint64_t start_off, uint64_t start_id,
                const uint64_t *pending, size_t npending, ann_lf_scan_fn fn, void *ud,
                uint64_t *valid_end, uint64_t *last_id, ann_err *err)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t off = start_off, expect = start_id;
    int rc = -1;

    if (fstat(fd, &st) != 0) {
        ann_err_set(err, ANN_EUNAVAIL, "%s: stat: %s", path, strerror(errno));
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (off < size) {
        uint8_t h[ANN_LF_FRAME_HDR];
        bool torn = false;
        if (size - off < ANN_LF_FRAME_HDR) {
            torn = true;
        } else {
            if (ann_lf_pread_full(fd, h, sizeof h, off) != 0) {
                ann_err_set(err, ANN_EUNAVAIL, "%s: read at %llu: %s", path,
                            (unsigned long long)off, strerror(errno));
                goto done;
            }
            if (!header_ok(h)) {
                if (later_frame(fd, path, off, size, err) != 0)
                    goto done;
                torn = true;
            }
        }
        if (torn)
            break;
        uint64_t first_id = ann_le64_get(h + 8);
        uint32_t count = ann_le32_get(h + 16);
        uint64_t frame_len = ann_le64_get(h + 24);
        if (first_id != expect || count == 0 || frame_len < ANN_LF_FRAME_HDR ||
            frame_len > MAX_FRAME_LEN) {
            ann_err_set(err, ANN_ECORRUPT,
                        "%s: frame at offset %llu: first id %llu (expected %llu), %u records", path,
                        (unsigned long long)off, (unsigned long long)first_id,
                        (unsigned long long)expect, count);
            goto done;
        }
        if (frame_len > size - off)
            break;             /* torn: the frame was being written */
        if (frame_len > cap) { /* bounded by the file's size (checked above) */
            buf = ann_xrealloc(buf, frame_len);
            cap = frame_len;
        }
        if (ann_lf_pread_full(fd, buf, frame_len, off) != 0) {
            ann_err_set(err, ANN_EUNAVAIL, "%s: read at %llu: %s", path, (unsigned long long)off,
                        strerror(errno));
            goto done;
        }
        if (frame_check(buf, frame_len, first_id, count, pending, npending) != 0) {
            /* The last frame (nothing but zeros after it) was being written:
             * torn, and none of it was acknowledged. Before another frame
             * it is corruption. */
            if (later_frame(fd, path, off, size, err) != 0) {
                ann_err_set(err, ANN_ECORRUPT,
                            "%s: bad record checksum in frame at offset %llu (entries "
                            "%llu..%llu)",
                            path, (unsigned long long)off, (unsigned long long)first_id,
                            (unsigned long long)(first_id + count - 1));
                goto done;
            }
            break;
        }
        uint64_t pos = ANN_LF_FRAME_HDR;
        for (uint32_t i = 0; i < count; i++) {
            ann_entry e;
            uint32_t rl;
            bool redact;
            if (ann_lf_rec_decode(buf + pos, frame_len - pos, &e, &rl) != 0) {
                fill_entry(buf + pos, &e, false);
                redact = true;
            } else {
                /* Rewritten even if it looks redacted: a torn rewrite can keep
                 * the new header and the old body (the payload). */
                redact = is_pending(pending, npending, e.entry_id);
            }
            if (fn(&e, off + pos, rl, redact, ud, err) != 0)
                goto done;
            pos += rl;
        }
        expect = first_id + count;
        off += frame_len;
    }
    *valid_end = off;
    *last_id = expect - 1;
    rc = 0;
done:
    free(buf);
    return rc;
}
