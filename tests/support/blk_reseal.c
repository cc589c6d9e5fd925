#include "blk_reseal.h"

#include "store/embedded/block.h"
#include "store/embedded/hash.h"

void blk_reseal(uint8_t *p, size_t size)
{
    uint64_t off = ANN_BLK_HDR_LEN;
    for (int i = 0; i < 4; i++) { /* meta, iid, body, filter: lengths at 72, 80, 88, 96 */
        uint64_t z = ann_le32_get(p + 72 + 8 * i);
        z = off + z <= size ? z : (off <= size ? size - off : 0);
        ann_le32_put(p + 104 + 4 * i, ann_crc32c(0, p + off, (size_t)z));
        off += z;
    }
    uint64_t total = ann_le32_get(p + 100);
    total = total >= ANN_BLK_HDR_LEN && total <= size ? total : size;
    ann_le32_put(p + 8, ann_crc32c(0, p + ANN_BLK_HDR_LEN, (size_t)(total - ANN_BLK_HDR_LEN)));
    ann_le32_put(p + 4, ann_crc32c(0, p + 8, ANN_BLK_HDR_LEN - 8));
}
