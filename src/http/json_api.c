/*
 * The JSON API on the HTTP port (docs/http-api.md): each route is one RPC of the service
 * layer (src/api/service.h), the same the gRPC port calls. A request's JSON body, its
 * query parameters and its path become the RPC's protobuf request bytes (pbjson.c); the
 * service authorizes, validates and runs it exactly as for gRPC; its reply bytes become
 * canonical proto3 JSON. Nothing about a log, a tenant or a limit is decided here.
 *
 * Order of checks: the route (404, 405), the key (401), its roles (403), then the body
 * is read (bounded: 413), then decoded (400 naming the field), then the RPC runs.
 */
#include <grpc/status.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annals/v1/annals.pb-c.h"
#include "api/status.h"
#include "http/internal.h"
#include "http/pbjson.h"

#define LOG_SEGMENT_MAX 128 /* a UUID is 36; longer ones are refused by the service anyway */

typedef enum path_kind {
    P_LOGS,          /* /v1/logs */
    P_LOG,           /* /v1/logs/{log} */
    P_ENTRIES,       /* /v1/logs/{log}/entries */
    P_ENTRIES_READ,  /* /v1/logs/{log}/entries:read */
    P_ENTRIES_WRITE, /* /v1/logs/{log}/entries:write */
    P_ENTRIES_TAIL,  /* /v1/logs/{log}/entries:tail */
    P_ENTRIES_REVOKE,
    P_SEARCH,            /* /v1/search */
    P_CHECKPOINT,        /* /v1/logs/{log}/checkpoint (docs/integrity.md) */
    P_PROOF_INCLUSION,   /* /v1/logs/{log}/proofs:inclusion */
    P_PROOF_CONSISTENCY, /* /v1/logs/{log}/proofs:consistency */
    P_SEAL,              /* /v1/logs/{log}/seal */
    P_SHARE,             /* /v1/logs/{log}:share */
} path_kind;

typedef struct route {
    path_kind path;
    const char *method;
    ann_rpc rpc;
    const char *name; /* the RPC, for the operator's log */
    const ProtobufCMessageDescriptor *req, *resp;
    bool body; /* the request comes as the JSON body, else as query parameters */
} route;

static const route routes[] = {
    {P_LOGS, "GET", ANN_RPC_LIST_LOGS, "ListLogs", &annals__v1__list_logs_request__descriptor,
     &annals__v1__list_logs_response__descriptor, false},
    {P_LOGS, "POST", ANN_RPC_CREATE_LOG, "CreateLog", &annals__v1__create_log_request__descriptor,
     &annals__v1__create_log_response__descriptor, true},
    {P_LOG, "GET", ANN_RPC_GET_LOG, "GetLog", &annals__v1__get_log_request__descriptor,
     &annals__v1__get_log_response__descriptor, false},
    {P_LOG, "DELETE", ANN_RPC_DELETE_LOG, "DeleteLog", &annals__v1__delete_log_request__descriptor,
     &annals__v1__delete_log_response__descriptor, false},
    {P_ENTRIES, "GET", ANN_RPC_LIST, "ListLogEntries",
     &annals__v1__list_log_entries_request__descriptor,
     &annals__v1__list_log_entries_response__descriptor, false},
    {P_ENTRIES_READ, "GET", ANN_RPC_READ, "ReadLogEntries",
     &annals__v1__read_log_entries_request__descriptor,
     &annals__v1__read_log_entries_response__descriptor, false},
    {P_ENTRIES_WRITE, "POST", ANN_RPC_WRITE, "WriteLogEntries",
     &annals__v1__write_log_entries_request__descriptor,
     &annals__v1__write_log_entries_response__descriptor, true},
    {P_ENTRIES_REVOKE, "POST", ANN_RPC_REVOKE, "RevokeLogEntries",
     &annals__v1__revoke_log_entries_request__descriptor,
     &annals__v1__revoke_log_entries_response__descriptor, true},
    {P_ENTRIES_TAIL, "GET", ANN_RPC_TAIL, "TailLogEntries",
     &annals__v1__tail_log_entries_request__descriptor,
     &annals__v1__tail_log_entries_response__descriptor, false},
    {P_SEARCH, "GET", ANN_RPC_SEARCH, "SearchLogEntries",
     &annals__v1__search_log_entries_request__descriptor,
     &annals__v1__search_log_entries_response__descriptor, false},
    {P_CHECKPOINT, "GET", ANN_RPC_CHECKPOINT, "GetLogCheckpoint",
     &annals__v1__get_log_checkpoint_request__descriptor,
     &annals__v1__get_log_checkpoint_response__descriptor, false},
    {P_PROOF_INCLUSION, "GET", ANN_RPC_INCLUSION, "GetInclusionProof",
     &annals__v1__get_inclusion_proof_request__descriptor,
     &annals__v1__get_inclusion_proof_response__descriptor, false},
    {P_PROOF_CONSISTENCY, "GET", ANN_RPC_CONSISTENCY, "GetConsistencyProof",
     &annals__v1__get_consistency_proof_request__descriptor,
     &annals__v1__get_consistency_proof_response__descriptor, false},
    {P_SEAL, "POST", ANN_RPC_SEAL, "SealLog", &annals__v1__seal_log_request__descriptor,
     &annals__v1__seal_log_response__descriptor, true},
    {P_SHARE, "POST", ANN_RPC_SHARE, "CreateShareLink",
     &annals__v1__create_share_link_request__descriptor,
     &annals__v1__create_share_link_response__descriptor, true},
};

