#include "client/client.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_RECV (64 * 1024 * 1024)

struct ann_client {
    grpc_channel *channel;
    grpc_slice auth_key;   /* "authorization" */
    grpc_slice auth_value; /* "Bearer <token>" */
    int has_auth;
};

/* Tags of the operations of a streaming call (any distinct pointers do). */
static char tag_send, tag_status, tag_recv, tag_unary;

const char *ann_rpc_code_name(int code)
{
    static const char *const names[] = {
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
    if (code < 0 || (size_t)code >= sizeof names / sizeof names[0])
        return "UNKNOWN_CODE";
    return names[code];
}

int ann_rpc_fail(ann_rpc_status *st, int code, const char *fmt, ...)
{
    if (st) {
        va_list ap;
        st->code = code;
        st->retriable = 0;
        va_start(ap, fmt);
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void status_ok(ann_rpc_status *st)
{
    if (st) {
        st->code = ANN_RPC_OK;
        st->msg[0] = '\0';
        st->retriable = 0;
    }
}

/* Copies the server's status into st. NUL bytes would cut the message
 * short, so they become '?'; everything else stays for the caller to escape. */
static void status_from_grpc(ann_rpc_status *st, grpc_status_code code, grpc_slice details,
                             const grpc_metadata_array *trailing)
{
    size_t n = GRPC_SLICE_LENGTH(details);
    if (!st)
        return;
    st->code = (int)code;
    st->retriable = 0;
    for (size_t i = 0; trailing && i < trailing->count; i++)
        if (grpc_slice_str_cmp(trailing->metadata[i].key, "annals-retriable") == 0 &&
            grpc_slice_str_cmp(trailing->metadata[i].value, "true") == 0)
            st->retriable = 1;
    if (n >= sizeof st->msg)
        n = sizeof st->msg - 1;
    memcpy(st->msg, GRPC_SLICE_START_PTR(details), n);
    for (size_t i = 0; i < n; i++)
        if (st->msg[i] == '\0')
            st->msg[i] = '?';
    st->msg[n] = '\0';
}

/* Moves the bytes of a received message into `out` and destroys `bb`. */
static int take_message(grpc_byte_buffer *bb, ann_buf *out, ann_rpc_status *st)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        grpc_byte_buffer_destroy(bb);
        return ann_rpc_fail(st, ANN_RPC_INTERNAL, "cannot read the response message");
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    size_t n = GRPC_SLICE_LENGTH(all);
    out->len = 0;
    ann_buf_add(out, GRPC_SLICE_START_PTR(all), n);
    grpc_slice_unref(all);
    grpc_byte_buffer_reader_destroy(&reader);
    grpc_byte_buffer_destroy(bb);
    return 0;
}

static gpr_timespec deadline_after(int64_t ms)
{
    if (ms <= 0)
        return gpr_inf_future(GPR_CLOCK_REALTIME);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Shuts a completion queue down, drains it and destroys it. Every operation
 * on it must have completed already. */
static void cq_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

int ann_client_new(const ann_client_opts *opts, ann_client **out, ann_rpc_status *st)
{
    ann_client *c = NULL;
    grpc_channel_credentials *creds = NULL;
    char *bearer = NULL;
    int rc = -1;

    *out = NULL;
    if (!opts || !opts->addr || !opts->addr[0])
        return ann_rpc_fail(st, ANN_RPC_INVALID_ARGUMENT, "address: empty");
    c = calloc(1, sizeof *c);
    if (!c)
        return ann_rpc_fail(st, ANN_RPC_RESOURCE_EXHAUSTED, "out of memory");
    grpc_init();

    if (opts->token && opts->token[0]) {
        size_t n = strlen(opts->token) + sizeof "Bearer ";
        bearer = malloc(n);
        if (!bearer) {
            ann_rpc_fail(st, ANN_RPC_RESOURCE_EXHAUSTED, "out of memory");
            goto done;
        }
        snprintf(bearer, n, "Bearer %s", opts->token);
        c->auth_key = grpc_slice_from_static_string("authorization");
        c->auth_value = grpc_slice_from_copied_string(bearer);
        c->has_auth = 1;
        if (!grpc_header_nonbin_value_is_legal(c->auth_value)) {
            ann_rpc_fail(st, ANN_RPC_INVALID_ARGUMENT,
                         "token: contains bytes that are not allowed in a header");
            goto done;
        }
    }

    grpc_arg args[6];
    size_t nargs = 0;
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[nargs++].value.integer =
        opts->max_recv_bytes > 0 ? opts->max_recv_bytes : DEFAULT_MAX_RECV;
    args[nargs].type = GRPC_ARG_STRING;
    args[nargs].key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING;
    args[nargs++].value.string = (char *)"annals-c/1";
    /* Reconnect quickly after a server restart: callers retry on their own. */
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
    args[nargs++].value.integer = 100;
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
    args[nargs++].value.integer = 100;
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    args[nargs++].value.integer = 1000;
    if (opts->own_connection) {
        args[nargs].type = GRPC_ARG_INTEGER;
        args[nargs].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
        args[nargs++].value.integer = 1;
    }
    grpc_channel_args chargs = {.num_args = nargs, .args = args};

    if (opts->tls)
        creds = grpc_ssl_credentials_create(opts->tls_roots_pem, NULL, NULL, NULL);
    else
        creds = grpc_insecure_credentials_create();
    if (!creds) {
        ann_rpc_fail(st, ANN_RPC_INTERNAL, "cannot create channel credentials");
        goto done;
    }
    c->channel = grpc_channel_create(opts->addr, creds, &chargs);
    if (!c->channel) {
        ann_rpc_fail(st, ANN_RPC_INVALID_ARGUMENT, "address: cannot create a channel");
        goto done;
    }
    *out = c;
    c = NULL;
    status_ok(st);
    rc = 0;
done:
    if (creds)
        grpc_channel_credentials_release(creds);
    free(bearer);
    ann_client_free(c);
    return rc;
}

void ann_client_free(ann_client *c)
{
    if (!c)
        return;
    if (c->channel)
        grpc_channel_destroy(c->channel);
    if (c->has_auth) {
        grpc_slice_unref(c->auth_key);
        grpc_slice_unref(c->auth_value);
    }
    free(c);
    grpc_shutdown();
}

/* Fills op with the send-initial-metadata op carrying the authorization. */
static void op_send_metadata(const ann_client *c, grpc_metadata *md, grpc_op *op)
{
    memset(op, 0, sizeof *op);
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->has_auth) {
        memset(md, 0, sizeof *md);
        md->key = c->auth_key;
        md->value = c->auth_value;
        op->data.send_initial_metadata.count = 1;
        op->data.send_initial_metadata.metadata = md;
    }
}

static grpc_byte_buffer *make_message(const void *req, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer(req ? (const char *)req : "", len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

int ann_client_unary(ann_client *c, const char *method, const void *req, size_t req_len,
                     int64_t timeout_ms, ann_buf *resp, ann_rpc_status *st)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_call *call = NULL;
    grpc_byte_buffer *send_bb = NULL, *recv_bb = NULL;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_metadata md;
    grpc_op ops[6];
    int rc = -1;

    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                    grpc_slice_from_static_string(method), NULL,
                                    deadline_after(timeout_ms), NULL);
    if (!call) {
        ann_rpc_fail(st, ANN_RPC_INTERNAL, "cannot create a call to %s", method);
        goto done;
    }
    send_bb = make_message(req, req_len);
    memset(ops, 0, sizeof ops);
    op_send_metadata(c, &md, &ops[0]);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, &tag_unary, NULL);
    if (e != GRPC_CALL_OK) {
        ann_rpc_fail(st, ANN_RPC_INTERNAL, "cannot start the call: %s",
                     grpc_call_error_to_string(e));
        goto done;
    }
    grpc_event ev;
    do {
        ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    } while (ev.type != GRPC_OP_COMPLETE || ev.tag != &tag_unary);
    if (!ev.success) {
        ann_rpc_fail(st, ANN_RPC_INTERNAL, "the call's operations failed");
        goto done;
    }
    if (status != GRPC_STATUS_OK) {
        status_from_grpc(st, status, details, &trailing_md);
        goto done;
    }
    if (!recv_bb) {
        ann_rpc_fail(st, ANN_RPC_INTERNAL, "the server sent no response message");
        goto done;
    }
    rc = take_message(recv_bb, resp, st);
    recv_bb = NULL;
    if (rc == 0)
        status_ok(st);
done:
    if (recv_bb)
        grpc_byte_buffer_destroy(recv_bb);
    if (send_bb)
        grpc_byte_buffer_destroy(send_bb);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    if (call)
        grpc_call_unref(call);
    cq_destroy(cq);
    return rc;
}

struct ann_client_stream {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata md;
    grpc_metadata_array initial_md, trailing_md;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_status_code status;
    grpc_slice details;
    int pending;      /* batches started and not yet completed */
    int got_status;   /* RECV_STATUS_ON_CLIENT completed */
    int recv_pending; /* a RECV_MESSAGE batch is outstanding */
    int reads;        /* RECV_MESSAGE batches started so far */
    int ended;        /* END was reported */
};

int ann_client_stream_start(ann_client *c, const char *method, const void *req, size_t req_len,
                            int64_t timeout_ms, ann_client_stream **out, ann_rpc_status *st)
{
    ann_client_stream *s = calloc(1, sizeof *s);
    grpc_op ops[3];
    grpc_call_error e;

    *out = NULL;
    if (!s)
        return ann_rpc_fail(st, ANN_RPC_RESOURCE_EXHAUSTED, "out of memory");
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->details = grpc_empty_slice();
    s->status = GRPC_STATUS_UNKNOWN;
    s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
                                       grpc_slice_from_static_string(method), NULL,
                                       deadline_after(timeout_ms), NULL);
    if (!s->call) {
        ann_rpc_fail(st, ANN_RPC_INTERNAL, "cannot create a call to %s", method);
        goto fail;
    }
    s->send_bb = make_message(req, req_len);
    memset(ops, 0, sizeof ops);
    op_send_metadata(c, &s->md, &ops[0]);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    e = grpc_call_start_batch(s->call, ops, 3, &tag_send, NULL);
    if (e != GRPC_CALL_OK)
        goto fail_batch;
    s->pending++;
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    ops[0].data.recv_status_on_client.status = &s->status;
    ops[0].data.recv_status_on_client.status_details = &s->details;
    e = grpc_call_start_batch(s->call, ops, 1, &tag_status, NULL);
    if (e != GRPC_CALL_OK)
        goto fail_batch;
    s->pending++;
    *out = s;
    status_ok(st);
    return 0;
fail_batch:
    ann_rpc_fail(st, ANN_RPC_INTERNAL, "cannot start the call: %s", grpc_call_error_to_string(e));
fail:
    ann_client_stream_free(s);
    return -1;
}

