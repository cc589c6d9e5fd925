#include "store/embedded/meta.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/buf.h"
#include "domain/body.h"
#include "store/embedded/hash.h"

struct ann_meta {
    sqlite3 *db;
    pthread_mutex_t mu;
    /* A second connection for the one read every authentication makes (the keys epoch),
     * so it never waits behind a commit's fsync on db. Guarded by rmu, a leaf. */
    sqlite3 *rdb;
    sqlite3_stmt *epoch_st;
    pthread_mutex_t rmu;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tenants(id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " key_hash BLOB NOT NULL UNIQUE, create_ns INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS logs(tenant_id TEXT NOT NULL, log_id TEXT NOT NULL,"
    " create_ns INTEGER NOT NULL, labels BLOB, state INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(tenant_id, log_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS revocations(id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL,"
    " log_id TEXT NOT NULL, time_ns INTEGER NOT NULL, actor TEXT NOT NULL,"
    " reason TEXT NOT NULL, ids BLOB NOT NULL, applied INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS revocations_log ON revocations(tenant_id, log_id, applied);"
    /* ListLogs: a tenant's logs newest first, and by label (the pair with the create time,
     * so one pair's logs come in the listing's order straight from the key). */
    "CREATE INDEX IF NOT EXISTS logs_by_time ON logs(tenant_id, create_ns DESC, log_id);"
    "CREATE TABLE IF NOT EXISTS log_labels(tenant_id TEXT NOT NULL, key BLOB NOT NULL,"
    " value BLOB NOT NULL, create_ns INTEGER NOT NULL, log_id TEXT NOT NULL,"
    " PRIMARY KEY(tenant_id, key, value, create_ns DESC, log_id)) WITHOUT ROWID;"
    /* A tenant's keys (docs/api.md, "Keys and roles"): only their SHA-256 is kept. Revoked
     * keys stay (revoke_ns > 0), so their names and the audit records naming them keep one
     * meaning. meta 'keys_epoch' grows with every revocation: servers compare it with their
     * cache of keys. */
    "CREATE TABLE IF NOT EXISTS keys(id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,"
    " name TEXT NOT NULL, key_hash BLOB NOT NULL UNIQUE, roles INTEGER NOT NULL,"
    " create_ns INTEGER NOT NULL, expire_ns INTEGER NOT NULL DEFAULT 0,"
    " revoke_ns INTEGER NOT NULL DEFAULT 0, last_used_ns INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(tenant_id, name));"
    /* The audit trail of a log's lifecycle (docs/api.md, "Retention and legal hold"):
     * holds, releases and retention's deletions, kept after the log is gone. */
    "CREATE TABLE IF NOT EXISTS log_events(id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL,"
    " log_id TEXT NOT NULL, time_ns INTEGER NOT NULL, kind TEXT NOT NULL,"
    " actor TEXT NOT NULL, reason TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS log_events_log ON log_events(tenant_id, log_id, id);";

/* Columns added after the first release: (table, column, definition). */
static const char *const ADDED_COLUMNS[][3] = {
    /* A log's entry count as of its last clean close; count_dirty says it may be behind
     * (the log took appends since), so the count must come from the log itself. */
    {"logs", "entry_count", "INTEGER NOT NULL DEFAULT 0"},
    {"logs", "count_dirty", "INTEGER NOT NULL DEFAULT 1"},
    /* Retention and legal hold: the log's own period (0: the tenant's), its hold, and a
     * lower bound of its last write (0: its create time) that the retention pass keeps
     * up to date as it checks logs (docs/storage.md, "Retention"). */
    {"logs", "retention_days", "INTEGER NOT NULL DEFAULT 0"},
    {"logs", "legal_hold", "INTEGER NOT NULL DEFAULT 0"},
    {"logs", "last_write_ns", "INTEGER NOT NULL DEFAULT 0"},
    {"tenants", "retention_days", "INTEGER NOT NULL DEFAULT 0"},
    /* SealLog (docs/integrity.md): the log takes no more entries. */
    {"logs", "sealed", "INTEGER NOT NULL DEFAULT 0"},
};

/* SQLite reports its own allocation failures as errors; the store's policy is
 * to abort on those (common/buf.h), so they are not told apart from the rest
 * by callers. */
static void sqlite_oom(void)
{
    fprintf(stderr, "annals: out of memory (SQLite)\n");
    abort();
}

/* The code of the connection's last error: busy or locked, nothing was done;
 * full, nothing was stored; anything else (an I/O error in a commit) may have
 * taken effect. */
static ann_code db_code(ann_meta *m)
{
    int code = sqlite3_extended_errcode(m->db) & 0xff;
    if (code == SQLITE_NOMEM)
        sqlite_oom();
    return code == SQLITE_CORRUPT || code == SQLITE_NOTADB  ? ANN_ECORRUPT
           : code == SQLITE_BUSY || code == SQLITE_LOCKED   ? ANN_EUNAVAIL
           : code == SQLITE_FULL                            ? ANN_ENOSPC
           : code == SQLITE_CANTOPEN || code == SQLITE_PERM ? ANN_EUNAVAIL
                                                            : ANN_EIO;
}

static int db_fail(ann_meta *m, ann_err *err, const char *what)
{
    return ann_err_set(err, db_code(m), "metadata %s: %s", what, sqlite3_errmsg(m->db));
}

static int prep(ann_meta *m, const char *sql, sqlite3_stmt **st, ann_err *err)
{
    if (sqlite3_prepare_v2(m->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(m, err, "prepare");
    return 0;
}

typedef struct label_ins {
    sqlite3_stmt *st;
    int rc;
} label_ins;

static int insert_label(const uint8_t *k, size_t kn, const uint8_t *v, size_t vn, void *ud)
{
    label_ins *li = ud;
    sqlite3_bind_blob(li->st, 2, kn ? (const void *)k : "", (int)kn, SQLITE_STATIC);
    sqlite3_bind_blob(li->st, 3, vn ? (const void *)v : "", (int)vn, SQLITE_STATIC);
    int r = sqlite3_step(li->st);
    sqlite3_reset(li->st);
    if (r != SQLITE_DONE && r != SQLITE_CONSTRAINT) {
        li->rc = -1;
        return 1;
    }
    return 0;
}

/* The log's labels (Log fields 2) as rows of log_labels, in the caller's transaction. */
static int labels_insert(ann_meta *m, const char *tenant, const char *log, const uint8_t *labels,
                         size_t labels_len, int64_t create_ns, ann_err *err)
{
    label_ins li = {NULL, 0};
    if (labels_len == 0)
        return 0;
    if (prep(m,
             "INSERT OR IGNORE INTO log_labels(tenant_id, key, value, create_ns, log_id)"
             " VALUES(?1, ?2, ?3, ?4, ?5)",
             &li.st, err) != 0)
        return -1;
    sqlite3_bind_text(li.st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(li.st, 4, create_ns);
    sqlite3_bind_text(li.st, 5, log, -1, SQLITE_STATIC);
    ann_labels_each(labels, labels_len, 2, insert_label, &li);
    sqlite3_finalize(li.st);
    return li.rc == 0 ? 0 : db_fail(m, err, "label insert");
}

static int column_exists(ann_meta *m, const char *table, const char *column)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(m->db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

/* Brings a data directory made by an earlier release up to this schema: added columns,
 * and the label rows of logs created before log_labels existed. Idempotent; one
 * transaction, so two processes opening at once do it once. */
static int migrate(ann_meta *m, ann_err *err)
{
    if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(m, err, "begin");
    bool added = false;
    for (size_t i = 0; i < sizeof ADDED_COLUMNS / sizeof ADDED_COLUMNS[0]; i++) {
        int e = column_exists(m, ADDED_COLUMNS[i][0], ADDED_COLUMNS[i][1]);
        if (e < 0)
            goto fail;
        if (e)
            continue;
        char sql[256];
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", ADDED_COLUMNS[i][0],
                 ADDED_COLUMNS[i][1], ADDED_COLUMNS[i][2]);
        if (sqlite3_exec(m->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            goto fail;
        added = true;
    }
    if (added) { /* logs from before log_labels: index their labels */
        sqlite3_stmt *st = NULL;
        if (prep(m, "SELECT tenant_id, log_id, create_ns, labels FROM logs", &st, err) != 0)
            goto fail_err;
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            char *t = strdup((const char *)sqlite3_column_text(st, 0));
            char *l = strdup((const char *)sqlite3_column_text(st, 1));
            size_t n = (size_t)sqlite3_column_bytes(st, 3);
            uint8_t *lab = n ? ann_xmalloc(n) : NULL;
            if (n)
                memcpy(lab, sqlite3_column_blob(st, 3), n);
            int lr = labels_insert(m, t, l, lab, n, sqlite3_column_int64(st, 2), err);
            free(t), free(l), free(lab);
            if (lr != 0) {
                sqlite3_finalize(st);
                goto fail_err;
            }
        }
        sqlite3_finalize(st);
        if (r != SQLITE_DONE)
            goto fail;
    }
    { /* tenants from before keys: their one key becomes their admin key */
        sqlite3_stmt *st = NULL, *ins = NULL;
        if (prep(m,
                 "SELECT id, key_hash, create_ns FROM tenants WHERE key_hash NOT IN"
                 " (SELECT key_hash FROM keys)",
                 &st, err) != 0)
            goto fail_err;
        if (prep(m,
                 "INSERT INTO keys(id, tenant_id, name, key_hash, roles, create_ns)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                 &ins, err) != 0) {
            sqlite3_finalize(st);
            goto fail_err;
        }
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            char kid[ANN_UUID_LEN + 1];
            ann_uuid_v4_new(kid);
            sqlite3_bind_text(ins, 1, kid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 2, (const char *)sqlite3_column_text(st, 0), -1,
                              SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 3, ANN_ADMIN_KEY_NAME, -1, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 4, sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1),
                              SQLITE_TRANSIENT);
            sqlite3_bind_int(ins, 5, ANN_ROLE_ADMIN);
            sqlite3_bind_int64(ins, 6, sqlite3_column_int64(st, 2));
            int ir = sqlite3_step(ins);
            sqlite3_reset(ins);
            if (ir != SQLITE_DONE)
                break;
        }
        sqlite3_finalize(ins);
        sqlite3_finalize(st);
        if (r != SQLITE_DONE)
            goto fail;
    }
    if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    db_fail(m, err, "schema upgrade");
fail_err:
    sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

int ann_meta_open(const char *path, bool durable, ann_meta **out, ann_err *err)
{
    ann_meta *m = ann_xcalloc(1, sizeof *m);
    char *emsg = NULL;
    int rc = -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->rmu, NULL);
    if (sqlite3_open_v2(path, &m->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        if (!m->db)
            sqlite_oom();
        ann_err_set(err, db_code(m), "open %s: %s", path, sqlite3_errmsg(m->db));
        goto done;
    }
    sqlite3_busy_timeout(m->db, 10000);
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
             durable ? "FULL" : "NORMAL");
    if (sqlite3_exec(m->db, pragmas, NULL, NULL, &emsg) != SQLITE_OK ||
        sqlite3_exec(m->db, SCHEMA, NULL, NULL, &emsg) != SQLITE_OK) {
        ann_err_set(err, db_code(m), "%s: schema: %s", path, emsg ? emsg : "?");
        goto done;
    }
    if (migrate(m, err) != 0)
        goto done;
    if (sqlite3_open_v2(path, &m->rdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(m->rdb, 10000) != SQLITE_OK ||
        sqlite3_prepare_v2(m->rdb, "SELECT v FROM meta WHERE k = 'keys_epoch'", -1, &m->epoch_st,
                           NULL) != SQLITE_OK) {
        if (!m->rdb)
            sqlite_oom();
        ann_err_set(err, ANN_EIO, "open %s: %s", path, sqlite3_errmsg(m->rdb));
        goto done;
    }
    /* The secret and the hash key are made once, by whichever process opens
     * the store first. */
    uint8_t secret[32 + 16];
    if (getrandom(secret, sizeof secret, 0) != (ssize_t)sizeof secret) {
        ann_err_set(err, ANN_EUNAVAIL, "getrandom failed");
        goto done;
    }
    sqlite3_stmt *st;
    if (prep(m, "INSERT OR IGNORE INTO meta(k, v) VALUES('secret', ?), ('hashkey', ?)", &st, err) !=
        0)
        goto done;
    sqlite3_bind_blob(st, 1, secret, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, secret + 32, 16, SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        db_fail(m, err, "secret");
        goto done;
    }
    rc = 0;
done:
    sqlite3_free(emsg);
    if (rc != 0) {
        ann_meta_free(m);
        m = NULL;
    }
    *out = m;
    return rc;
}

void ann_meta_free(ann_meta *m)
{
    if (!m)
        return;
    sqlite3_finalize(m->epoch_st);
    sqlite3_close(m->rdb);
    sqlite3_close(m->db);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->rmu);
    free(m);
}

static int meta_blob(ann_meta *m, const char *key, uint8_t *out, int len, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT v FROM meta WHERE k = ?", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_bytes(st, 0) != len) {
        ann_err_set(err, ANN_ECORRUPT, "metadata: %s missing or malformed", key);
        goto done;
    }
    memcpy(out, sqlite3_column_blob(st, 0), (size_t)len);
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_secret(ann_meta *m, uint8_t out[32], ann_err *err)
{
    return meta_blob(m, "secret", out, 32, err);
}

int ann_meta_hashkey(ann_meta *m, uint8_t out[16], ann_err *err)
{
    return meta_blob(m, "hashkey", out, 16, err);
}

int ann_meta_tenant_create(ann_meta *m, const char *id, const char *name, const char *key_id,
                           const uint8_t key_hash[32], int64_t now_ns, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "begin");
        pthread_mutex_unlock(&m->mu);
        return -1;
    }
    if (prep(m, "INSERT INTO tenants(id, name, key_hash, create_ns) VALUES(?, ?, ?, ?)", &st,
             err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, key_hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ns);
    int r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT) {
        const char *msg = sqlite3_errmsg(m->db);
        if (strstr(msg, "tenants.name"))
            ann_err_set(err, ANN_EEXISTS, "tenant name '%.128s' is already taken", name);
        else
            ann_err_set(err, ANN_EEXISTS, "tenant key is already in use");
        goto done;
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "tenant insert");
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (prep(m,
             "INSERT INTO keys(id, tenant_id, name, key_hash, roles, create_ns)"
             " VALUES(?, ?, ?, ?, ?, ?)",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ANN_ADMIN_KEY_NAME, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, key_hash, 32, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, ANN_ROLE_ADMIN);
    sqlite3_bind_int64(st, 6, now_ns);
    r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT) {
        ann_err_set(err, ANN_EEXISTS, "tenant key is already in use");
        goto done;
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "key insert");
        goto done;
    }
    if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "commit");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    if (rc != 0)
        sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- keys ---- */

#define KEY_COLS                                                                                   \
    "k.id, k.tenant_id, k.name, k.roles, k.create_ns, k.expire_ns, k.revoke_ns, k.last_used_ns"

static void key_from_row(sqlite3_stmt *st, int col, ann_key *k)
{
    memset(k, 0, sizeof *k);
    snprintf(k->id, sizeof k->id, "%s", (const char *)sqlite3_column_text(st, col));
    snprintf(k->tenant_id, sizeof k->tenant_id, "%s",
             (const char *)sqlite3_column_text(st, col + 1));
    snprintf(k->name, sizeof k->name, "%s", (const char *)sqlite3_column_text(st, col + 2));
    k->roles = (uint32_t)sqlite3_column_int(st, col + 3);
    k->create_ns = sqlite3_column_int64(st, col + 4);
    k->expire_ns = sqlite3_column_int64(st, col + 5);
    k->revoke_ns = sqlite3_column_int64(st, col + 6);
    k->last_used_ns = sqlite3_column_int64(st, col + 7);
}

int ann_meta_key_by_hash(ann_meta *m, const uint8_t key_hash[32], ann_tenant *t, ann_key *k,
                         ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m,
             "SELECT t.name, " KEY_COLS " FROM keys k JOIN tenants t ON t.id = k.tenant_id"
             " WHERE k.key_hash = ?",
             &st, err) != 0)
        goto done;
    sqlite3_bind_blob(st, 1, key_hash, 32, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
        rc = 0;
        goto done;
    }
    if (r != SQLITE_ROW) {
        db_fail(m, err, "key lookup");
        goto done;
    }
    key_from_row(st, 1, k);
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", k->tenant_id);
    snprintf(t->name, sizeof t->name, "%s", (const char *)sqlite3_column_text(st, 0));
    memcpy(t->key_id, k->id, sizeof t->key_id);
    memcpy(t->key_name, k->name, sizeof t->key_name);
    t->roles = k->roles;
    t->expire_ns = k->expire_ns;
    memcpy(t->key_hash, key_hash, 32);
    rc = 1;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_key_create(ann_meta *m, const ann_key_spec *spec, const char *key_id, ann_key *out,
                        ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m,
             "INSERT INTO keys(id, tenant_id, name, key_hash, roles, create_ns, expire_ns)"
             " SELECT ?1, id, ?2, ?3, ?4, ?5, ?6 FROM tenants WHERE name = ?7",
             &st, err) != 0)
        goto done;
    const char *name = spec->name ? spec->name : key_id;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, spec->key_hash, 32, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, (int)spec->roles);
    sqlite3_bind_int64(st, 5, spec->now_ns);
    sqlite3_bind_int64(st, 6, spec->expire_ns);
    sqlite3_bind_text(st, 7, spec->tenant_name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT) {
        if (strstr(sqlite3_errmsg(m->db), "keys.name"))
            ann_err_set(err, ANN_EEXISTS, "name: tenant '%.128s' has a key named '%s' already",
                        spec->tenant_name, name);
        else
            ann_err_set(err, ANN_EEXISTS, "key is already in use");
        goto done;
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "key insert");
        goto done;
    }
    if (sqlite3_changes(m->db) == 0) {
        ann_err_set(err, ANN_ENOTFOUND, "tenant '%.128s' not found", spec->tenant_name);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (prep(m, "SELECT " KEY_COLS " FROM keys k WHERE k.id = ?", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_fail(m, err, "key read back");
        goto done;
    }
    if (out)
        key_from_row(st, 0, out);
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_key_list(ann_meta *m, const char *tenant_name, int (*fn)(const ann_key *k, void *ud),
                      void *ud, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    ann_key *v = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT 1 FROM tenants WHERE name = ?", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant_name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
        ann_err_set(err, ANN_ENOTFOUND, "tenant '%.128s' not found", tenant_name);
        goto done;
    }
    if (r != SQLITE_ROW) {
        db_fail(m, err, "tenant lookup");
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (prep(m,
             "SELECT " KEY_COLS " FROM keys k JOIN tenants t ON t.id = k.tenant_id"
             " WHERE t.name = ? ORDER BY k.create_ns, k.id",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant_name, -1, SQLITE_STATIC);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap)
            v = ann_xrealloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
        key_from_row(st, 0, &v[n++]);
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "key list");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; rc == 0 && i < n; i++) /* outside the lock: fn may take its time */
        if (fn(&v[i], ud) != 0)
            break;
    free(v);
    return rc;
}