typedef enum call_state { CALL_NEW, CALL_PENDING, CALL_DONE } call_state;

struct ann_jsonapi_req {
    ann_http *h;
    struct MHD_Connection *conn;
    const route *rt;
    uint64_t t0; /* arrival (ann_metrics_now_ns) */
    char log[LOG_SEGMENT_MAX + 1];
    ann_tenant tenant;
    ann_buf body;
    bool too_large;
    /* The unary call: its request bytes live until it completes; state, rc, resp and err
     * are guarded by h->mu. */
    ann_buf req;
    call_state state;
    int rc;
    ann_buf resp;
    ann_err err;
};

bool ann_jsonapi_owns(const char *url)
{
    return strncmp(url, "/v1/", 4) == 0 || strcmp(url, "/v1") == 0;
}

/* ---------- errors ---------- */

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

/* The HTTP status of a gRPC code, as google.rpc.Code documents it. */
static unsigned http_status(grpc_status_code c)
{
    switch (c) {
    case GRPC_STATUS_OK:
        return 200;
    case GRPC_STATUS_CANCELLED:
        return 499;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_FAILED_PRECONDITION:
    case GRPC_STATUS_OUT_OF_RANGE:
        return 400;
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        return 504;
    case GRPC_STATUS_NOT_FOUND:
        return 404;
    case GRPC_STATUS_ALREADY_EXISTS:
    case GRPC_STATUS_ABORTED:
        return 409;
    case GRPC_STATUS_PERMISSION_DENIED:
        return 403;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        return 429;
    case GRPC_STATUS_UNIMPLEMENTED:
        return 501;
    case GRPC_STATUS_UNAVAILABLE:
        return 503;
    case GRPC_STATUS_UNAUTHENTICATED:
        return 401;
    default:
        return 500;
    }
}

static void error_body(int code, const char *msg, ann_buf *body)
{
    char head[96];
    const char *name = code >= 0 && code < (int)(sizeof code_names / sizeof code_names[0])
                           ? code_names[code]
                           : "UNKNOWN";
    snprintf(head, sizeof head, "{\"code\":%d,\"status\":\"%s\",\"message\":", code, name);
    ann_buf_add(body, head, strlen(head));
    ann_pbjson_add_string(body, msg, strlen(msg));
    ann_buf_add(body, "}", 1);
}

unsigned ann_jsonapi_error(const ann_err *err, const char *what, ann_buf *body, bool *retriable)
{
    ann_status st;
    ann_status_from_err(err, what, &st);
    *retriable = st.retriable;
    error_body((int)st.code, st.msg ? st.msg : "", body);
    return http_status(st.code);
}

static enum MHD_Result send_json(ann_http *h, struct MHD_Connection *conn, unsigned status,
                                 ann_buf *body, bool retriable, const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_COPY);
    ann_buf_release(body);
    if (!r)
        return MHD_NO;
    if (status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (retriable)
        MHD_add_response_header(r, ANN_RETRIABLE_MD, "true");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = ann_http_queue(h, conn, status, "application/json", r);
    MHD_destroy_response(r);
    return ret;
}

