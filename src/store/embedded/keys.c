/*
 * The authenticated-key cache: tenant_by_key runs on every RPC, so known keys
 * are kept in memory (key hash -> tenant) instead of asking SQLite each time.
 *
 *  - Positive only: an unknown key is never cached, so a client trying random
 *    keys cannot fill the cache (nor evict the keys in use), and a tenant
 *    created by another process (`annalsd tenant create`) is found at its first
 *    use, by the SQLite lookup a miss makes.
 *  - Bounded: EMB_KEYS_SETS sets of EMB_KEYS_WAYS entries (4,096), the set
 *    chosen by a keyed hash of the key hash; a full set drops its least
 *    recently used entry. Allocated at the first insert.
 *  - Never stale: tenants and their keys are never changed or removed. (A
 *    future key rotation or tenant removal must clear the cache.)
 *
 * Everything is under s->keys.mu, a leaf lock held for a few comparisons.
 */
#include "store/embedded/internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

static emb_key_slot *key_set(emb *s, const uint8_t key_hash[32])
{
    uint64_t h = ann_siphash24(s->hkey, key_hash, 32);
    return &s->keys.slots[(h % EMB_KEYS_SETS) * EMB_KEYS_WAYS];
}

void emb_keys_init(emb_keys *k)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
}

void emb_keys_release(emb_keys *k)
{
    free(k->slots);
    k->slots = NULL;
    pthread_mutex_destroy(&k->mu);
}

bool emb_keys_get(emb *s, const uint8_t key_hash[32], ann_tenant *out)
{
    bool found = false;
    pthread_mutex_lock(&s->keys.mu);
    if (s->keys.slots) {
        emb_key_slot *set = key_set(s, key_hash);
        for (int i = 0; i < EMB_KEYS_WAYS; i++) {
            if (set[i].used && !memcmp(set[i].key_hash, key_hash, 32)) {
                set[i].used = ++s->keys.tick;
                *out = set[i].tenant;
                found = true;
                break;
            }
        }
    }
    if (found)
        s->keys.hits++;
    else
        s->keys.misses++;
    pthread_mutex_unlock(&s->keys.mu);
    return found;
}

void emb_keys_put(emb *s, const uint8_t key_hash[32], const ann_tenant *t)
{
    pthread_mutex_lock(&s->keys.mu);
    if (!s->keys.slots)
        s->keys.slots = ann_xcalloc((size_t)EMB_KEYS_SETS * EMB_KEYS_WAYS, sizeof *s->keys.slots);
    emb_key_slot *set = key_set(s, key_hash), *victim = &set[0];
    for (int i = 0; i < EMB_KEYS_WAYS; i++) {
        if (set[i].used && !memcmp(set[i].key_hash, key_hash, 32)) {
            victim = &set[i]; /* a concurrent miss put it there already */
            break;
        }
        if (set[i].used < victim->used)
            victim = &set[i]; /* empty (0) or least recently used */
    }
    if (!victim->used)
        s->keys.count++;
    memcpy(victim->key_hash, key_hash, 32);
    victim->tenant = *t;
    victim->used = ++s->keys.tick;
    pthread_mutex_unlock(&s->keys.mu);
}

void emb_keys_stats(ann_store *st, size_t *entries, uint64_t *hits, uint64_t *misses)
{
    emb *s = (emb *)st;
    pthread_mutex_lock(&s->keys.mu);
    *entries = s->keys.count;
    *hits = s->keys.hits;
    *misses = s->keys.misses;
    pthread_mutex_unlock(&s->keys.mu);
}
