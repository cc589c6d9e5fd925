#include "store/distributed/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/random.h"
#include "domain/event.h"
#include "domain/rules.h"

enum {
    S_SECRET_GET,
    S_SECRET_PUT,
    S_NAME_CLAIM,
    S_TENANT_PUT,
    S_KEY_PUT,
    S_KEY_GET,
    S_LOG_PUT,
    S_LOG_GET,
    S_LOG_DELETED,
    S_KEY_NAME_CLAIM,
    S_KEY_ID_PUT,
    S_KEY_ID_GET,
    S_KEY_NAMES,
    S_KEY_REVOKE,
    S_KEY_TOUCH,
    S_TENANT_BY_NAME,
    S_LOG_HOLD,
    S_EVENT_PUT,
    S_EVENTS,
    S_LOG_EVENTS,
    S_TENANT_RETENTION,
    S_TENANT_PERIODS,
    S_LOG_SCAN,
    S_LOG_LAST_WRITE,
    S_LOG_FLAGS,
    S_LOG_DELETE_DONE,
    S_COUNT
};

#define KEY_COLUMNS                                                                                \
    "key_id text, key_name text, roles int, create_time_ns bigint, expire_time_ns bigint, "        \
    "revoke_time_ns bigint, last_used_ns bigint"

/* Legal holds (docs/distributed.md, "Retention and legal hold"): the hold and its last
 * change, on the log's row. */
#define HOLD_COLUMNS                                                                               \
    "legal_hold boolean, hold_state boolean, hold_actor text, hold_reason text, "                  \
    "hold_time_ns bigint"

/* Retention: the log's own period (0 or null: the tenant's) and a lower bound of its last
 * write that the retention pass raises as it checks logs (null: its create time). */
#define RETENTION_COLUMNS "retention_days int, last_write_ns bigint"

/* A deletion: when it was asked for and, for one the server made (retention), by whom and
 * why, written by the same conditional update that marks the log deleted; delete_done once
 * the read model shows it deleted and its audit row is written. A deletion interrupted
 * between the mark and its end is finished by a later retention pass (distributed.c). */
#define DELETE_COLUMNS                                                                             \
    "delete_time_ns bigint, delete_actor text, delete_reason text, delete_done boolean"

static const char *const schema_text[] = {
    "CREATE TABLE IF NOT EXISTS %s.deployment (name text PRIMARY KEY, secret blob)",
    "CREATE TABLE IF NOT EXISTS %s.tenants (tenant_id text PRIMARY KEY, name text, "
    "create_time_ns bigint, retention_days int)",
    "CREATE TABLE IF NOT EXISTS %s.tenant_names (name text PRIMARY KEY, tenant_id text)",
    /* One row per key, read by every authentication (name: the tenant's). Rows from
     * before keys had roles lack the key_* columns: an admin key named "admin". */
    "CREATE TABLE IF NOT EXISTS %s.tenant_keys (key_hash blob PRIMARY KEY, tenant_id text, "
    "name text, " KEY_COLUMNS ")",
    /* A tenant's keys by name (claimed with a lightweight transaction: names are unique in
     * a tenant) and by id (`annalsd key revoke KEY_ID`). */
    "CREATE TABLE IF NOT EXISTS %s.tenant_key_names (tenant_id text, name text, key_id text, "
    "key_hash blob, PRIMARY KEY ((tenant_id), name))",
    "CREATE TABLE IF NOT EXISTS %s.keys_by_id (key_id text PRIMARY KEY, tenant_id text, "
    "key_hash blob)",
    "CREATE TABLE IF NOT EXISTS %s.logs (tenant_id text, log_id text, labels blob, "
    "create_time_ns bigint, deleted boolean, " HOLD_COLUMNS ", " RETENTION_COLUMNS
    ", " DELETE_COLUMNS ", "
    "PRIMARY KEY ((tenant_id), log_id))",
    /* The audit trail of holds and releases, kept after the log is gone. */
    "CREATE TABLE IF NOT EXISTS %s.log_events (tenant_id text, log_id text, time_ns bigint, "
    "event_id text, kind text, actor text, reason text, "
    "PRIMARY KEY ((tenant_id), log_id, time_ns, event_id))",
};

