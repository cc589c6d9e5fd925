#include "http/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "http/internal.h"
#include "http/viewer.h"

#define HTTP_MEMORY_LIMIT (64 * 1024) /* per connection: request line and headers */
#define HTTP_CONNECTION_LIMIT 256
#define HTTP_TIMEOUT_SECONDS 30
#define HTTP_THREADS 4            /* the JSON API's commands wait for the group commit on them */
#define HTTP_MAX_BODY (64 * 1024) /* read and dropped; larger ones are refused (413) */

/* What a handler answers. */
typedef struct reply {
    unsigned status;
    const char *content_type;
    ann_buf body;
} reply;

typedef struct request {
    const char *method; /* "GET", "HEAD", ... */
    const char *path;   /* without the query */
    struct MHD_Connection *conn;
} request;

typedef void (*handler_fn)(ann_http *h, const request *rq, reply *rp);

typedef struct route {
    const char *path;
    const char *methods; /* the Allow header's value */
    handler_fn fn;
} route;

/* The request state of the operator's routes: a marker, never written. */
static const int seen_marker = 1;

static void say(reply *rp, unsigned status, const char *text)
{
    rp->status = status;
    rp->content_type = "text/plain; charset=utf-8";
    ann_buf_add(&rp->body, text, strlen(text));
}

/* ---------- the routes ---------- */

static void on_healthz(ann_http *h, const request *rq, reply *rp)
{
    (void)h;
    (void)rq;
    say(rp, MHD_HTTP_OK, "ok\n");
}

static void on_readyz(ann_http *h, const request *rq, reply *rp)
{
    (void)rq;
    char why[256];
    if (ann_health_ready(h->o.health, why, sizeof why)) {
        say(rp, MHD_HTTP_OK, "ready\n");
    } else {
        say(rp, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: ");
        ann_buf_add(&rp->body, why, strlen(why));
        ann_buf_add_byte(&rp->body, '\n');
    }
}

static void on_metrics(ann_http *h, const request *rq, reply *rp)
{
    (void)rq;
    uint64_t t0 = ann_metrics_now_ns();
    rp->status = MHD_HTTP_OK;
    rp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    ann_metrics_render(h->o.metrics, &rp->body);
    ann_histogram_observe(h->scrape, ann_metrics_now_ns() - t0);
}

static const route routes[] = {
    {"/healthz", "GET, HEAD", on_healthz},
    {"/readyz", "GET, HEAD", on_readyz},
    {"/metrics", "GET, HEAD", on_metrics},
};

/* ---------- dispatch ---------- */

void ann_http_count(ann_http *h, unsigned status)
{
    unsigned cls = status / 100;
    if (cls >= 1 && cls <= 5)
        ann_counter_add(h->requests[cls - 1], 1);
}

enum MHD_Result ann_http_queue(ann_http *h, struct MHD_Connection *conn, unsigned status,
                               const char *content_type, struct MHD_Response *r)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    ann_http_count(h, status);
    return ret;
}

static enum MHD_Result send_reply(ann_http *h, struct MHD_Connection *conn, reply *rp,
                                  const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(rp->body.len, rp->body.data, MHD_RESPMEM_MUST_COPY);
    ann_buf_release(&rp->body);
    if (!r)
        return MHD_NO;
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = ann_http_queue(h, conn, rp->status, rp->content_type, r);
    MHD_destroy_response(r);
    return ret;
}

