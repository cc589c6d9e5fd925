/*
 * ann_server: annals' gRPC server on the gRPC core C API.
 *
 * Threads: a few completion-queue threads only move events; a pool of workers runs the
 * handlers. A unary handler starts its rpc (ann_service_unary_async) and returns: the
 * reply is sent from the rpc's completion, on whichever thread the store completes it
 * (the worker itself for a synchronous store, which may wait for fsync there: group
 * commit batches the concurrent ones). Every call is a small state machine whose memory
 * is freed after its last event. Tails (server streaming) hold no worker while they wait:
 * a store watch wakes them.
 *
 * Beside annals' services it serves, without authentication (docs/operations.md):
 * grpc.health.v1.Health (Check, and Watch: a stream like a tail, woken by ann_health)
 * and grpc.reflection.v1 / v1alpha ServerReflection (a bidirectional stream: one answer
 * per request, computed on the completion-queue thread, ann_reflection).
 */
#ifndef ANN_API_SERVER_H
#define ANN_API_SERVER_H

#include "api/health.h"
#include "api/service.h"
#include "common/err.h"
#include "common/metrics.h"

typedef struct ann_server_opts {
    const char *listen;        /* "HOST:PORT" */
    const char *tls_cert_file; /* PEM; both or neither */
    const char *tls_key_file;
    int workers;    /* handler threads; 0: default (32) */
    int cq_threads; /* completion-queue threads; 0: default (2) */
    /* Borrowed, may be NULL; they must outlive the server. With metrics, the server
     * counts every rpc (grpc_server_*; docs/operations.md); with health, the health
     * service answers from it (else: SERVING until the server stops). */
    ann_metrics *metrics;
    ann_health *health;
} ann_server_opts;

typedef struct ann_server ann_server;

/* Starts serving `svc` (borrowed; it must outlive the server). */
int ann_server_start(ann_service *svc, const ann_server_opts *opts, ann_server **out, ann_err *err);

/* Graceful stop: marks the health draining (NOT_SERVING, sent to every Watch before it
 * ends), refuses new calls, lets in-flight ones finish (writes complete and are
 * acknowledged, pending store completions included; after a grace period the calls are
 * cancelled, and a completion that comes later finishes its cancelled call), ends tails
 * with UNAVAILABLE, then frees everything. The store must outlive this call. */
void ann_server_stop(ann_server *s);

#endif
