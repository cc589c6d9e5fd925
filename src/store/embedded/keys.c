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
 *  - Never stale: a key's tenant, name, roles and expiry never change; only a
 *    revocation (in any process: `annalsd key revoke` beside a server) makes an entry
 *    wrong. A revocation commits to SQLite (the row and the keys epoch), then adds one
 *    to the generation in DIR/keys.gen, a file every process of the directory maps
 *    shared. Every lookup loads that generation (an atomic read of shared memory, no
 *    system call) and empties the cache when it moved: the next call after a
 *    revocation already misses. Should a revoking process die between its commit and
 *    the increment, the SQLite epoch, read at most every EMB_KEYS_EPOCH_EVERY_NS,
 *    catches it. (The file is made by whichever process opens the directory first.)
 *    Expiry is checked by the caller.
 *  - Last use: each slot remembers when the key's last use was recorded; a use a
 *    minute (ANN_KEY_LAST_USE_EVERY_NS) after that is recorded again.
 *
 * Everything is under s->keys.mu, a leaf lock held for a few comparisons.
 */
#include "store/embedded/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"

#define GEN_FILE_BYTES 4096

int emb_keys_map(emb *s, ann_err *err)
{
    char *p = emb_path_join(s->dir, "keys.gen", NULL, "");
    int fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0600), rc = -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        emb_sys_fail(err, "open", p);
        goto done;
    }
    /* Growing a file of the right size again changes nothing: two first openers agree. */
    if (st.st_size < GEN_FILE_BYTES && ftruncate(fd, GEN_FILE_BYTES) != 0) {
        emb_sys_fail(err, "truncate", p);
        goto done;
    }
    void *m = mmap(NULL, GEN_FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        emb_sys_fail(err, "mmap", p);
        goto done;
    }
    s->keys.gen = m;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    free(p);
    return rc;
}

void emb_keys_bump(emb *s)
{
    if (s->keys.gen)
        __atomic_add_fetch(s->keys.gen, 1, __ATOMIC_SEQ_CST);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int emb_keys_validate(emb *s, uint64_t *gen_out, ann_err *err)
{
    uint64_t gen = s->keys.gen ? __atomic_load_n(s->keys.gen, __ATOMIC_SEQ_CST) : 0;
    int64_t now = mono_ns(), epoch = 0;
    pthread_mutex_lock(&s->keys.mu);
    bool due = !s->keys.gen || now - s->keys.epoch_read_ns >= EMB_KEYS_EPOCH_EVERY_NS;
    pthread_mutex_unlock(&s->keys.mu);
    if (due && ann_meta_keys_epoch(s->meta, &epoch, err) != 0)
        return -1;
    pthread_mutex_lock(&s->keys.mu);
    if (gen != s->keys.seen_gen || (due && epoch != s->keys.epoch)) {
        if (s->keys.slots)
            memset(s->keys.slots, 0, (size_t)EMB_KEYS_SETS * EMB_KEYS_WAYS * sizeof *s->keys.slots);
        s->keys.count = 0;
        s->keys.seen_gen = gen;
        s->keys.valid++; /* puts from before this are dropped */
    }
    if (due) {
        s->keys.epoch = epoch;
        s->keys.epoch_read_ns = now;
    }
    *gen_out = s->keys.valid;
    pthread_mutex_unlock(&s->keys.mu);
    return 0;
}

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
    if (k->gen)
        munmap((void *)k->gen, GEN_FILE_BYTES);
    k->gen = NULL;
    free(k->slots);
    k->slots = NULL;
    pthread_mutex_destroy(&k->mu);
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
                  uint64_t valid)
{
    pthread_mutex_lock(&s->keys.mu);
    if (valid != s->keys.valid) { /* read before a revocation the cache has seen */
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
