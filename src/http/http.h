/*
 * ann_http: annalsd's HTTP port (`--http HOST:PORT`, docs/operations.md), on libmicrohttpd.
 *
 * Requests are dispatched through a table of routes (method, path, handler). Today's
 * routes are the operator's: GET /healthz (the process is alive), GET /readyz (ready:
 * ann_health), GET /metrics (ann_metrics in the Prometheus text format). Paths under /v1/
 * are the JSON API and its Server-Sent Events tails (json_api.c, sse.c, docs/http-api.md),
 * over the same service layer as gRPC (ann_service, given in the options; NULL in roles
 * that serve no API: there /v1/ answers UNAVAILABLE).
 *
 * Unknown paths answer 404, a known path with another method 405 (with Allow); header
 * size, URL length and connection counts are bounded by libmicrohttpd's limits, set here.
 * TLS with the same certificate and key as the gRPC port.
 *
 * Threading: libmicrohttpd's own threads run the handlers; everything they read (health,
 * metrics, the service) is thread-safe and must outlive ann_http_stop.
 */
#ifndef ANN_HTTP_HTTP_H
#define ANN_HTTP_HTTP_H

#include "api/health.h"
#include "api/service.h"
#include "common/err.h"
#include "common/metrics.h"

typedef struct ann_http_opts {
    const char *listen;                       /* "HOST:PORT" (IPv6 as [::1]:8080) */
    const char *tls_cert_file, *tls_key_file; /* PEM; both or neither */
    ann_metrics *metrics;                     /* borrowed; NULL: /metrics is empty */
    ann_health *health;                       /* borrowed; NULL: always ready */
    ann_service *svc; /* borrowed; NULL in roles with no API (for the JSON API) */
    const char *role; /* for the log line: "serve", "sequence", ... */
} ann_http_opts;

typedef struct ann_http ann_http;

int ann_http_start(const ann_http_opts *o, ann_http **out, ann_err *err);
/* Stops accepting, finishes the requests being answered, frees everything. NULL is fine. */
void ann_http_stop(ann_http *h);

#endif