int ann_meta_key_revoke(ann_meta *m, const char *key_id, int64_t now_ns, ann_key *out, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "begin");
        pthread_mutex_unlock(&m->mu);
        return -1;
    }
    if (prep(m, "UPDATE keys SET revoke_ns = ?2 WHERE id = ?1 AND revoke_ns = 0", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ns > 0 ? now_ns : 1);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(m, err, "key revoke");
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_exec(m->db,
                     "INSERT INTO meta(k, v) VALUES('keys_epoch', 1) ON CONFLICT(k) DO UPDATE"
                     " SET v = v + 1",
                     NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "keys epoch");
        goto done;
    }
    if (prep(m, "SELECT " KEY_COLS " FROM keys k WHERE k.id = ?", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
        ann_err_set(err, ANN_ENOTFOUND, "key %.64s not found", key_id);
        goto done;
    }
    if (r != SQLITE_ROW) {
        db_fail(m, err, "key read back");
        goto done;
    }
    if (out)
        key_from_row(st, 0, out);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "commit");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    if (rc != 0)
        sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_key_touch(ann_meta *m, const char *key_id, int64_t now_ns, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "UPDATE keys SET last_used_ns = ?2 WHERE id = ?1 AND last_used_ns < ?2", &st,
             err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ns);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(m, err, "key last use");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_keys_epoch(ann_meta *m, int64_t *out, ann_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->rmu);
    int r = sqlite3_step(m->epoch_st);
    if (r == SQLITE_ROW)
        *out = sqlite3_column_int64(m->epoch_st, 0);
    else if (r == SQLITE_DONE)
        *out = 0;
    else
        rc = ann_err_set(err, ANN_EUNAVAIL, "metadata keys epoch: %s", sqlite3_errmsg(m->rdb));
    sqlite3_reset(m->epoch_st);
    pthread_mutex_unlock(&m->rmu);
    return rc;
}