/* One of the web viewer's built-in files (only where the API is served). */
static enum MHD_Result send_asset(ann_http *h, struct MHD_Connection *conn, const ann_web_asset *a,
                                  const char *method)
{
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!get && !head) {
        reply rp = {.content_type = "text/plain; charset=utf-8"};
        say(&rp, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
        return send_reply(h, conn, &rp, "GET, HEAD");
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
    ann_viewer_headers(r);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    ann_counter_add(h->requests[1], 1);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    ann_http *h = cls;
    if (ann_jsonapi_owns(url))
        return ann_jsonapi_handle(h, conn, url, method, upload_data, upload_data_size, req_cls);
    if (*req_cls == NULL) {
        *req_cls = (void *)&seen_marker;
        /* A body (no route takes one yet): a small one is read and dropped before the
         * answer, so that the client is not cut off mid-send; a large one is refused. */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (te || (cl && strtoull(cl, NULL, 10) > HTTP_MAX_BODY)) {
            reply rp = {.content_type = "text/plain; charset=utf-8"};
            say(&rp, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
            return send_reply(h, conn, &rp, NULL);
        }
        if (cl && strtoull(cl, NULL, 10) > 0)
            return MHD_YES; /* the body comes next */
    } else if (*upload_data_size) {
        *upload_data_size = 0; /* dropped */
        return MHD_YES;
    }
    reply rp = {.status = MHD_HTTP_NOT_FOUND, .content_type = "text/plain; charset=utf-8"};
    const route *rt = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(routes[i].path, url) == 0)
            rt = &routes[i];
    if (!rt && h->o.svc) {
        const ann_web_asset *a = ann_viewer_lookup(url);
        if (a)
            return send_asset(h, conn, a, method);
    }
    if (!rt) {
        say(&rp, MHD_HTTP_NOT_FOUND, "not found\n");
        return send_reply(h, conn, &rp, NULL);
    }
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!get && !head) {
        say(&rp, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
        return send_reply(h, conn, &rp, rt->methods);
    }
    request rq = {.method = method, .path = url, .conn = conn};
    rt->fn(h, &rq, &rp);
    return send_reply(h, conn, &rp, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    if (*req_cls && *req_cls != (void *)&seen_marker)
        ann_jsonapi_req_free(*req_cls);
    *req_cls = NULL;
}

/* libmicrohttpd's own complaints, as annalsd's. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fprintf(stderr, "annalsd: http: ");
    vfprintf(stderr, fmt, ap);
}

/* ---------- start and stop ---------- */

static char *slurp(const char *path, ann_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ann_err_set(err, ANN_EINVAL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    ann_buf b = ANN_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ann_buf_add(&b, chunk, n);
    fclose(f);
    ann_buf_add_byte(&b, 0);
    return (char *)b.data;
}

/* HOST:PORT or [V6]:PORT -> an address. */
static int parse_listen(const char *listen, struct addrinfo **out, ann_err *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1] || (size_t)(colon - listen) >= sizeof host)
        return ann_err_set(err, ANN_EINVAL, "--http %s: want HOST:PORT", listen);
    size_t n = (size_t)(colon - listen);
    const char *h = listen;
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int rc = getaddrinfo(host, colon + 1, &hints, out);
    if (rc != 0)
        return ann_err_set(err, ANN_EINVAL, "--http %s: %s", listen, gai_strerror(rc));
    return 0;
}

int ann_http_start(const ann_http_opts *o, ann_http **out, ann_err *err)
{
    ann_http *h = ann_xcalloc(1, sizeof *h);
    struct addrinfo *ai = NULL;
    h->o = *o;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if ((o->tls_cert_file != NULL) != (o->tls_key_file != NULL)) {
        ann_err_set(err, ANN_EINVAL, "--tls-cert and --tls-key go together");
        goto fail;
    }
    if (o->tls_cert_file &&
        (!(h->cert = slurp(o->tls_cert_file, err)) || !(h->key = slurp(o->tls_key_file, err))))
        goto fail;
    if (parse_listen(o->listen, &ai, err) != 0)
        goto fail;
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 5; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "code=\"%s\"", classes[i]);
        h->requests[i] =
            ann_metrics_counter(o->metrics, "annals_http_requests_total",
                                "Requests answered on the HTTP port, by status class", labels);
    }
    h->scrape = ann_metrics_histogram(o->metrics, "annals_metrics_scrape_seconds",
                                      "Time to render /metrics", "", ann_metrics_latency_bounds_ns,
                                      ann_metrics_latency_bounds_n, 1e-9);
    if (o->svc && !(h->sse = ann_sse_hub_new(o->svc, o->metrics, err)))
        goto fail;
    /* Suspend and resume: an SSE tail with nothing to send holds no thread (sse.c). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (h->cert)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key},
        {MHD_OPTION_END, 0, NULL},
    };
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTP_MEMORY_LIMIT, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_SECONDS, MHD_OPTION_STRICT_FOR_CLIENT,
        (int)1, MHD_OPTION_ARRAY, h->cert ? tls : tls + 2, MHD_OPTION_END);
    if (!h->d) {
        ann_err_set(err, ANN_EINVAL, "--http %s: cannot listen there", o->listen);
        goto fail;
    }
    freeaddrinfo(ai);
    *out = h;
    return 0;
fail:
    if (ai)
        freeaddrinfo(ai);
    ann_sse_hub_free(h->sse);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->cert);
    free(h->key);
    free(h);
    return -1;
}

void ann_http_stop(ann_http *h)
{
    if (!h)
        return;
    /* No connection may stay suspended when libmicrohttpd stops: the calls under way
     * finish (the store is still open), and the tails end. */
    pthread_mutex_lock(&h->mu);
    while (h->inflight > 0)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    ann_sse_hub_shutdown(h->sse);
    MHD_stop_daemon(h->d);
    ann_sse_hub_free(h->sse);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->cert);
    free(h->key);
    free(h);
}
