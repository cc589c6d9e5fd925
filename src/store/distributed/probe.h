/*
 * Reachability probes of the engines, for readiness (ann_health, docs/operations.md):
 * cheap checks that a role's engines answer, run by the health monitor every second.
 */
#ifndef ANN_STORE_DISTRIBUTED_PROBE_H
#define ANN_STORE_DISTRIBUTED_PROBE_H

#include "common/err.h"

/* Some node of `hostports` ("HOST:PORT[,HOST:PORT...]") accepts a TCP connection within
 * timeout_ms; else -1 with ANN_EUNAVAIL naming `what` (e.g. "kafka"). */
int ann_probe_tcp(const char *what, const char *hostports, int timeout_ms, ann_err *err);

/* The PostgreSQL server of `conninfo` accepts connections (libpq's PQping). */
int ann_probe_pg(const char *conninfo, ann_err *err);

#endif