int ann_meta_tenant_exists(ann_meta *m, const char *id, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT 1 FROM tenants WHERE id = ?", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        rc = 1;
    else if (r == SQLITE_DONE)
        rc = 0;
    else
        db_fail(m, err, "tenant lookup");
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_insert(ann_meta *m, const char *tenant, const char *log, const uint8_t *labels,
                        size_t labels_len, int64_t create_ns, int32_t retention_days, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "begin");
        pthread_mutex_unlock(&m->mu);
        return -1;
    }
    if (prep(m,
             "INSERT INTO logs(tenant_id, log_id, create_ns, labels, entry_count, count_dirty,"
             " retention_days, last_write_ns) VALUES(?1, ?2, ?3, ?4, 0, 0, ?5, ?3)",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, create_ns);
    if (labels_len)
        sqlite3_bind_blob(st, 4, labels, (int)labels_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, retention_days);
    int r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT) {
        ann_err_set(err, ANN_EEXISTS, "log %.64s already exists", log);
        goto done;
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "log insert");
        goto done;
    }
    if (labels_insert(m, tenant, log, labels, labels_len, create_ns, err) != 0)
        goto done;
    if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "commit");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    if (rc != 0)
        sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_lookup(ann_meta *m, const char *tenant, const char *log, int *state,
                        int64_t *create_ns, uint8_t **labels, size_t *labels_len, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT state, create_ns, labels FROM logs WHERE tenant_id = ? AND log_id = ?", &st,
             err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
        rc = 0;
        goto done;
    }
    if (r != SQLITE_ROW) {
        db_fail(m, err, "log lookup");
        goto done;
    }
    *state = sqlite3_column_int(st, 0);
    *create_ns = sqlite3_column_int64(st, 1);
    if (labels) {
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        *labels = NULL;
        *labels_len = 0;
        if (len) {
            *labels = ann_xmalloc(len);
            memcpy(*labels, sqlite3_column_blob(st, 2), len);
            *labels_len = len;
        }
    }
    rc = 1;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int exec_log(ann_meta *m, const char *sql, const char *tenant, const char *log,
                    const char *what, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (prep(m, sql, &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(m, err, what);
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

/* One row of log_events (under m->mu, inside the caller's transaction). */
static int event_insert(ann_meta *m, const char *tenant, const char *log, int64_t now_ns,
                        const char *kind, const char *actor, const char *reason, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    if (prep(m,
             "INSERT INTO log_events(tenant_id, log_id, time_ns, kind, actor, reason)"
             " VALUES(?, ?, ?, ?, ?, ?)",
             &st, err) != 0)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ns);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, reason ? reason : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(m, err, "log event");
    sqlite3_finalize(st);
    return rc;
}

int ann_meta_log_set_deleting(ann_meta *m, const char *tenant, const char *log,
                              const ann_meta_event *audit, ann_err *err)
{
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "begin");
        goto done;
    }
    if (exec_log(m,
                 "UPDATE logs SET state = 1 WHERE tenant_id = ? AND log_id = ? AND legal_hold = 0",
                 tenant, log, "log delete", err) != 0)
        goto rollback;
    if (sqlite3_changes(m->db) == 0) { /* the caller saw it live: it is held */
        ann_err_set(err, ANN_EPRECOND,
                    "log_id: log %.64s is on legal hold; it cannot be deleted until released", log);
        goto rollback;
    }
    if (audit && event_insert(m, tenant, log, audit->time_ns, audit->kind, audit->actor,
                              audit->reason, err) != 0)
        goto rollback;
    if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "commit");
        goto rollback;
    }
    rc = 0;
    goto done;
