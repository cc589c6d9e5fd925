/*
 * ann_health: is this process ready to serve? One object per server process, owned by
 * annalsd's main and read by both transports: the gRPC health service (grpc.health.v1,
 * server.c) and the HTTP port's /readyz (src/http/).
 *
 * The process is ready when it is not draining (ann_health_set_draining, on SIGTERM) and
 * every probe succeeded the last time it ran. Probes are the engines a role needs (the
 * distributed store's, the sequencer's and projector's; docs/operations.md); a monitor
 * thread runs them every interval, so readers never wait on the network. With no probe
 * the process is ready from the start (the embedded store is usable once it opened).
 *
 * Threading: every function may be called from any thread. Subscribers are called on the
 * thread that changed the state (the monitor's, or set_draining's caller), without the
 * object's lock held; they must not block.
 */
#ifndef ANN_API_HEALTH_H
#define ANN_API_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/metrics.h"

/* The services the health protocol answers for ("" is the whole server). */
#define ANN_SERVICE_COMMAND "annals.v1.LoggingCommandService"
#define ANN_SERVICE_QUERY "annals.v1.LoggingQueryService"

typedef struct ann_health ann_health;
typedef struct ann_health_sub ann_health_sub;

/* A probe: 0 when what it checks is usable, else -1 with err saying what is not. */
typedef int (*ann_health_probe_fn)(void *ud, ann_err *err);
typedef void (*ann_health_change_fn)(void *ud);

/* metrics may be NULL; with it, annals_ready (0/1) is kept. */
ann_health *ann_health_new(ann_metrics *metrics);
/* Stops the monitor. Subscribers must be gone. NULL is fine. */
void ann_health_free(ann_health *h);

/* Adds a probe (before ann_health_start). `what` names it in /readyz's answer. */
void ann_health_add_probe(ann_health *h, const char *what, ann_health_probe_fn fn, void *ud);
/* Runs every probe once (the state is known when this returns), then every interval_ms
 * on a thread of its own. Without probes it does nothing. */
int ann_health_start(ann_health *h, unsigned interval_ms, ann_err *err);

/* From now on the process is not ready (SIGTERM). Irreversible. */
void ann_health_set_draining(ann_health *h);

/* Whether the process is ready; when not, why (a short sentence) in why[cap]. */
bool ann_health_ready(ann_health *h, char *why, size_t cap);

/* Whether `service` is one the health protocol knows ("" or an annals service). */
bool ann_health_service_known(const char *service, size_t len);

ann_health_sub *ann_health_subscribe(ann_health *h, ann_health_change_fn fn, void *ud);
/* After it returns, fn is not running and will not be called again. */
void ann_health_unsubscribe(ann_health *h, ann_health_sub *sub);

#endif
