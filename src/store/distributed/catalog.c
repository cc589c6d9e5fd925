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
    S_COUNT
};

static const char *const schema_text[] = {
    "CREATE TABLE IF NOT EXISTS %s.deployment (name text PRIMARY KEY, secret blob)",
    "CREATE TABLE IF NOT EXISTS %s.tenants (tenant_id text PRIMARY KEY, name text, "
    "create_time_ns bigint)",
    "CREATE TABLE IF NOT EXISTS %s.tenant_names (name text PRIMARY KEY, tenant_id text)",
    "CREATE TABLE IF NOT EXISTS %s.tenant_keys (key_hash blob PRIMARY KEY, tenant_id text, "
    "name text)",
    "CREATE TABLE IF NOT EXISTS %s.logs (tenant_id text, log_id text, labels blob, "
    "create_time_ns bigint, deleted boolean, PRIMARY KEY ((tenant_id), log_id))",
};

static const char *const stmt_text[S_COUNT] = {
    [S_SECRET_GET] = "SELECT secret FROM %s.deployment WHERE name = 'secret'",
    [S_SECRET_PUT] = "INSERT INTO %s.deployment (name, secret) VALUES ('secret', ?) IF NOT EXISTS",
    [S_NAME_CLAIM] = "INSERT INTO %s.tenant_names (name, tenant_id) VALUES (?, ?) IF NOT EXISTS",
    [S_TENANT_PUT] = "INSERT INTO %s.tenants (tenant_id, name, create_time_ns) VALUES (?, ?, ?)",
    [S_KEY_PUT] = "INSERT INTO %s.tenant_keys (key_hash, tenant_id, name) VALUES (?, ?, ?)",
    [S_KEY_GET] = "SELECT tenant_id, name FROM %s.tenant_keys WHERE key_hash = ?",
    [S_LOG_PUT] = "INSERT INTO %s.logs (tenant_id, log_id, labels, create_time_ns, deleted) "
                  "VALUES (?, ?, ?, ?, false)",
    [S_LOG_GET] = "SELECT labels, create_time_ns, deleted FROM %s.logs "
                  "WHERE tenant_id = ? AND log_id = ?",
    [S_LOG_DELETED] = "UPDATE %s.logs SET deleted = true WHERE tenant_id = ? AND log_id = ?",
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

int ann_catalog_secret(ann_catalog *c, uint8_t out[32], ann_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        ann_cql_result r;
        if (exec(c, S_SECRET_GET, NULL, 0, false, &r, err) < 0) {
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
        ann_cql_value v[] = {ann_cql_vblob(fresh, sizeof fresh)};
        if (exec(c, S_SECRET_PUT, v, 1, true, &r, err) < 0) {
            ann_cql_result_release(&r);
            return -1;
        }
        ann_cql_result_release(&r); /* applied or not, read back the one that won */
    }
    return ann_err_set(err, ANN_EINTERNAL, "catalog: deployment secret unreadable");
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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
    ann_cql_value tv[] = {ann_cql_vtext(t.id), ann_cql_vtext(t.name), ann_cql_vbigint(now_ns())};
    ann_cql_value kv[] = {ann_cql_vblob(key_hash, 32), ann_cql_vtext(t.id), ann_cql_vtext(t.name)};
    if (exec_simple(c, S_TENANT_PUT, tv, 3, err) < 0 || exec_simple(c, S_KEY_PUT, kv, 3, err) < 0)
        return -1;
    if (out)
        *out = t;
    return 0;
}

int ann_catalog_tenant_by_key(ann_catalog *c, const uint8_t key_hash[32], ann_tenant *out,
                              ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vblob(key_hash, 32)};
    ann_cql_result r;
    int rc = exec(c, S_KEY_GET, v, 1, false, &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ann_err_set(err, ANN_EUNAUTH, "unknown API key");
    const char *id = NULL, *name = NULL;
    size_t idn = 0, namen = 0;
    if (rc == 0 && (ann_cql_get_text(&r, 0, 0, &id, &idn, err) < 0 ||
                    ann_cql_get_text(&r, 0, 1, &name, &namen, err) < 0))
        rc = -1;
    if (rc == 0 && out) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%.*s", (int)idn, id ? id : "");
        snprintf(out->name, sizeof out->name, "%.*s", (int)namen, name ? name : "");
    }
    ann_cql_result_release(&r);
    return rc;
}

int ann_catalog_log_create(ann_catalog *c, const char *tenant_id, const char *log_id,
                           const uint8_t *labels, size_t labels_len, int64_t now, ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id),
                         ann_cql_vblob(labels ? labels : (const uint8_t *)"", labels_len),
                         ann_cql_vbigint(now)};
    return exec_simple(c, S_LOG_PUT, v, 4, err);
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
    bool deleted = false;
    int64_t create = 0;
    const uint8_t *lp = NULL;
    size_t ln = 0;
    int found = r.nrows > 0;
    if (found && (ann_cql_get_blob(&r, 0, 0, &lp, &ln, err) < 0 ||
                  ann_cql_get_bigint(&r, 0, 1, &create, err) < 0 ||
                  ann_cql_get_bool(&r, 0, 2, &deleted, err) < 0)) {
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
    }
    ann_cql_result_release(&r);
    return found && !deleted ? 1 : 0;
}

int ann_catalog_log_mark_deleted(ann_catalog *c, const char *tenant_id, const char *log_id,
                                 ann_err *err)
{
    ann_cql_value v[] = {ann_cql_vtext(tenant_id), ann_cql_vtext(log_id)};
    return exec_simple(c, S_LOG_DELETED, v, 2, err);
}