static const char *const stmt_text[S_COUNT] = {
    [S_SECRET_GET] = "SELECT secret FROM %s.deployment WHERE name = ?",
    [S_SECRET_PUT] = "INSERT INTO %s.deployment (name, secret) VALUES (?, ?) IF NOT EXISTS",
    [S_NAME_CLAIM] = "INSERT INTO %s.tenant_names (name, tenant_id) VALUES (?, ?) IF NOT EXISTS",
    [S_TENANT_PUT] = "INSERT INTO %s.tenants (tenant_id, name, create_time_ns) VALUES (?, ?, ?)",
    [S_KEY_PUT] = "INSERT INTO %s.tenant_keys (key_hash, tenant_id, name, key_id, key_name, "
                  "roles, create_time_ns, expire_time_ns, revoke_time_ns, last_used_ns) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
    [S_KEY_GET] = "SELECT tenant_id, name, key_id, key_name, roles, create_time_ns, "
                  "expire_time_ns, revoke_time_ns, last_used_ns FROM %s.tenant_keys "
                  "WHERE key_hash = ?",
    [S_LOG_PUT] = "INSERT INTO %s.logs (tenant_id, log_id, labels, create_time_ns, deleted, "
                  "retention_days) VALUES (?, ?, ?, ?, false, ?)",
    [S_LOG_GET] = "SELECT labels, create_time_ns, deleted, legal_hold, hold_state, hold_actor, "
                  "hold_reason, hold_time_ns, retention_days FROM %s.logs WHERE tenant_id = ? AND "
                  "log_id = ?",
    /* Conditional, so a hold and a deletion racing each other never both win. */
    [S_LOG_DELETED] = "UPDATE %s.logs SET deleted = true, delete_time_ns = ?, delete_actor = ?, "
                      "delete_reason = ? WHERE tenant_id = ? AND log_id = ? "
                      "IF deleted = false AND legal_hold != true",
    [S_LOG_DELETE_DONE] = "UPDATE %s.logs SET delete_done = true WHERE tenant_id = ? AND "
                          "log_id = ?",
    [S_KEY_NAME_CLAIM] = "INSERT INTO %s.tenant_key_names (tenant_id, name, key_id, key_hash) "
                         "VALUES (?, ?, ?, ?) IF NOT EXISTS",
    [S_KEY_ID_PUT] = "INSERT INTO %s.keys_by_id (key_id, tenant_id, key_hash) VALUES (?, ?, ?)",
    [S_KEY_ID_GET] = "SELECT key_hash FROM %s.keys_by_id WHERE key_id = ?",
    [S_KEY_NAMES] = "SELECT key_hash FROM %s.tenant_key_names WHERE tenant_id = ?",
    [S_KEY_REVOKE] = "UPDATE %s.tenant_keys SET revoke_time_ns = ? WHERE key_hash = ?",
    [S_KEY_TOUCH] = "UPDATE %s.tenant_keys SET last_used_ns = ? WHERE key_hash = ?",
    [S_TENANT_BY_NAME] = "SELECT tenant_id FROM %s.tenant_names WHERE name = ?",
    [S_LOG_HOLD] = "UPDATE %s.logs SET legal_hold = ?, hold_state = ?, hold_actor = ?, "
                   "hold_reason = ?, hold_time_ns = ? WHERE tenant_id = ? AND log_id = ? "
                   "IF deleted = false",
    [S_EVENTS] = "SELECT log_id, time_ns, kind, actor, reason FROM %s.log_events "
                 "WHERE tenant_id = ? LIMIT 10000",
    [S_LOG_EVENTS] = "SELECT log_id, time_ns, kind, actor, reason FROM %s.log_events "
                     "WHERE tenant_id = ? AND log_id = ? LIMIT 10000",
    [S_TENANT_RETENTION] = "UPDATE %s.tenants SET retention_days = ? WHERE tenant_id = ?",
    [S_TENANT_PERIODS] = "SELECT tenant_id, retention_days FROM %s.tenants",
    [S_LOG_SCAN] = "SELECT tenant_id, log_id, create_time_ns, deleted, legal_hold, "
                   "retention_days, last_write_ns, delete_done, delete_time_ns, delete_actor, "
                   "delete_reason FROM %s.logs",
    [S_LOG_LAST_WRITE] = "UPDATE %s.logs SET last_write_ns = ? WHERE tenant_id = ? AND log_id = ?",
    /* ListLogs' page (from the read model) completed with holds and periods: one read of
     * the tenant's partition for the whole page. */
    [S_LOG_FLAGS] = "SELECT log_id, legal_hold, retention_days, deleted FROM %s.logs "
                    "WHERE tenant_id = ? AND log_id IN ?",
    [S_EVENT_PUT] = "INSERT INTO %s.log_events (tenant_id, log_id, time_ns, event_id, kind, "
                    "actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
};

struct ann_catalog {
    ann_cql_conn *c;
    ann_cql_prepared *ps[S_COUNT];
    char ks[64];
};

static int run(ann_catalog *c, const char *cql, ann_err *err)
{
    ann_cql_result r;
    int rc = ann_cql_query(c->c, cql, NULL, &r, err);
    ann_cql_result_release(&r);
    return rc;
}

static int exec(ann_catalog *c, int s, const ann_cql_value *v, size_t n, bool lwt,
                ann_cql_result *out, ann_err *err)
{
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.consistency = ANN_CQL_LOCAL_QUORUM;
    p.values = v;
    p.nvalues = n;
    p.idempotent = !lwt;
    if (lwt)
        p.serial_consistency = ANN_CQL_LOCAL_SERIAL;
    return ann_cql_execute(c->c, c->ps[s], &p, out, err);
}

static int exec_simple(ann_catalog *c, int s, const ann_cql_value *v, size_t n, ann_err *err)
{
    ann_cql_result r;
    int rc = exec(c, s, v, n, false, &r, err);
    ann_cql_result_release(&r);
    return rc;
}

/* A keyspace made by an earlier release: `table` gains `columns` unless it has `probe`
 * (once; a concurrent opener may win the race, which the second look forgives). */
