#include "client/rpc.h"

#include <stdlib.h>

/* Packs a message into a fresh heap buffer; NULL when out of memory. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        return NULL;
    *len = protobuf_c_message_pack(m, p);
    return p;
}

int ann_rpc_call(ann_client *c, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                 ProtobufCMessage **resp, ann_rpc_status *st)
{
    ann_buf out = {0};
    size_t len = 0;
    uint8_t *bytes = pack(req, &len);
    int rc = -1;

    *resp = NULL;
    if (!bytes)
        return ann_rpc_fail(st, ANN_RPC_RESOURCE_EXHAUSTED, "out of memory packing a request");
    if (ann_client_unary(c, method, bytes, len, timeout_ms, &out, st) < 0)
        goto done;
    *resp = protobuf_c_message_unpack(resp_desc, NULL, out.len, out.data);
    if (!*resp) {
        ann_rpc_fail(st, ANN_RPC_INTERNAL, "malformed response from the server (%zu bytes)",
                     out.len);
        goto done;
    }
    rc = 0;
done:
    ann_buf_release(&out);
    free(bytes);
    return rc;
}

#define TYPED_CALL(fn, Req, Resp, method, desc)                                                    \
    int fn(ann_client *c, const Req *req, int64_t timeout_ms, Resp **resp, ann_rpc_status *st)     \
    {                                                                                              \
        ProtobufCMessage *m = NULL;                                                                \
        int rc = ann_rpc_call(c, method, &req->base, &desc, timeout_ms, &m, st);                   \
        *resp = (Resp *)m;                                                                         \
        return rc;                                                                                 \
    }

TYPED_CALL(ann_rpc_create_log, Annals__V1__CreateLogRequest, Annals__Wire__V1__CreateLogResponse,
           ANN_METHOD_CREATE_LOG, annals__wire__v1__create_log_response__descriptor)
TYPED_CALL(ann_rpc_get_log, Annals__V1__GetLogRequest, Annals__Wire__V1__GetLogResponse,
           ANN_METHOD_GET_LOG, annals__wire__v1__get_log_response__descriptor)
TYPED_CALL(ann_rpc_delete_log, Annals__V1__DeleteLogRequest, Annals__Wire__V1__DeleteLogResponse,
           ANN_METHOD_DELETE_LOG, annals__wire__v1__delete_log_response__descriptor)
TYPED_CALL(ann_rpc_write_log_entries, Annals__Wire__V1__WriteLogEntriesRequest,
           Annals__Wire__V1__WriteLogEntriesResponse, ANN_METHOD_WRITE_LOG_ENTRIES,
           annals__wire__v1__write_log_entries_response__descriptor)
TYPED_CALL(ann_rpc_revoke_log_entries, Annals__V1__RevokeLogEntriesRequest,
           Annals__Wire__V1__RevokeLogEntriesResponse, ANN_METHOD_REVOKE_LOG_ENTRIES,
           annals__wire__v1__revoke_log_entries_response__descriptor)
TYPED_CALL(ann_rpc_set_legal_hold, Annals__V1__SetLegalHoldRequest,
           Annals__Wire__V1__SetLegalHoldResponse, ANN_METHOD_SET_LEGAL_HOLD,
           annals__wire__v1__set_legal_hold_response__descriptor)
TYPED_CALL(ann_rpc_list_log_entries, Annals__V1__ListLogEntriesRequest,
           Annals__Wire__V1__ListLogEntriesResponse, ANN_METHOD_LIST_LOG_ENTRIES,
           annals__wire__v1__list_log_entries_response__descriptor)

int ann_rpc_tail_start(ann_client *c, const Annals__V1__TailLogEntriesRequest *req,
                       ann_client_stream **out, ann_rpc_status *st)
{
    size_t len = 0;
    uint8_t *bytes = pack(&req->base, &len);
    int rc;

    *out = NULL;
    if (!bytes)
        return ann_rpc_fail(st, ANN_RPC_RESOURCE_EXHAUSTED, "out of memory packing a request");
    rc = ann_client_stream_start(c, ANN_METHOD_TAIL_LOG_ENTRIES, bytes, len, 0, out, st);
    free(bytes);
    return rc;
}

int ann_rpc_tail_next(ann_client_stream *s, int wait_ms,
                      Annals__Wire__V1__TailLogEntriesResponse **resp, ann_rpc_status *st)
{
    ann_buf msg = {0};
    int r = ann_client_stream_next(s, wait_ms, &msg, st);

    *resp = NULL;
    if (r == ANN_STREAM_MSG) {
        *resp = annals__wire__v1__tail_log_entries_response__unpack(NULL, msg.len, msg.data);
        if (!*resp) {
            ann_client_stream_cancel(s);
            r = ANN_STREAM_END;
            ann_rpc_fail(st, ANN_RPC_INTERNAL, "malformed tail message from the server (%zu bytes)",
                         msg.len);
        }
    }
    ann_buf_release(&msg);
    return r;
}
