#include "domain/event.h"

#include <stdio.h>

void ann_event_key(const char *tenant_id, const char *log_id, char out[ANN_EVENT_KEY_LEN + 1])
{
    snprintf(out, ANN_EVENT_KEY_LEN + 1, "%s/%s", tenant_id, log_id);
}

int32_t ann_event_partition(const char *key, size_t key_len, int32_t n_partitions)
{
    uint32_t h = 2166136261u; /* FNV-1a, 32 bits */
    for (size_t i = 0; i < key_len; i++) {
        h ^= (uint8_t)key[i];
        h *= 16777619u;
    }
    return n_partitions > 0 ? (int32_t)(h % (uint32_t)n_partitions) : 0;
}