int ann_catalog_open(const ann_catalog_config *cfg, ann_catalog **out, ann_err *err)
{
    *out = NULL;
    const char *ks = cfg->keyspace ? cfg->keyspace : "annals";
    if (!ann_namespace_valid(ks))
        return ann_err_set(err, ANN_EINVAL, "namespace: [a-z][a-z0-9_]*, at most %d",
                           ANN_NAMESPACE_MAX);
    if (cfg->replication && strchr(cfg->replication, ';'))
        return ann_err_set(err, ANN_EINVAL, "replication: bad map");
    ann_catalog *c = calloc(1, sizeof *c);
    if (!c)
        return ann_err_set(err, ANN_EINTERNAL, "catalog: out of memory");
    snprintf(c->ks, sizeof c->ks, "%s", ks);
    ann_cql_config cc = *cfg->cql;
    cc.keyspace = NULL;
    char q[1024];
    if (ann_cql_conn_new(&cc, &c->c, err) < 0)
        goto fail;
    snprintf(q, sizeof q, "CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", c->ks,
             cfg->replication ? cfg->replication
                              : "{'class': 'SimpleStrategy', 'replication_factor': 1}");
    if (run(c, q, err) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof schema_text / sizeof schema_text[0]; i++) {
        snprintf(q, sizeof q, schema_text[i], c->ks);
        if (run(c, q, err) < 0)
            goto fail;
    }
    /* Keyspaces from before keys had roles, and from before legal holds. */
    if (ann_cql_add_columns(c->c, c->ks, "tenant_keys", "key_id", KEY_COLUMNS, err) < 0 ||
        ann_cql_add_columns(c->c, c->ks, "logs", "legal_hold", HOLD_COLUMNS, err) < 0 ||
        ann_cql_add_columns(c->c, c->ks, "logs", "retention_days", RETENTION_COLUMNS, err) < 0 ||
        ann_cql_add_columns(c->c, c->ks, "logs", "delete_done", DELETE_COLUMNS, err) < 0 ||
        ann_cql_add_columns(c->c, c->ks, "tenants", "retention_days", "retention_days int", err) <
            0)
        goto fail;
    for (int i = 0; i < S_COUNT; i++) {
        snprintf(q, sizeof q, stmt_text[i], c->ks);
        if (ann_cql_prepare(c->c, q, &c->ps[i], err) < 0)
            goto fail;
    }
    *out = c;
    return 0;
fail:
    ann_catalog_close(c);
    return -1;
}

void ann_catalog_close(ann_catalog *c)
{
    if (!c)
        return;
    if (c->c)
        ann_cql_conn_free(c->c);
    free(c);
}

/* The deployment's 32 random bytes called `name`, made once by whichever caller asks first. */
static int deployment_bytes(ann_catalog *c, const char *name, uint8_t out[32], ann_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        ann_cql_result r;
        ann_cql_value k[] = {ann_cql_vtext(name)};
        if (exec(c, S_SECRET_GET, k, 1, false, &r, err) < 0) {
            ann_cql_result_release(&r);
            return -1;
        }
        const uint8_t *p = NULL;
        size_t n = 0;
        int have = r.nrows > 0 && ann_cql_get_blob(&r, 0, 0, &p, &n, err) == 0 && n == 32;
        if (have)
            memcpy(out, p, 32);
        ann_cql_result_release(&r);
        if (have)
            return 0;
        uint8_t fresh[32];
        ann_random_bytes(fresh, sizeof fresh);
        ann_cql_value v[] = {ann_cql_vtext(name), ann_cql_vblob(fresh, sizeof fresh)};
        int rc = exec(c, S_SECRET_PUT, v, 2, true, &r, err);
        ann_cql_result_release(&r); /* applied or not, read back the one that won */
        memset(fresh, 0, sizeof fresh);
        if (rc < 0)
            return -1;
    }
    return ann_err_set(err, ANN_EINTERNAL, "catalog: deployment %s unreadable", name);
}

int ann_catalog_secret(ann_catalog *c, uint8_t out[32], ann_err *err)
{
    return deployment_bytes(c, "secret", out, err);
}

int ann_catalog_signing_seed(ann_catalog *c, uint8_t out[32], ann_err *err)
{
    return deployment_bytes(c, "signing", out, err);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Claims the key's name in its tenant, then writes its rows (by id, then the one
 * authentication reads, so a key works only once it can be listed and revoked). */
static int key_insert(ann_catalog *c, const char *tenant_id, const char *tenant_name,
                      const ann_key *k, const uint8_t key_hash[32], ann_err *err)
{
    ann_cql_value claim[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(k->name), ann_cql_vtext(k->id),
                             ann_cql_vblob(key_hash, 32)};
    ann_cql_result r;
    bool applied = false;
    int rc = exec(c, S_KEY_NAME_CLAIM, claim, 4, true, &r, err);
    if (rc == 0)
        rc = ann_cql_applied(&r, &applied, err);
    ann_cql_result_release(&r);
    if (rc < 0)
        return -1;
    if (!applied)
        return ann_err_set(err, ANN_EEXISTS, "name: tenant '%.128s' has a key named '%s' already",
                           tenant_name, k->name);
    ann_cql_value iv[] = {ann_cql_vtext(k->id), ann_cql_vtext(tenant_id),
                          ann_cql_vblob(key_hash, 32)};
    ann_cql_value kv[] = {ann_cql_vblob(key_hash, 32),   ann_cql_vtext(tenant_id),
                          ann_cql_vtext(tenant_name),    ann_cql_vtext(k->id),
                          ann_cql_vtext(k->name),        ann_cql_vint((int32_t)k->roles),
                          ann_cql_vbigint(k->create_ns), ann_cql_vbigint(k->expire_ns)};
    if (exec_simple(c, S_KEY_ID_PUT, iv, 3, err) < 0 || exec_simple(c, S_KEY_PUT, kv, 8, err) < 0)
        return -1;
    return 0;
}

