/*
 * What the files of the HTTP port share: the port itself (http.c), the JSON API
 * (json_api.c) and the Server-Sent Events tails (sse.c).
 */
#ifndef ANN_HTTP_INTERNAL_H
#define ANN_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

#include "common/buf.h"
#include "http/http.h"

/* A request body, for the routes that take one: at most this many bytes (the gRPC port's
 * bound: a write that gRPC takes, the JSON API takes too). Larger: 413 before it is read. */
#define ANN_HTTP_MAX_JSON_BODY (16u * 1024 * 1024)

typedef struct ann_sse_hub ann_sse_hub;

struct ann_http {
    ann_http_opts o;
    struct MHD_Daemon *d;
    char *cert, *key;
    ann_counter *requests[5]; /* by status class, 1xx .. 5xx */
    ann_histogram *scrape;
    ann_sse_hub *sse; /* the open tails (sse.c); NULL without a service */
    /* JSON API calls under way: their connections are suspended until the service
     * completes them, and libmicrohttpd may not stop while one is (ann_http_stop waits). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight; /* guarded by mu */
};

/* Counts an answer by its status class (annals_http_requests_total). */
void ann_http_count(ann_http *h, unsigned status);

/* Queues a response with the headers every answer of the port carries (content type,
 * nosniff, no-store) and counts it. The response stays the caller's to destroy. */
enum MHD_Result ann_http_queue(ann_http *h, struct MHD_Connection *conn, unsigned status,
                               const char *content_type, struct MHD_Response *r);

/* ---------- the JSON API (json_api.c) ---------- */

/* Per-request state of a /v1/ request, from its first call to its completion. */
typedef struct ann_jsonapi_req ann_jsonapi_req;

/* Whether a path belongs to the JSON API. */
bool ann_jsonapi_owns(const char *url);

/* libmicrohttpd's access handler for a JSON API request (the same arguments). */
enum MHD_Result ann_jsonapi_handle(ann_http *h, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls);

/* Frees a request's state once libmicrohttpd is done with it. NULL is fine. */
void ann_jsonapi_req_free(ann_jsonapi_req *r);

/* The JSON error body {"code": <gRPC code>, "status": "<NAME>", "message": "..."} and the
 * HTTP status matching the gRPC code, for `err` (messages of server errors are the fixed
 * texts of src/api/status.c). *retriable as the gRPC port's annals-retriable. */
unsigned ann_jsonapi_error(const ann_err *err, const char *what, ann_buf *body, bool *retriable);

/* ---------- Server-Sent Events tails (sse.c) ---------- */

/* At most this many SSE tails open at once on one server; more: 429. */
#define ANN_SSE_MAX_STREAMS 64
/* A comment line this often on an idle stream, so proxies and the client keep it open (and
 * a client gone away is noticed). */
#define ANN_SSE_HEARTBEAT_MS 15000

ann_sse_hub *ann_sse_hub_new(ann_service *svc, ann_metrics *metrics, ann_err *err);
/* Ends every stream (an `end` event with UNAVAILABLE) and waits a moment for them to be
 * sent; call before MHD_stop_daemon (which needs no suspended connection). */
void ann_sse_hub_shutdown(ann_sse_hub *hub);
/* After MHD_stop_daemon: frees the hub. NULL is fine. */
void ann_sse_hub_free(ann_sse_hub *hub);

/* Opens a tail for `tenant` on request bytes `req` (a TailLogEntriesRequest) and makes its
 * response (chunked, text/event-stream). -1 with err when the tail cannot open (not found,
 * refused, too many streams). */
int ann_sse_open(ann_sse_hub *hub, struct MHD_Connection *conn, const ann_tenant *tenant,
                 const uint8_t *req, size_t len, struct MHD_Response **out, ann_err *err);

#endif