/* Accounts for one completed batch. */
static void stream_complete(ann_client_stream *s, void *tag)
{
    s->pending--;
    if (tag == &tag_status)
        s->got_status = 1;
    else if (tag == &tag_recv)
        s->recv_pending = 0;
}

int ann_client_stream_next(ann_client_stream *s, int wait_ms, ann_buf *msg, ann_rpc_status *st)
{
    if (s->ended)
        goto end;
    if (!s->recv_pending) {
        grpc_op ops[2];
        size_t n = 0;
        memset(ops, 0, sizeof ops);
        if (s->reads == 0) {
            ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
            ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
        }
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n++].data.recv_message.recv_message = &s->recv_bb;
        s->recv_bb = NULL;
        grpc_call_error e = grpc_call_start_batch(s->call, ops, n, &tag_recv, NULL);
        if (e != GRPC_CALL_OK) {
            /* Cannot read any more: finish the call and report its status. */
            grpc_call_cancel(s->call, NULL);
            goto wait_status;
        }
        s->reads++;
        s->pending++;
        s->recv_pending = 1;
    }
    gpr_timespec deadline = wait_ms < 0 ? gpr_inf_future(GPR_CLOCK_REALTIME)
                                        : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                       gpr_time_from_millis(wait_ms, GPR_TIMESPAN));
    while (s->recv_pending) {
        grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            return ANN_STREAM_TIMEOUT;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        stream_complete(s, ev.tag);
    }
    if (s->recv_bb) {
        grpc_byte_buffer *bb = s->recv_bb;
        s->recv_bb = NULL;
        if (take_message(bb, msg, st) < 0) {
            grpc_call_cancel(s->call, NULL);
            s->ended = 1;
            /* Keep the local failure as the final status. */
            while (!s->got_status) {
                grpc_event ev =
                    grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type == GRPC_OP_COMPLETE)
                    stream_complete(s, ev.tag);
            }
            s->status = (grpc_status_code)st->code;
            grpc_slice_unref(s->details);
            s->details = grpc_slice_from_copied_string(st->msg);
            return ANN_STREAM_END;
        }
        status_ok(st);
        return ANN_STREAM_MSG;
    }
wait_status:
    /* No message: the server is done; its status follows (or has come). */
    while (!s->got_status) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            stream_complete(s, ev.tag);
    }
    s->ended = 1;
end:
    status_from_grpc(st, s->status, s->details, &s->trailing_md);
    return ANN_STREAM_END;
}

void ann_client_stream_cancel(ann_client_stream *s)
{
    if (s && s->call && !s->got_status)
        grpc_call_cancel(s->call, NULL);
}

void ann_client_stream_free(ann_client_stream *s)
{
    if (!s)
        return;
    if (s->call) {
        if (!s->got_status)
            grpc_call_cancel(s->call, NULL);
        while (s->pending > 0) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_OP_COMPLETE)
                stream_complete(s, ev.tag);
        }
        grpc_call_unref(s->call);
    }
    if (s->recv_bb)
        grpc_byte_buffer_destroy(s->recv_bb);
    if (s->send_bb)
        grpc_byte_buffer_destroy(s->send_bb);
    grpc_slice_unref(s->details);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    cq_destroy(s->cq);
    free(s);
}
