#include "blk_reseal.h"

#include "store/embedded/block.h"
#include "store/embedded/hash.h"

void blk_reseal(uint8_t *p, size_t size)
{
    uint64_t off = ANN_BLK_HDR_LEN;
    /* meta, iid, body, salt, filter: lengths at 72, 80, 88, 120, 96; CRCs at 104, 108, 112,
     * 124, 116 */
    static const int len_at[5] = {72, 80, 88, 120, 96}, crc_at[5] = {104, 108, 112, 124, 116};
    for (int i = 0; i < 5; i++) {
        uint64_t z = ann_le32_get(p + len_at[i]);
        z = off + z <= size ? z : (off <= size ? size - off : 0);
        ann_le32_put(p + crc_at[i], ann_crc32c(0, p + off, (size_t)z));
        off += z;
    }
    uint64_t total = ann_le32_get(p + 100);
    total = total >= ANN_BLK_HDR_LEN && total <= size ? total : size;
    ann_le32_put(p + 8, ann_crc32c(0, p + ANN_BLK_HDR_LEN, (size_t)(total - ANN_BLK_HDR_LEN)));
    ann_le32_put(p + 4, ann_crc32c(0, p + 8, ANN_BLK_HDR_LEN - 8));
}