/* Per-RPC series of the JSON API (docs/operations.md): a call that reached its route, by
 * the gRPC code it ended with, and its time from arrival to answer. */
static void observe(ann_http *h, const route *rt, int code, uint64_t t0)
{
    ann_metrics *m = h->o.metrics;
    if (!m || !rt)
        return;
    char labels[128];
    snprintf(labels, sizeof labels, "rpc=\"%s\",code=\"%s\"", rt->name,
             code >= 0 && code < (int)(sizeof code_names / sizeof code_names[0]) ? code_names[code]
                                                                                 : "UNKNOWN");
    ann_counter_add(ann_metrics_counter(m, "annals_http_api_requests_total",
                                        "JSON API calls by RPC and final gRPC code", labels),
                    1);
    snprintf(labels, sizeof labels, "rpc=\"%s\"", rt->name);
    ann_histogram_observe(ann_metrics_histogram(m, "annals_http_api_request_seconds",
                                                "JSON API calls: arrival to answer", labels,
                                                ann_metrics_latency_bounds_ns,
                                                ann_metrics_latency_bounds_n, 1e-9),
                          ann_metrics_now_ns() - t0);
}

static int err_code(const ann_err *err, const char *what)
{
    ann_status st;
    ann_status_from_err(err, what, &st);
    return (int)st.code;
}

static enum MHD_Result send_err(ann_http *h, struct MHD_Connection *conn, const ann_err *err,
                                const char *what)
{
    ann_buf body = ANN_BUF_INIT;
    bool retriable;
    unsigned status = ann_jsonapi_error(err, what, &body, &retriable);
    return send_json(h, conn, status, &body, retriable, NULL);
}

/* An answer of the HTTP layer itself (no such route, method, body too large). */
static enum MHD_Result send_plain_err(ann_http *h, struct MHD_Connection *conn, unsigned status,
                                      int code, const char *msg, const char *allow)
{
    ann_buf body = ANN_BUF_INIT;
    error_body(code, msg, &body);
    return send_json(h, conn, status, &body, false, allow);
}

/* ---------- routing ---------- */

/* The path's shape, and its {log} segment; -1 for no route. */
static int parse_path(const char *url, char log[LOG_SEGMENT_MAX + 1])
{
    log[0] = '\0';
    if (strcmp(url, "/v1/logs") == 0)
        return P_LOGS;
    if (strcmp(url, "/v1/search") == 0)
        return P_SEARCH;
    if (strncmp(url, "/v1/logs/", 9) != 0)
        return -1;
    const char *seg = url + 9, *slash = strchr(seg, '/');
    size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
    if (n == 0 || n > LOG_SEGMENT_MAX)
        return n == 0 ? -1 : -2;
    memcpy(log, seg, n);
    log[n] = '\0';
    static const char share[] = ":share";
    if (!slash && n > sizeof share - 1 && strcmp(log + n - (sizeof share - 1), share) == 0) {
        log[n - (sizeof share - 1)] = '\0';
        return P_SHARE;
    }
    if (!slash)
        return P_LOG;
    static const struct {
        const char *tail;
        path_kind k;
    } tails[] = {{"/entries", P_ENTRIES},
                 {"/entries:read", P_ENTRIES_READ},
                 {"/entries:write", P_ENTRIES_WRITE},
                 {"/entries:tail", P_ENTRIES_TAIL},
                 {"/entries:revoke", P_ENTRIES_REVOKE},
                 {"/checkpoint", P_CHECKPOINT},
                 {"/proofs:inclusion", P_PROOF_INCLUSION},
                 {"/proofs:consistency", P_PROOF_CONSISTENCY},
                 {"/seal", P_SEAL}};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++)
        if (strcmp(slash, tails[i].tail) == 0)
            return tails[i].k;
    return -1;
}

/* ---------- the request as JSON ---------- */

typedef struct query_ctx {
    const ProtobufCMessageDescriptor *d;
    json_t *obj;
    ann_err *err;
    int rc;
} query_ctx;

