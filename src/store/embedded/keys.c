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
 *  - Never stale: a key's tenant, name, roles and expiry never change; a revocation
 *    grows the keys epoch in SQLite (in any process: `annalsd key revoke` beside a
 *    server), and every lookup first reads the epoch (a cheap read on a connection of
 *    its own) and empties the cache when it moved. Expiry is checked by the caller.
 *  - Last use: each slot remembers when the key's last use was recorded; a use a
 *    minute (ANN_KEY_LAST_USE_EVERY_NS) after that is recorded again.
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

void emb_keys_sync(emb *s, int64_t epoch)
{
    pthread_mutex_lock(&s->keys.mu);
    if (s->keys.epoch != epoch) {
        if (s->keys.slots)
            memset(s->keys.slots, 0, (size_t)EMB_KEYS_SETS * EMB_KEYS_WAYS * sizeof *s->keys.slots);
        s->keys.count = 0;
        s->keys.epoch = epoch;
    }
    pthread_mutex_unlock(&s->keys.mu);
}

bool emb_keys_get(emb *s, const uint8_t key_hash[32], int64_t now_ns, ann_tenant *out, bool *touch)
{
    bool found = false;
    *touch = false;
    pthread_mutex_lock(&s->keys.mu);
    if (s->keys.slots) {
        emb_key_slot *set = key_set(s, key_hash);
        for (int i = 0; i < EMB_KEYS_WAYS; i++) {
            if (set[i].used && !memcmp(set[i].key_hash, key_hash, 32)) {
                set[i].used = ++s->keys.tick;
                *out = set[i].tenant;
                if (now_ns - set[i].last_used_ns >= ANN_KEY_LAST_USE_EVERY_NS) {
                    set[i].last_used_ns = now_ns;
                    *touch = true;
                }
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

void emb_keys_put(emb *s, const uint8_t key_hash[32], const ann_tenant *t, int64_t last_used_ns,
                  int64_t epoch)
{
    pthread_mutex_lock(&s->keys.mu);
    if (epoch != s->keys.epoch) { /* read before a revocation the cache has seen */
        pthread_mutex_unlock(&s->keys.mu);
        return;
    }
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
    victim->last_used_ns = last_used_ns;
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
