#include "domain/event.h"

#include <stdio.h>
#include <string.h>

void ann_event_key(const char *tenant_id, const char *log_id, char out[ANN_EVENT_KEY_LEN + 1])
{
    snprintf(out, ANN_EVENT_KEY_LEN + 1, "%s/%s", tenant_id, log_id);
}

uint32_t ann_fnv1a32(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

int32_t ann_event_partition(const char *key, size_t key_len, int32_t n_partitions)
{
    uint32_t h = ann_fnv1a32(key, key_len);
    return n_partitions > 0 ? (int32_t)(h % (uint32_t)n_partitions) : 0;
}

bool ann_namespace_valid(const char *ns)
{
    size_t n = ns ? strlen(ns) : 0;
    if (n == 0 || n > ANN_NAMESPACE_MAX || ns[0] < 'a' || ns[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((ns[i] >= 'a' && ns[i] <= 'z') || (ns[i] >= '0' && ns[i] <= '9') || ns[i] == '_'))
            return false;
    return true;
}