int ann_catalog_tenant_create(ann_catalog *c, const char *name, const uint8_t key_hash[32],
                              ann_tenant *out, ann_err *err)
{
    ann_tenant t;
    memset(&t, 0, sizeof t);
    ann_uuid_v4_new(t.id);
    snprintf(t.name, sizeof t.name, "%s", name);
    ann_cql_value claim[] = {ann_cql_vtext(t.name), ann_cql_vtext(t.id)};
    ann_cql_result r;
    bool applied = false;
    int rc = exec(c, S_NAME_CLAIM, claim, 2, true, &r, err);
    if (rc == 0)
        rc = ann_cql_applied(&r, &applied, err);
    ann_cql_result_release(&r);
    if (rc < 0)
        return -1;
    if (!applied)
        return ann_err_set(err, ANN_EEXISTS, "tenant name '%.128s' is already taken", name);
    int64_t now = now_ns();
    ann_cql_value tv[] = {ann_cql_vtext(t.id), ann_cql_vtext(t.name), ann_cql_vbigint(now)};
    if (exec_simple(c, S_TENANT_PUT, tv, 3, err) < 0)
        return -1;
    ann_key k = {.roles = ANN_ROLE_ADMIN, .create_ns = now};
    ann_uuid_v4_new(k.id);
    snprintf(k.name, sizeof k.name, "%s", ANN_ADMIN_KEY_NAME);
    if (key_insert(c, t.id, t.name, &k, key_hash, err) < 0)
        return -1;
    memcpy(t.key_id, k.id, sizeof t.key_id);
    memcpy(t.key_name, k.name, sizeof t.key_name);
    t.roles = k.roles;
    if (out)
        *out = t;
    return 0;
}

/* The key with this hash: 1 found (revoked or not), 0 not, -1 error. */
static int key_by_hash(ann_catalog *c, const uint8_t key_hash[32], ann_tenant *t, ann_key *k,
                       ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vblob(key_hash, 32)};
    ann_cql_result r;
    int rc = exec(c, S_KEY_GET, v, 1, false, &r, err);
    if (rc < 0 || r.nrows == 0) {
        ann_cql_result_release(&r);
        return rc < 0 ? -1 : 0;
    }
    const char *id = NULL, *name = NULL, *kid = NULL, *kname = NULL;
    size_t idn = 0, namen = 0, kidn = 0, knamen = 0;
    int32_t roles = ANN_ROLE_ADMIN; /* a row from before roles: the tenant's one key */
    memset(k, 0, sizeof *k);
    if (ann_cql_get_text(&r, 0, 0, &id, &idn, err) < 0 ||
        ann_cql_get_text(&r, 0, 1, &name, &namen, err) < 0 ||
        ann_cql_get_text(&r, 0, 2, &kid, &kidn, err) < 0 ||
        ann_cql_get_text(&r, 0, 3, &kname, &knamen, err) < 0 ||
        ann_cql_get_int(&r, 0, 4, &roles, err) < 0 ||
        ann_cql_get_bigint(&r, 0, 5, &k->create_ns, err) < 0 ||
        ann_cql_get_bigint(&r, 0, 6, &k->expire_ns, err) < 0 ||
        ann_cql_get_bigint(&r, 0, 7, &k->revoke_ns, err) < 0 ||
        ann_cql_get_bigint(&r, 0, 8, &k->last_used_ns, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    snprintf(k->id, sizeof k->id, "%.*s", (int)kidn, kid ? kid : "");
    snprintf(k->tenant_id, sizeof k->tenant_id, "%.*s", (int)idn, id ? id : "");
    snprintf(k->name, sizeof k->name, "%.*s", (int)knamen, kname ? kname : ANN_ADMIN_KEY_NAME);
    k->roles = (uint32_t)roles;
    memset(t, 0, sizeof *t);
    memcpy(t->id, k->tenant_id, sizeof t->id);
    snprintf(t->name, sizeof t->name, "%.*s", (int)namen, name ? name : "");
    memcpy(t->key_id, k->id, sizeof t->key_id);
    memcpy(t->key_name, k->name, sizeof t->key_name);
    t->roles = k->roles;
    t->expire_ns = k->expire_ns;
    memcpy(t->key_hash, key_hash, 32);
    ann_cql_result_release(&r);
    return 1;
}

int ann_catalog_tenant_by_key(ann_catalog *c, const uint8_t key_hash[32], ann_tenant *out,
                              int64_t *last_used_ns, ann_err *err)
{
    ann_tenant t;
    ann_key k;
    int r = key_by_hash(c, key_hash, &t, &k, err);
    if (r < 0)
        return -1;
    if (r == 0 || k.revoke_ns != 0)
        return ann_err_set(err, ANN_EUNAUTH, "unknown API key");
    if (out)
        *out = t;
    if (last_used_ns)
        *last_used_ns = k.last_used_ns;
    return 0;
}

int ann_catalog_key_touch(ann_catalog *c, const uint8_t key_hash[32], int64_t now, ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vbigint(now), ann_cql_vblob(key_hash, 32)};
    return exec_simple(c, S_KEY_TOUCH, v, 2, err);
}