/* The value already given for field f, under any spelling of its name. */
static json_t *existing(const query_ctx *q, const ProtobufCFieldDescriptor *f)
{
    const char *k;
    json_t *v;
    json_object_foreach(q->obj, k, v)
    {
        if (ann_pbjson_field(q->d, k) == f)
            return v;
    }
    return NULL;
}

/* One query parameter into the request object: `name=v`, `list=a&list=b`, `map[k]=v`. */
static enum MHD_Result on_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    query_ctx *q = cls;
    if (q->rc != 0)
        return MHD_NO;
    if (!value)
        value = "";
    char name[128], sub[1024];
    const char *br = strchr(key, '[');
    size_t kl = br ? (size_t)(br - key) : strlen(key);
    if (kl >= sizeof name) {
        q->rc = ann_err_set(q->err, ANN_EINVAL, "query parameter: name too long");
        return MHD_NO;
    }
    memcpy(name, key, kl);
    name[kl] = '\0';
    json_t *v = json_string(value);
    if (!v) {
        q->rc = ann_err_set(q->err, ANN_EINVAL, "%s: not valid UTF-8", name);
        return MHD_NO;
    }
    const ProtobufCFieldDescriptor *f = ann_pbjson_field(q->d, name);
    if (!f) {
        json_decref(v);
        q->rc = ann_err_set(q->err, ANN_EINVAL, "%.100s: unknown query parameter", key);
        return MHD_NO;
    }
    if (br) { /* map[key]=value */
        size_t sl = strlen(br + 1);
        if (f->label != PROTOBUF_C_LABEL_REPEATED || sl == 0 || br[sl] != ']' ||
            sl - 1 >= sizeof sub) {
            json_decref(v);
            q->rc = ann_err_set(q->err, ANN_EINVAL, "%s: want %s[KEY]=VALUE for a map", name, name);
            return MHD_NO;
        }
        memcpy(sub, br + 1, sl - 1);
        sub[sl - 1] = '\0';
        json_t *m = existing(q, f);
        if (!m) {
            m = json_object();
            json_object_set_new(q->obj, name, m);
        }
        if (!json_is_object(m) || json_object_get(m, sub)) {
            json_decref(v);
            q->rc = ann_err_set(q->err, ANN_EINVAL, "%s[%.100s]: given twice", name, sub);
            return MHD_NO;
        }
        json_object_set_new(m, sub, v);
        return MHD_YES;
    }
    json_t *old = existing(q, f);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (!old) {
            old = json_array();
            json_object_set_new(q->obj, name, old);
        }
        if (!json_is_array(old)) {
            json_decref(v);
            q->rc = ann_err_set(q->err, ANN_EINVAL, "%s: want %s=VALUE, repeated", name, name);
            return MHD_NO;
        }
        json_array_append_new(old, v);
        return MHD_YES;
    }
    if (old) {
        json_decref(v);
        q->rc = ann_err_set(q->err, ANN_EINVAL, "%s: given twice", name);
        return MHD_NO;
    }
    json_object_set_new(q->obj, name, v);
    return MHD_YES;
}

/* Sets the path's log id into the request object; a different one there is refused. */
static int set_log_id(json_t *obj, const char *log, ann_err *err)
{
    static const char *const spellings[] = {"logId", "log_id"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(obj, spellings[i]);
        if (!v)
            continue;
        if (!json_is_string(v) || strcmp(json_string_value(v), log) != 0)
            return ann_err_set(err, ANN_EINVAL, "%s: differs from the log in the path",
                               spellings[i]);
        json_object_del(obj, spellings[i]);
    }
    json_t *s = json_string(log);
    if (!s)
        return ann_err_set(err, ANN_EINVAL, "log_id: not a UUID");
    json_object_set_new(obj, "log_id", s);
    return 0;
}

static bool has_query(struct MHD_Connection *conn)
{
    return MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0;
}