rollback:
    sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
done:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_set_hold(ann_meta *m, const char *tenant, const char *log, bool hold,
                          const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    int rc = -1;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "begin");
        goto done;
    }
    if (prep(m,
             "UPDATE logs SET legal_hold = ?3 WHERE tenant_id = ?1 AND log_id = ?2 AND state = 0",
             &st, err) != 0)
        goto rollback;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, hold ? 1 : 0);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(m, err, "log hold");
        goto rollback;
    }
    if (sqlite3_changes(m->db) == 0) {
        ann_err_set(err, ANN_ENOTFOUND, "log %.64s not found", log);
        goto rollback;
    }
    if (event_insert(m, tenant, log, now_ns, hold ? "hold" : "release", actor, reason, err) != 0)
        goto rollback;
    if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "commit");
        goto rollback;
    }
    rc = 0;
    goto done;
rollback:
    sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_lifecycle(ann_meta *m, const char *tenant, const char *log, ann_log_meta *out,
                           ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT legal_hold, retention_days FROM logs WHERE tenant_id = ? AND log_id = ?",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        out->legal_hold = sqlite3_column_int(st, 0) != 0;
        out->retention_days = sqlite3_column_int(st, 1);
    } else if (r != SQLITE_DONE) {
        db_fail(m, err, "log lifecycle");
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (prep(m,
             "SELECT kind, actor, reason, time_ns FROM log_events WHERE tenant_id = ? AND"
             " log_id = ? AND kind IN ('hold', 'release') ORDER BY id DESC LIMIT 1",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        ann_hold_change *c = &out->last_hold_change;
        out->has_hold_change = true;
        c->hold = strcmp((const char *)sqlite3_column_text(st, 0), "hold") == 0;
        snprintf(c->actor, sizeof c->actor, "%s", (const char *)sqlite3_column_text(st, 1));
        const char *reason = (const char *)sqlite3_column_text(st, 2);
        c->reason = reason && *reason ? strdup(reason) : NULL;
        c->time_ns = sqlite3_column_int64(st, 3);
    } else if (r != SQLITE_DONE) {
        db_fail(m, err, "log lifecycle");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_tenant_set_retention(ann_meta *m, const char *name, int32_t days, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "UPDATE tenants SET retention_days = ? WHERE name = ?", &st, err) != 0)
        goto done;
    sqlite3_bind_int(st, 1, days);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(m, err, "tenant retention");
        goto done;
    }
    if (sqlite3_changes(m->db) == 0) {
        ann_err_set(err, ANN_ENOTFOUND, "tenant %.128s not found", name);
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_retention_candidates(ann_meta *m, int64_t now_ns, int64_t day_ns, size_t max,
                                  ann_meta_candidate **out, size_t *n, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    *out = NULL;
    *n = 0;
    if (max == 0)
        return 0;
    ann_meta_candidate *v = ann_xcalloc(max, sizeof *v);
    pthread_mutex_lock(&m->mu);
    /* The period in ns, clamped so that days * day_ns cannot overflow: anything past
     * 10^6 days is forever in practice. */
    if (prep(m,
             "SELECT l.tenant_id, l.log_id, l.last_write_ns, CASE WHEN l.retention_days > 0"
             " THEN l.retention_days ELSE t.retention_days END AS days, l.retention_days > 0"
             " FROM logs l"
             " JOIN tenants t ON t.id = l.tenant_id WHERE l.state = 0 AND l.legal_hold = 0"
             " AND days > 0 AND l.last_write_ns < ?1 - min(days, 1000000) * ?2"
             " ORDER BY l.last_write_ns LIMIT ?3",
             &st, err) != 0)
        goto done;
    sqlite3_bind_int64(st, 1, now_ns);
    sqlite3_bind_int64(st, 2, day_ns);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        ann_meta_candidate *c = &v[*n];
        snprintf(c->tenant, sizeof c->tenant, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(c->log, sizeof c->log, "%s", (const char *)sqlite3_column_text(st, 1));
        c->last_write_ns = sqlite3_column_int64(st, 2);
        c->days = sqlite3_column_int(st, 3);
        c->own_period = sqlite3_column_int(st, 4) != 0;
        (*n)++;
    }
    if (r != SQLITE_ROW && r != SQLITE_DONE) {
        db_fail(m, err, "retention candidates");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    if (rc == 0)
        *out = v;
    else
        free(v), *n = 0;
    return rc;
}

int ann_meta_log_set_last_write(ann_meta *m, const char *tenant, const char *log, int64_t ns,
                                ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m,
             "UPDATE logs SET last_write_ns = max(last_write_ns, ?3) WHERE tenant_id = ?1 AND"
             " log_id = ?2",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ns);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(m, err, "log last write");
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_events(ann_meta *m, const char *tenant_name, const char *log,
                        int (*fn)(const ann_meta_event *ev, void *ud), void *ud, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT id FROM tenants WHERE name = ?", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant_name, -1, SQLITE_STATIC);
    int found = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (found == SQLITE_DONE) {
        ann_err_set(err, ANN_ENOTFOUND, "tenant %.128s not found", tenant_name);
        goto done;
    }
    if (found != SQLITE_ROW) {
        db_fail(m, err, "tenant lookup");
        goto done;
    }
    if (prep(m,
             "SELECT log_id, time_ns, kind, actor, reason FROM log_events WHERE tenant_id ="
             " (SELECT id FROM tenants WHERE name = ?1) AND (?2 IS NULL OR log_id = ?2)"
             " ORDER BY id",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant_name, -1, SQLITE_STATIC);
    if (log)
        sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        ann_meta_event ev = {.log_id = (const char *)sqlite3_column_text(st, 0),
                             .time_ns = sqlite3_column_int64(st, 1),
                             .kind = (const char *)sqlite3_column_text(st, 2),
                             .actor = (const char *)sqlite3_column_text(st, 3),
                             .reason = (const char *)sqlite3_column_text(st, 4)};
        if (fn(&ev, ud))
            break;
    }
    if (r != SQLITE_ROW && r != SQLITE_DONE) {
        db_fail(m, err, "log events");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_remove(ann_meta *m, const char *tenant, const char *log, ann_err *err)
{
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "begin");
        goto done;
    }
    if (exec_log(m, "DELETE FROM logs WHERE tenant_id = ? AND log_id = ?", tenant, log,
                 "log remove", err) != 0 ||
        exec_log(m, "DELETE FROM log_labels WHERE tenant_id = ?1 AND log_id = ?2", tenant, log,
                 "log remove", err) != 0 ||
        exec_log(m, "UPDATE revocations SET applied = 1 WHERE tenant_id = ? AND log_id = ?", tenant,
                 log, "log remove", err) != 0) {
        sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
        goto done;
    }
    if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(m, err, "commit");
        sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
        goto done;
    }
    rc = 0;
done:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void ann_meta_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int ann_meta_logs_where(ann_meta *m, bool pending_revocations, int state, char ***out, size_t *n,
                        ann_err *err)
{
    sqlite3_stmt *st = NULL;
    char **v = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    const char *sql = pending_revocations
                          ? "SELECT DISTINCT tenant_id, log_id FROM revocations WHERE applied = 0"
                          : "SELECT tenant_id, log_id FROM logs WHERE state = ?";
    if (prep(m, sql, &st, err) != 0)
        goto done;
    if (!pending_revocations)
        sqlite3_bind_int(st, 1, state);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            v = ann_xrealloc(v, ncap * sizeof *v);
            cap = ncap;
        }
        const char *t = (const char *)sqlite3_column_text(st, 0);
        const char *l = (const char *)sqlite3_column_text(st, 1);
        size_t sz = strlen(t) + strlen(l) + 2;
        v[len] = ann_xmalloc(sz);
        snprintf(v[len++], sz, "%s/%s", t, l);
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "log scan");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    if (rc != 0) {
        ann_meta_strv_free(v, len);
        v = NULL;
        len = 0;
    }
    *out = v;
    *n = len;
    return rc;
}

int ann_meta_revoke_insert(ann_meta *m, const char *tenant, const char *log, const uint64_t *ids,
                           size_t n, const char *actor, const char *reason, int64_t now_ns,
                           int64_t *rowid, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    uint8_t *blob = ann_xmalloc(n * 8 + 1);
    int rc = -1;
    for (size_t i = 0; i < n; i++)
        ann_le64_put(blob + 8 * i, ids[i]);
    pthread_mutex_lock(&m->mu);
    if (prep(m,
             "INSERT INTO revocations(tenant_id, log_id, time_ns, actor, reason, ids)"
             " VALUES(?, ?, ?, ?, ?, ?)",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ns);
    sqlite3_bind_text(st, 4, actor ? actor : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, blob, (int)(n * 8), SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(m, err, "revocation insert");
        goto done;
    }
    *rowid = sqlite3_last_insert_rowid(m->db);
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    free(blob);
    return rc;
}

int ann_meta_revoke_applied(ann_meta *m, int64_t rowid, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "UPDATE revocations SET applied = 1 WHERE id = ?", &st, err) != 0)
        goto done;
    sqlite3_bind_int64(st, 1, rowid);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(m, err, "revocation update");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_revoke_applied_log(ann_meta *m, const char *tenant, const char *log, ann_err *err)
{
    pthread_mutex_lock(&m->mu);
    int rc = exec_log(m,
                      "UPDATE revocations SET applied = 1 WHERE tenant_id = ? AND log_id = ?"
                      " AND applied = 0",
                      tenant, log, "revocation update", err);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int ann_meta_revoke_pending(ann_meta *m, const char *tenant, const char *log, uint64_t **ids,
                            size_t *n, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT ids FROM revocations WHERE tenant_id = ? AND log_id = ? AND applied = 0",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *b = sqlite3_column_blob(st, 0);
        size_t k = (size_t)sqlite3_column_bytes(st, 0) / 8;
        if (len + k > cap) {
            size_t ncap = (len + k) * 2;
            v = ann_xrealloc(v, ncap * sizeof *v);
            cap = ncap;
        }
        for (size_t i = 0; i < k; i++)
            v[len++] = ann_le64_get(b + 8 * i);
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "revocation scan");
        goto done;
    }
    if (len)
        qsort(v, len, sizeof *v, u64_cmp);
    size_t w = 0;
    for (size_t i = 0; i < len; i++)
        if (w == 0 || v[w - 1] != v[i])
            v[w++] = v[i];
    len = w;
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    if (rc != 0) {
        free(v);
        v = NULL;
        len = 0;
    }
    *ids = v;
    *n = len;
    return rc;
}

