/*
 * Test support for sealed blocks (store/embedded/block.h): recomputes every CRC of a block
 * from its own header, so tests, seeds and the fuzz target can edit a block and still reach
 * the checks behind the CRCs.
 */
#ifndef ANN_TESTS_BLK_RESEAL_H
#define ANN_TESTS_BLK_RESEAL_H

#include <stddef.h>
#include <stdint.h>

/* p holds size >= ANN_BLK_HDR_LEN bytes: the section CRCs (lengths from the header, cut at
 * size), block_crc (over bytes 128..min(total_len, size)) and hdr_crc are rewritten. */
void blk_reseal(uint8_t *p, size_t size);

#endif