/* The request's protobuf bytes from its body or query, and its path. */
static int request_bytes(ann_jsonapi_req *r, struct MHD_Connection *conn, ann_buf *out,
                         ann_err *err)
{
    const route *rt = r->rt;
    json_t *obj = NULL;
    int rc = -1;
    if (rt->body) {
        if (has_query(conn)) {
            ann_err_set(err, ANN_EINVAL,
                        "query parameters: none are taken here (the request "
                        "is the JSON body)");
            goto done;
        }
        if (r->body.len == 0) {
            obj = json_object();
        } else {
            json_error_t je;
            obj = json_loadb((const char *)r->body.data, r->body.len,
                             JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
            if (!obj) {
                ann_err_set(err, ANN_EINVAL, "body: not JSON: %s (line %d, column %d)", je.text,
                            je.line, je.column);
                goto done;
            }
            if (!json_is_object(obj)) {
                ann_err_set(err, ANN_EINVAL, "body: want a JSON object");
                goto done;
            }
        }
    } else {
        obj = json_object();
        query_ctx q = {.d = rt->req, .obj = obj, .err = err};
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, on_query, &q);
        if (q.rc != 0)
            goto done;
    }
    if (rt->path != P_LOGS && rt->path != P_SEARCH && set_log_id(obj, r->log, err) != 0)
        goto done;
    if (rt->rpc == ANN_RPC_TAIL) {
        /* A browser's reconnect says where it was: that wins over the URL's position. */
        const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
        if (last) {
            json_t *s = json_string(last);
            if (!s) {
                ann_err_set(err, ANN_EINVAL, "Last-Event-ID: not an entry id");
                goto done;
            }
            json_object_del(obj, "afterEntryId");
            json_object_set_new(obj, "after_entry_id", s);
        }
    }
    ann_pbjson_in opt = {.strings_for_all = !rt->body};
    rc = ann_pbjson_from_json(rt->req, obj, &opt, NULL, out, err);
done:
    json_decref(obj);
    return rc;
}

/* ---------- the handler ---------- */

/* The service's completion, on whatever thread: keep the outcome and wake the connection.
 * Nothing of r is touched after the resume (libmicrohttpd may answer and free it). */