int ann_meta_revocations(ann_meta *m, const char *tenant, const char *log,
                         void (*fn)(const ann_meta_revocation *r, void *ud), void *ud, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m,
             "SELECT time_ns, actor, reason, length(ids) / 8, applied FROM revocations"
             " WHERE tenant_id = ? AND log_id = ? ORDER BY id",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        ann_meta_revocation rv;
        rv.time_ns = sqlite3_column_int64(st, 0);
        snprintf(rv.actor, sizeof rv.actor, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(rv.reason, sizeof rv.reason, "%s", (const char *)sqlite3_column_text(st, 2));
        rv.n_ids = (size_t)sqlite3_column_int64(st, 3);
        rv.applied = sqlite3_column_int(st, 4) != 0;
        fn(&rv, ud);
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "revocation scan");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_count_set(ann_meta *m, const char *tenant, const char *log, uint64_t count,
                           bool dirty, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m,
             "UPDATE logs SET entry_count = ?3, count_dirty = ?4 WHERE tenant_id = ?1 AND"
             " log_id = ?2",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)count);
    sqlite3_bind_int(st, 4, dirty ? 1 : 0);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(m, err, "count update");
    else
        rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_count_get(ann_meta *m, const char *tenant, const char *log, uint64_t *count,
                           bool *dirty, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT entry_count, count_dirty FROM logs WHERE tenant_id = ?1 AND log_id = ?2",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *count = (uint64_t)sqlite3_column_int64(st, 0);
        *dirty = sqlite3_column_int(st, 1) != 0;
        rc = 1;
    } else if (r == SQLITE_DONE) {
        rc = 0;
    } else {
        db_fail(m, err, "count lookup");
    }
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_logs_page(ann_meta *m, const char *tenant, const ann_logs_query *q,
                       int (*fn)(const ann_meta_log_row *row, void *ud), void *ud, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    /* (create desc, id asc) strictly after the cursor: create <= cursor, and at the
     * cursor's create time only ids after it. */
    int64_t hi = q->end_ns == INT64_MIN ? INT64_MIN : q->end_ns - 1;
    if (q->has_cursor && q->cursor_create_ns < hi)
        hi = q->cursor_create_ns;
    if (hi < q->start_ns)
        return 0;
    const ann_label_pair *drive = q->n_labels ? &q->labels[0] : NULL;
    pthread_mutex_lock(&m->mu);
    if (prep(m,
             drive ? "SELECT l.log_id, l.create_ns, l.labels, l.entry_count, l.count_dirty,"
                     " l.legal_hold, l.retention_days FROM log_labels ll JOIN logs l ON "
                     "l.tenant_id = ll.tenant_id AND"
                     " l.log_id = ll.log_id WHERE ll.tenant_id = ?1 AND ll.key = ?6 AND"
                     " ll.value = ?7 AND ll.create_ns >= ?2 AND ll.create_ns <= ?3 AND"
                     " NOT (ll.create_ns = ?4 AND ll.log_id <= ?5) AND l.state = 0"
                     " ORDER BY ll.create_ns DESC, ll.log_id"
                   : "SELECT log_id, create_ns, labels, entry_count, count_dirty, legal_hold,"
                     " retention_days FROM logs"
                     " WHERE tenant_id = ?1 AND create_ns >= ?2 AND create_ns <= ?3 AND"
                     " NOT (create_ns = ?4 AND log_id <= ?5) AND state = 0"
                     " ORDER BY create_ns DESC, log_id",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, q->start_ns);
    sqlite3_bind_int64(st, 3, hi);
    sqlite3_bind_int64(st, 4, q->has_cursor ? q->cursor_create_ns : INT64_MIN);
    sqlite3_bind_text(st, 5, q->has_cursor ? q->cursor_id : "", -1, SQLITE_STATIC);
    if (drive) {
        sqlite3_bind_blob(st, 6, drive->key_len ? (const void *)drive->key : "",
                          (int)drive->key_len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 7, drive->value_len ? (const void *)drive->value : "",
                          (int)drive->value_len, SQLITE_STATIC);
    }
    size_t taken = 0, limit = q->limit ? q->limit : SIZE_MAX;
    int r;
    while (taken < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
        ann_meta_log_row row = {
            .log_id = (const char *)sqlite3_column_text(st, 0),
            .create_ns = sqlite3_column_int64(st, 1),
            .labels = sqlite3_column_blob(st, 2),
            .labels_len = (size_t)sqlite3_column_bytes(st, 2),
            .entry_count = (uint64_t)sqlite3_column_int64(st, 3),
            .count_dirty = sqlite3_column_int(st, 4) != 0,
            .legal_hold = sqlite3_column_int(st, 5) != 0,
            .retention_days = sqlite3_column_int(st, 6),
        };
        if (q->n_labels > 1 &&
            !ann_labels_match(row.labels, row.labels_len, 2, q->labels + 1, q->n_labels - 1))
            continue;
        taken++;
        if (fn(&row, ud) != 0)
            break;
    }
    if (taken < limit && r != SQLITE_DONE && r != SQLITE_ROW) {
        db_fail(m, err, "log listing");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_revocation_records(ann_meta *m, const char *tenant, const char *log,
                                int (*fn)(const uint8_t *ids_le, size_t n, const char *actor,
                                          const char *reason, int64_t time_ns, void *ud),
                                void *ud, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m,
             "SELECT ids, actor, reason, time_ns FROM revocations WHERE tenant_id = ?1 AND"
             " log_id = ?2 ORDER BY id",
             &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (fn(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0) / 8,
               (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
               sqlite3_column_int64(st, 3), ud) != 0) {
            r = SQLITE_DONE;
            break;
        }
    }
    if (r != SQLITE_DONE) {
        db_fail(m, err, "revocation scan");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_seal(ann_meta *m, const char *tenant, const char *log, ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "UPDATE logs SET sealed = 1 WHERE tenant_id = ?1 AND log_id = ?2", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(m, err, "seal");
    else
        rc = 0;
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int ann_meta_log_sealed(ann_meta *m, const char *tenant, const char *log, bool *sealed,
                        ann_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    *sealed = false;
    pthread_mutex_lock(&m->mu);
    if (prep(m, "SELECT sealed FROM logs WHERE tenant_id = ?1 AND log_id = ?2", &st, err) != 0)
        goto done;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, log, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *sealed = sqlite3_column_int(st, 0) != 0;
        rc = 1;
    } else if (r == SQLITE_DONE) {
        rc = 0;
    } else {
        db_fail(m, err, "sealed lookup");
    }
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}