static int tenant_by_name(ann_catalog *c, const char *name, char id[ANN_UUID_LEN + 1], ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(name)};
    ann_cql_result r;
    int rc = exec(c, S_TENANT_BY_NAME, v, 1, false, &r, err);
    const char *p = NULL;
    size_t n = 0;
    if (rc == 0 && r.nrows == 0)
        rc = ann_err_set(err, ANN_ENOTFOUND, "tenant '%.128s' not found", name);
    if (rc == 0 && ann_cql_get_text(&r, 0, 0, &p, &n, err) < 0)
        rc = -1;
    if (rc == 0)
        snprintf(id, ANN_UUID_LEN + 1, "%.*s", (int)n, p ? p : "");
    ann_cql_result_release(&r);
    return rc;
}

int ann_catalog_key_create(ann_catalog *c, const ann_key_spec *spec, ann_key *out, ann_err *err)
{
    ann_key k = {.roles = spec->roles, .create_ns = spec->now_ns, .expire_ns = spec->expire_ns};
    if (tenant_by_name(c, spec->tenant_name, k.tenant_id, err) < 0)
        return -1;
    ann_uuid_v4_new(k.id);
    snprintf(k.name, sizeof k.name, "%s", spec->name ? spec->name : k.id);
    if (key_insert(c, k.tenant_id, spec->tenant_name, &k, spec->key_hash, err) < 0)
        return -1;
    if (out)
        *out = k;
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    const ann_key *x = a, *y = b;
    if (x->create_ns != y->create_ns)
        return x->create_ns < y->create_ns ? -1 : 1;
    return strcmp(x->id, y->id);
}

int ann_catalog_key_list(ann_catalog *c, const char *tenant_name, ann_key_visit_fn visit, void *ud,
                         ann_err *err)
{
    char tid[ANN_UUID_LEN + 1];
    if (tenant_by_name(c, tenant_name, tid, err) < 0)
        return -1;
    ann_cql_value v[] = {ann_cql_vtext(tid)};
    ann_cql_result r;
    if (exec(c, S_KEY_NAMES, v, 1, false, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    ann_key *keys = calloc((size_t)r.nrows + 1, sizeof *keys);
    size_t n = 0;
    int rc = keys ? 0 : ann_err_set(err, ANN_EINTERNAL, "catalog: out of memory");
    for (int32_t i = 0; rc == 0 && i < r.nrows; i++) {
        const uint8_t *h = NULL;
        size_t hn = 0;
        ann_tenant t;
        if (ann_cql_get_blob(&r, i, 0, &h, &hn, err) < 0 || hn != 32) {
            rc = hn == 32 ? -1 : ann_err_set(err, ANN_ECORRUPT, "catalog: bad key hash");
            break;
        }
        int f = key_by_hash(c, h, &t, &keys[n], err);
        if (f < 0)
            rc = -1;
        else if (f == 1)
            n++; /* a name claimed by a create that died before its key row */
    }
    ann_cql_result_release(&r);
    if (rc == 0) {
        qsort(keys, n, sizeof *keys, cmp_key);
        for (size_t i = 0; i < n; i++)
            if (visit(&keys[i], ud) != 0)
                break;
    }
    free(keys);
    return rc;
}

int ann_catalog_key_revoke(ann_catalog *c, const char *key_id, int64_t now, ann_key *out,
                           uint8_t key_hash[32], ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(key_id)};
    ann_cql_result r;
    if (exec(c, S_KEY_ID_GET, v, 1, false, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    const uint8_t *h = NULL;
    size_t hn = 0;
    int rc = 0;
    if (r.nrows == 0 || ann_cql_get_blob(&r, 0, 0, &h, &hn, err) != 0 || hn != 32)
        rc = ann_err_set(err, ANN_ENOTFOUND, "key %.64s not found", key_id);
    else
        memcpy(key_hash, h, 32);
    ann_cql_result_release(&r);
    if (rc < 0)
        return -1;
    ann_tenant t;
    ann_key k;
    int f = key_by_hash(c, key_hash, &t, &k, err);
    if (f <= 0)
        return f < 0 ? -1 : ann_err_set(err, ANN_ENOTFOUND, "key %.64s not found", key_id);
    if (k.revoke_ns == 0) {
        k.revoke_ns = now > 0 ? now : 1;
        ann_cql_value rv[] = {ann_cql_vbigint(k.revoke_ns), ann_cql_vblob(key_hash, 32)};
        if (exec_simple(c, S_KEY_REVOKE, rv, 2, err) < 0)
            return -1;
    }
    if (out)
        *out = k;
    return 0;
}

int ann_catalog_log_create(ann_catalog *c, const char *tenant_id, const char *log_id,
                           const uint8_t *labels, size_t labels_len, int64_t now,
                           int32_t retention_days, ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id),
                         ann_cql_vblob(labels ? labels : (const uint8_t *)"", labels_len),
                         ann_cql_vbigint(now), ann_cql_vint(retention_days)};
    return exec_simple(c, S_LOG_PUT, v, 5, err);
}

int ann_catalog_log_get(ann_catalog *c, const char *tenant_id, const char *log_id,
                        ann_log_meta *out, ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id)};
    ann_cql_result r;
    int rc = exec(c, S_LOG_GET, v, 2, false, &r, err);
    if (rc < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    bool deleted = false, held = false, state = false;
    int64_t create = 0, hold_time = 0;
    int32_t days = 0;
    const uint8_t *lp = NULL;
    const char *actor = NULL, *reason = NULL;
    size_t ln = 0, an = 0, rn = 0;
    int found = r.nrows > 0;
    if (found && (ann_cql_get_blob(&r, 0, 0, &lp, &ln, err) < 0 ||
                  ann_cql_get_bigint(&r, 0, 1, &create, err) < 0 ||
                  ann_cql_get_bool(&r, 0, 2, &deleted, err) < 0 ||
                  ann_cql_get_bool(&r, 0, 3, &held, err) < 0 ||
                  ann_cql_get_bool(&r, 0, 4, &state, err) < 0 ||
                  ann_cql_get_text(&r, 0, 5, &actor, &an, err) < 0 ||
                  ann_cql_get_text(&r, 0, 6, &reason, &rn, err) < 0 ||
                  ann_cql_get_bigint(&r, 0, 7, &hold_time, err) < 0 ||
                  ann_cql_get_int(&r, 0, 8, &days, err) < 0)) {
        ann_cql_result_release(&r);
        return -1;
    }
    if (found && !deleted && out) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", log_id);
        out->create_time_ns = create;
        out->labels_len = ln;
        out->labels = malloc(ln ? ln : 1);
        if (ln)
            memcpy(out->labels, lp, ln);
        out->legal_hold = held;
        out->retention_days = days;
        if (hold_time != 0) { /* held or released at least once */
            ann_hold_change *h = &out->last_hold_change;
            out->has_hold_change = true;
            h->hold = state;
            h->time_ns = hold_time;
            snprintf(h->actor, sizeof h->actor, "%.*s", actor ? (int)an : 0, actor ? actor : "");
            if (reason && rn) {
                h->reason = malloc(rn + 1);
                if (!h->reason)
                    abort();
                memcpy(h->reason, reason, rn);
                h->reason[rn] = '\0';
            }
        }
    }
    ann_cql_result_release(&r);
    return found && !deleted ? 1 : 0;
}