static void unary_done(void *ud, int rc, ann_buf *resp, const ann_err *err)
{
    ann_jsonapi_req *r = ud;
    ann_http *h = r->h;
    pthread_mutex_lock(&h->mu);
    r->rc = rc;
    if (rc == 0 && resp) {
        r->resp = *resp; /* taken */
        *resp = (ann_buf)ANN_BUF_INIT;
    } else if (rc != 0) {
        r->err = *err;
    }
    r->state = CALL_DONE;
    MHD_resume_connection(r->conn);
    h->inflight--;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* The answer of a completed unary call. */
static enum MHD_Result answer(ann_http *h, struct MHD_Connection *conn, ann_jsonapi_req *r)
{
    ann_err err = r->err;
    ann_buf body = ANN_BUF_INIT;
    if (r->rc != 0 ||
        ann_pbjson_to_json(r->rt->resp, r->resp.data, r->resp.len, &body, &err) != 0) {
        ann_buf_release(&body);
        observe(h, r->rt, err_code(&err, r->rt->name), r->t0);
        return send_err(h, conn, &err, r->rt->name);
    }
    observe(h, r->rt, 0, r->t0);
    return send_json(h, conn, 200, &body, false, NULL);
}

/* Starts the call. A unary one runs on the service (ann_service_unary_async) while the
 * connection is suspended: a command waiting for its store (the group commit; Kafka and
 * the sequencer in distributed mode) holds none of the port's threads. */
static enum MHD_Result run(ann_http *h, struct MHD_Connection *conn, ann_jsonapi_req *r)
{
    ann_err err = {0};
    if (request_bytes(r, conn, &r->req, &err) != 0) {
        observe(h, r->rt, err_code(&err, r->rt->name), r->t0);
        return send_err(h, conn, &err, r->rt->name);
    }
    if (r->rt->rpc == ANN_RPC_TAIL) {
        struct MHD_Response *sr = NULL;
        int rc = ann_sse_open(h->sse, conn, &r->tenant, r->req.data, r->req.len, &sr, &err);
        observe(h, r->rt, rc != 0 ? err_code(&err, r->rt->name) : 0, r->t0); /* opened */
        if (rc != 0)
            return send_err(h, conn, &err, r->rt->name);
        MHD_add_response_header(sr, "X-Accel-Buffering", "no");
        enum MHD_Result ret = ann_http_queue(h, conn, 200, "text/event-stream; charset=utf-8", sr);
        MHD_destroy_response(sr);
        return ret;
    }
    pthread_mutex_lock(&h->mu);
    r->state = CALL_PENDING;
    h->inflight++;
    MHD_suspend_connection(conn); /* before the call: it may complete at once */
    pthread_mutex_unlock(&h->mu);
    ann_service_unary_async(h->o.svc, r->rt->rpc, &r->tenant, r->req.data, r->req.len, unary_done,
                            r);
    return MHD_YES;
}

void ann_jsonapi_req_free(ann_jsonapi_req *r)
{
    if (!r)
        return;
    ann_buf_release(&r->body);
    ann_buf_release(&r->req);
    ann_buf_release(&r->resp);
    free(r);
}

enum MHD_Result ann_jsonapi_handle(ann_http *h, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls)
{
    ann_jsonapi_req *r = *req_cls;
    if (r) { /* the body, piece by piece, then the call, then its answer */
        pthread_mutex_lock(&h->mu);
        call_state st = r->state;
        pthread_mutex_unlock(&h->mu);
        if (st == CALL_DONE)
            return answer(h, conn, r);
        if (st == CALL_PENDING) /* not expected while suspended: nothing to do yet */
            return MHD_YES;
        if (*upload_data_size) {
            if (!r->too_large && r->body.len + *upload_data_size <= ANN_HTTP_MAX_JSON_BODY)
                ann_buf_add(&r->body, upload_data, *upload_data_size);
            else
                r->too_large = true;
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (r->too_large)
            return send_plain_err(h, conn, MHD_HTTP_CONTENT_TOO_LARGE,
                                  GRPC_STATUS_RESOURCE_EXHAUSTED,
                                  "body: larger than 16777216 bytes", NULL);
        return run(h, conn, r);
    }

    char log[LOG_SEGMENT_MAX + 1];
    int kind = parse_path(url, log);
    if (kind == -2) /* what the service says of any such id; nothing is looked up */
        return send_plain_err(h, conn, 400, GRPC_STATUS_INVALID_ARGUMENT, "log_id: not a UUID",
                              NULL);
    if (kind < 0)
        return send_plain_err(h, conn, 404, GRPC_STATUS_NOT_FOUND, "no such endpoint", NULL);
    const route *rt = NULL;
    char allow[64] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if ((int)routes[i].path != kind)
            continue;
        bool head = strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0 &&
                    routes[i].rpc != ANN_RPC_TAIL; /* a stream has no head to give */
        if (strcmp(routes[i].method, method) == 0 || head)
            rt = &routes[i];
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", *allow ? ", " : "",
                 routes[i].method);
    }
    if (!rt)
        return send_plain_err(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED, GRPC_STATUS_UNIMPLEMENTED,
                              "method not allowed here", allow);

    /* The key and its roles, before a byte of the body is read. */
    ann_err err = {0};
    ann_tenant t;
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h->o.svc) {
        ann_err_set(&err, ANN_EUNAVAIL, "no API on this role");
        return send_err(h, conn, &err, rt->name);
    }
    uint64_t t0 = ann_metrics_now_ns();
    if (ann_service_auth(h->o.svc, auth ? auth : "", auth ? strlen(auth) : 0, &t, &err) != 0 ||
        ann_service_authorize(&t, rt->rpc, &err) != 0) {
        observe(h, rt, err_code(&err, rt->name), t0);
        return send_err(h, conn, &err, rt->name);
    }

    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
    if (clen > ANN_HTTP_MAX_JSON_BODY)
        return send_plain_err(h, conn, MHD_HTTP_CONTENT_TOO_LARGE, GRPC_STATUS_RESOURCE_EXHAUSTED,
                              "body: larger than 16777216 bytes", NULL);
    if (te && !rt->body)
        return send_plain_err(h, conn, 400, GRPC_STATUS_INVALID_ARGUMENT,
                              "body: none is taken here", NULL);
    r = ann_xcalloc(1, sizeof *r);
    r->h = h;
    r->conn = conn;
    r->rt = rt;
    r->t0 = t0;
    r->tenant = t;
    memcpy(r->log, log, sizeof r->log);
    *req_cls = r;
    if (clen > 0 || te)
        return MHD_YES; /* the body comes next */
    return run(h, conn, r);
}
