/* Shared by the tests that talk to a real Cassandra (ctest label `cql`).
 * ANN_CQL_CONTACT (default 127.0.0.1:9042), ANN_CQL_USER and
 * ANN_CQL_PASSWORD (default cassandra/cassandra) say where and who. */
#ifndef ANN_TESTS_CQL_LIVE_H
#define ANN_TESTS_CQL_LIVE_H

#include <stdlib.h>

#include "cql/cql.h"

static inline const char *live_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static inline ann_cql_config live_config(void)
{
    ann_cql_config cfg = {0};
    cfg.contact_points = live_env("ANN_CQL_CONTACT", "127.0.0.1:9042");
    cfg.username = live_env("ANN_CQL_USER", "cassandra");
    cfg.password = live_env("ANN_CQL_PASSWORD", "cassandra");
    cfg.request_timeout_ms = 20000;
    return cfg;
}

#endif
