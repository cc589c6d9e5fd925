#include "cli/hits.h"

#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int ann_cli_hits_add(ann_cli_hits *h, ProtobufCBinaryData log_id, ProtobufCBinaryData entry_id)
{
    uint64_t id;
    if (log_id.len == 0 || log_id.len > ANN_CLI_LOG_ID_MAX)
        return -1;
    for (size_t i = 0; i < log_id.len; i++)
        if (log_id.data[i] <= ' ' || log_id.data[i] >= 0x7f)
            return -1;
    if (ann_cli_parse_id_bytes(entry_id, &id) < 0 || id == 0)
        return -1;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->v = ann_xrealloc(h->v, h->cap * sizeof *h->v);
    }
    ann_cli_hit *x = &h->v[h->n++];
    memcpy(x->log_id, log_id.data, log_id.len);
    x->log_id[log_id.len] = '\0';
    x->entry_id = id;
    return 0;
}

static int hit_cmp(const void *a, const void *b)
{
    const ann_cli_hit *x = a, *y = b;
    int c = strcmp(x->log_id, y->log_id);
    if (c)
        return c;
    return (x->entry_id > y->entry_id) - (x->entry_id < y->entry_id);
}

size_t ann_cli_hits_sort(ann_cli_hits *h)
{
    size_t k = 0, logs = 0;
    if (h->n)
        qsort(h->v, h->n, sizeof *h->v, hit_cmp);
    for (size_t i = 0; i < h->n; i++) {
        if (k && hit_cmp(&h->v[k - 1], &h->v[i]) == 0)
            continue;
        if (!k || strcmp(h->v[k - 1].log_id, h->v[i].log_id))
            logs++;
        if (k != i)
            h->v[k] = h->v[i];
        k++;
    }
    h->n = k;
    return logs;
}

size_t ann_cli_hits_log_end(const ann_cli_hits *h, size_t start)
{
    size_t end = start + 1;
    while (end < h->n && !strcmp(h->v[end].log_id, h->v[start].log_id))
        end++;
    return end;
}

void ann_cli_hits_free(ann_cli_hits *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
