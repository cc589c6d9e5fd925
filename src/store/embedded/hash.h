/*
 * Checksums and keyed hashing for the embedded store.
 *
 * ann_crc32c: CRC-32C (Castagnoli), the checksum of every frame header and
 * record in a log's data file. Uses the SSE4.2 instruction when the CPU has
 * it, a byte table otherwise; both give the same value.
 *
 * ann_siphash24: SipHash-2-4 with a 128-bit key, used for the insert_id dedup
 * table and the open-log table so that untrusted keys cannot be chosen to
 * collide (the key is random per store).
 */
#ifndef ANN_STORE_EMBEDDED_HASH_H
#define ANN_STORE_EMBEDDED_HASH_H

#include <stddef.h>
#include <stdint.h>

uint32_t ann_crc32c(uint32_t crc, const void *data, size_t len);

uint64_t ann_siphash24(const uint8_t key[16], const void *data, size_t len);

/* Little-endian loads and stores (the file format is little-endian). */
static inline void ann_le16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void ann_le32_put(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ann_le64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t ann_le16_get(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t ann_le32_get(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t ann_le64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