int ann_catalog_log_mark_deleted(ann_catalog *c, const char *tenant_id, const char *log_id,
                                 int64_t now, const char *actor, const char *reason, ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vbigint(now), actor ? ann_cql_vtext(actor) : ann_cql_vnull(),
                         reason ? ann_cql_vtext(reason) : ann_cql_vnull(), ann_cql_vtext(tenant_id),
                         ann_cql_vtext(log_id)};
    ann_cql_result r;
    bool applied = false, held = false;
    int rc = exec(c, S_LOG_DELETED, v, 5, true, &r, err);
    if (rc == 0)
        rc = ann_cql_applied(&r, &applied, err);
    /* Not applied: the row's current values follow [applied]; a hold, or a deletion that
     * won the race (or no row at all). */
    for (int32_t i = 1; rc == 0 && !applied && r.nrows > 0 && i < r.ncols; i++) {
        const ann_cql_bytes *n = &r.cols[i].name;
        if (n->len == 10 && memcmp(n->p, "legal_hold", 10) == 0 &&
            ann_cql_get_bool(&r, 0, i, &held, err) < 0)
            rc = -1;
    }
    ann_cql_result_release(&r);
    if (rc < 0)
        return -1;
    if (!applied && held)
        return ann_err_set(err, ANN_EPRECOND,
                           "log_id: log %.64s is on legal hold; it cannot be deleted until "
                           "released",
                           log_id);
    if (!applied)
        return ann_err_set(err, ANN_ENOTFOUND, "log %.64s not found", log_id);
    return 0;
}

int ann_catalog_log_set_hold(ann_catalog *c, const char *tenant_id, const char *log_id, bool hold,
                             const char *actor, const char *reason, int64_t now, ann_err *err)
{
    if (now == 0)
        now = 1; /* hold_time_ns 0 means "never changed" */
    ann_cql_value v[] = {ann_cql_vbool(hold),   ann_cql_vbool(hold),  ann_cql_vtext(actor),
                         ann_cql_vtext(reason), ann_cql_vbigint(now), ann_cql_vtext(tenant_id),
                         ann_cql_vtext(log_id)};
    ann_cql_result r;
    bool applied = false;
    int rc = exec(c, S_LOG_HOLD, v, 7, true, &r, err);
    if (rc == 0)
        rc = ann_cql_applied(&r, &applied, err);
    ann_cql_result_release(&r);
    if (rc < 0)
        return -1;
    if (!applied) /* missing, another tenant's, or deleted: the same answer */
        return ann_err_set(err, ANN_ENOTFOUND, "log %.64s not found", log_id);
    char event_id[ANN_UUID_LEN + 1];
    ann_uuid_v4_new(event_id);
    ann_cql_value ev[] = {ann_cql_vtext(tenant_id),
                          ann_cql_vtext(log_id),
                          ann_cql_vbigint(now),
                          ann_cql_vtext(event_id),
                          ann_cql_vtext(hold ? "hold" : "release"),
                          ann_cql_vtext(actor),
                          ann_cql_vtext(reason)};
    return exec_simple(c, S_EVENT_PUT, ev, 7, err);
}

