/* annalsd's distributed roles (roles.c). */
#ifndef ANN_CMD_ANNALSD_ROLES_H
#define ANN_CMD_ANNALSD_ROLES_H

#include <stdbool.h>
#include <stdint.h>

#include "api/server.h"
#include "store/retention.h"
#include "store/store.h"

typedef struct ann_roles_opts {
    bool distributed; /* --distributed or any engine flag */
    const char *kafka, *cassandra, *postgres, *ns, *instance;
    const char *http; /* --http HOST:PORT (any mode, parsed by main.c): NULL when off */
    int partitions, replication;
    bool rebuild;          /* project --rebuild: rebuild the read model from Cassandra, exit */
    int purge_interval_ms; /* the projector role's purger: between passes (0: default) */
    int64_t kafka_segment_ms, kafka_delete_delay_ms; /* topic configs (0: defaults) */
    ann_retention_opts retention; /* serve and all: the retention runner (main.c's flags) */
    /* The checkpoint signing key of the sequencers (docs/integrity.md): this file
     * (PRIVATE+KEY+... form) when set, else the deployment's key kept in the catalog
     * (made on first use; for development), named key_name (default "annals"). */
    const char *signing_key, *key_name;
} ann_roles_opts;

/* One distributed flag at argv[*i]: 1 taken (value consumed), 0 not ours, -1 bad. */
int ann_roles_flag(ann_roles_opts *o, int argc, char **argv, int *i);

/* The distributed store an API server (or `tenant create`) uses. */
struct ann_metrics;
int ann_roles_open_store(const ann_roles_opts *o, struct ann_metrics *metrics, ann_store **out,
                         ann_err *err);

/* `annalsd tenant create --distributed`: the catalog only. */
int ann_roles_tenant_create(const ann_roles_opts *o, const char *name, const uint8_t key_hash[32],
                            ann_tenant *out, ann_err *err);

/* `annalsd key create|list|revoke --distributed`: the catalog only (store.h's key ops). */
int ann_roles_key_create(const ann_roles_opts *o, const ann_key_spec *spec, ann_key *out,
                         ann_err *err);
int ann_roles_key_list(const ann_roles_opts *o, const char *tenant_name, ann_key_visit_fn visit,
                       void *ud, ann_err *err);
int ann_roles_key_revoke(const ann_roles_opts *o, const char *key_id, int64_t now_ns, ann_key *out,
                         ann_err *err);

/* `annalsd tenant set-retention NAME --days N --distributed`: the catalog only. */
int ann_roles_tenant_set_retention(const ann_roles_opts *o, const char *name, int32_t days,
                                   ann_err *err);

/* `annalsd audit TENANT --distributed`: the catalog's log_events. */
int ann_roles_audit(const ann_roles_opts *o, const char *tenant_name, const char *log_id,
                    ann_log_event_visit_fn visit, void *ud, ann_err *err);

/* The sequencers' checkpoint signing key (see signing_key): `annalsd verifier-key
 * --distributed` prints its verifier key. Release it with ann_note_signer_release(). */
struct ann_note_signer;
int ann_roles_signer(const ann_roles_opts *o, struct ann_note_signer *out, ann_err *err);

/* Runs `serve`, `sequence`, `project` or `all` until SIGTERM/SIGINT; the exit status. */
int ann_roles_run(const char *role, const ann_roles_opts *o, const ann_server_opts *so,
                  ann_wait default_wait);

#endif