typedef struct ev_row {
    int32_t row;
    int64_t time_ns;
} ev_row;

static int ev_cmp(const void *a, const void *b)
{
    const ev_row *x = a, *y = b;
    return x->time_ns < y->time_ns   ? -1
           : x->time_ns > y->time_ns ? 1
                                     : (x->row > y->row) - (x->row < y->row);
}

int ann_catalog_log_events(ann_catalog *c, const char *tenant_name, const char *log_id,
                           ann_log_event_visit_fn visit, void *ud, ann_err *err)
{
    char tid[ANN_UUID_LEN + 1];
    if (tenant_by_name(c, tenant_name, tid, err) < 0)
        return -1;
    ann_cql_value v[] = {ann_cql_vtext(tid), ann_cql_vtext(log_id ? log_id : "")};
    ann_cql_result r;
    if (exec(c, log_id ? S_LOG_EVENTS : S_EVENTS, v, log_id ? 2 : 1, false, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    ev_row *rows = calloc((size_t)r.nrows + 1, sizeof *rows);
    int rc = rows ? 0 : ann_err_set(err, ANN_EINTERNAL, "catalog: out of memory");
    for (int32_t i = 0; rc == 0 && i < r.nrows; i++) {
        rows[i].row = i;
        if (ann_cql_get_bigint(&r, i, 1, &rows[i].time_ns, err) < 0)
            rc = -1;
    }
    if (rc == 0)
        qsort(rows, (size_t)r.nrows, sizeof *rows, ev_cmp); /* oldest first, across logs */
    for (int32_t i = 0; rc == 0 && i < r.nrows; i++) {
        const char *t[4] = {0};
        size_t n[4] = {0};
        char *s[4] = {0};
        int32_t row = rows[i].row;
        static const int cols[4] = {0, 2, 3, 4};
        for (int k = 0; k < 4 && rc == 0; k++) {
            if (ann_cql_get_text(&r, row, cols[k], &t[k], &n[k], err) < 0) {
                rc = -1;
                break;
            }
            s[k] = malloc(n[k] + 1);
            if (!s[k])
                abort();
            if (t[k] && n[k])
                memcpy(s[k], t[k], n[k]);
            s[k][n[k]] = '\0';
        }
        ann_log_event ev = {.log_id = s[0] ? s[0] : "",
                            .time_ns = rows[i].time_ns,
                            .kind = s[1] ? s[1] : "",
                            .actor = s[2] ? s[2] : "",
                            .reason = s[3] ? s[3] : ""};
        int stop = rc == 0 ? visit(&ev, ud) : 0;
        for (int k = 0; k < 4; k++)
            free(s[k]);
        if (stop)
            break;
    }
    free(rows);
    ann_cql_result_release(&r);
    return rc;
}

int ann_catalog_tenant_set_retention(ann_catalog *c, const char *tenant_name, int32_t days,
                                     ann_err *err)
{
    char tid[ANN_UUID_LEN + 1];
    if (tenant_by_name(c, tenant_name, tid, err) < 0)
        return -1;
    ann_cql_value v[] = {ann_cql_vint(days), ann_cql_vtext(tid)};
    return exec_simple(c, S_TENANT_RETENTION, v, 2, err);
}

int ann_catalog_tenant_periods(ann_catalog *c, ann_catalog_period **out, size_t *n, ann_err *err)
{
    ann_cql_result r;
    *out = NULL;
    *n = 0;
    if (exec(c, S_TENANT_PERIODS, NULL, 0, false, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    ann_catalog_period *v = calloc((size_t)r.nrows + 1, sizeof *v);
    if (!v)
        abort();
    int rc = 0;
    for (int32_t i = 0; i < r.nrows; i++) {
        const char *t = NULL;
        size_t tn = 0;
        int32_t days = 0;
        if (ann_cql_get_text(&r, i, 0, &t, &tn, err) < 0 ||
            ann_cql_get_int(&r, i, 1, &days, err) < 0) {
            rc = -1;
            break;
        }
        if (!t || tn > ANN_UUID_LEN || days <= 0)
            continue;
        memcpy(v[*n].tenant_id, t, tn);
        v[*n].tenant_id[tn] = '\0';
        v[*n].days = days;
        (*n)++;
    }
    ann_cql_result_release(&r);
    if (rc != 0) {
        free(v);
        *n = 0;
        return -1;
    }
    *out = v;
    return 0;
}

/* A text column into a NUL-terminated buffer (null: ""; longer: cut). */
static int text_into(const ann_cql_result *r, int32_t row, int32_t col, char *out, size_t cap,
                     ann_err *err)
{
    const char *t = NULL;
    size_t n = 0;
    if (ann_cql_get_text(r, row, col, &t, &n, err) < 0)
        return -1;
    if (n >= cap)
        n = cap - 1;
    if (t && n)
        memcpy(out, t, n);
    out[t ? n : 0] = '\0';
    return 0;
}

int ann_catalog_log_scan(ann_catalog *c, ann_catalog_scan *cur, size_t max,
                         int (*visit)(const ann_catalog_log_row *row, void *ud), void *ud,
                         ann_err *err)
{
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.consistency = ANN_CQL_LOCAL_QUORUM;
    p.idempotent = true;
    p.page_size = (int32_t)(max > 5000 ? 5000 : max ? max : 1);
    if (cur->state_len > 0)
        p.paging_state = (ann_cql_bytes){cur->state, (int32_t)cur->state_len};
    ann_cql_result r;
    if (ann_cql_execute(c->c, c->ps[S_LOG_SCAN], &p, &r, err) < 0) {
        ann_cql_result_release(&r);
        cur->state_len = 0; /* start over next time */
        return -1;
    }
    int rc = 0;
    for (int32_t i = 0; rc == 0 && i < r.nrows; i++) {
        const char *t = NULL, *l = NULL;
        size_t tn = 0, ln = 0;
        ann_catalog_log_row row = {0};
        if (ann_cql_get_text(&r, i, 0, &t, &tn, err) < 0 ||
            ann_cql_get_text(&r, i, 1, &l, &ln, err) < 0 ||
            ann_cql_get_bigint(&r, i, 2, &row.create_ns, err) < 0 ||
            ann_cql_get_bool(&r, i, 3, &row.deleted, err) < 0 ||
            ann_cql_get_bool(&r, i, 4, &row.held, err) < 0 ||
            ann_cql_get_int(&r, i, 5, &row.days, err) < 0 ||
            ann_cql_get_bigint(&r, i, 6, &row.last_write_ns, err) < 0 ||
            ann_cql_get_bool(&r, i, 7, &row.delete_done, err) < 0 ||
            ann_cql_get_bigint(&r, i, 8, &row.delete_ns, err) < 0 ||
            text_into(&r, i, 9, row.delete_actor, sizeof row.delete_actor, err) < 0 ||
            text_into(&r, i, 10, row.delete_reason, sizeof row.delete_reason, err) < 0) {
            rc = -1;
            break;
        }
        if (!t || !l || tn > ANN_UUID_LEN || ln > ANN_UUID_LEN)
            continue;
        memcpy(row.tenant_id, t, tn);
        memcpy(row.log_id, l, ln);
        if (visit(&row, ud) != 0)
            break;
    }
    /* The cursor: the next page, or the start once the table is walked. */
    if (rc == 0 && r.paging_state.len > 0 && (size_t)r.paging_state.len <= sizeof cur->state) {
        memcpy(cur->state, r.paging_state.p, (size_t)r.paging_state.len);
        cur->state_len = (size_t)r.paging_state.len;
    } else {
        cur->state_len = 0;
    }
    ann_cql_result_release(&r);
    return rc;
}

int ann_catalog_log_set_last_write(ann_catalog *c, const char *tenant_id, const char *log_id,
                                   int64_t ns, ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vbigint(ns), ann_cql_vtext(tenant_id), ann_cql_vtext(log_id)};
    return exec_simple(c, S_LOG_LAST_WRITE, v, 3, err);
}

int ann_catalog_event_put(ann_catalog *c, const char *tenant_id, const char *log_id, int64_t now,
                          const char *kind, const char *actor, const char *reason, ann_err *err)
{
    char event_id[ANN_UUID_LEN + 1];
    if (strcmp(kind, "retention") == 0) /* one per deletion: written again, the same row */
        snprintf(event_id, sizeof event_id, "deletion");
    else
        ann_uuid_v4_new(event_id);
    ann_cql_value ev[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id), ann_cql_vbigint(now),
                          ann_cql_vtext(event_id),  ann_cql_vtext(kind),   ann_cql_vtext(actor),
                          ann_cql_vtext(reason)};
    return exec_simple(c, S_EVENT_PUT, ev, 7, err);
}

int ann_catalog_logs_flags(ann_catalog *c, const char *tenant_id, ann_log_meta *logs, size_t n,
                           bool *deleted, ann_err *err)
{
    if (n == 0)
        return 0;
    const char **ids = ann_xcalloc(n, sizeof *ids);
    size_t *lens = ann_xcalloc(n, sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        ids[i] = logs[i].id;
        lens[i] = strlen(logs[i].id);
    }
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vlist_text(ids, lens, n)};
    ann_cql_result r;
    int rc = exec(c, S_LOG_FLAGS, v, 2, false, &r, err);
    for (int32_t i = 0; rc == 0 && i < r.nrows; i++) {
        const char *id = NULL;
        size_t idn = 0;
        bool held = false, gone = false;
        int32_t days = 0;
        if (ann_cql_get_text(&r, i, 0, &id, &idn, err) < 0 ||
            ann_cql_get_bool(&r, i, 1, &held, err) < 0 ||
            ann_cql_get_int(&r, i, 2, &days, err) < 0 ||
            ann_cql_get_bool(&r, i, 3, &gone, err) < 0) {
            rc = -1;
            break;
        }
        for (size_t k = 0; k < n; k++)
            if (id && strlen(logs[k].id) == idn && memcmp(logs[k].id, id, idn) == 0) {
                logs[k].legal_hold = held;
                logs[k].retention_days = days;
                if (deleted)
                    deleted[k] = gone;
            }
    }
    ann_cql_result_release(&r);
    free(ids);
    free(lens);
    return rc < 0 ? -1 : 0;
}

int ann_catalog_log_delete_done(ann_catalog *c, const char *tenant_id, const char *log_id,
                                ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id)};
    return exec_simple(c, S_LOG_DELETE_DONE, v, 2, err);
}
