/*
 * Typed calls of the annals.v1 API on top of ann_client, with protobuf-c.
 *
 * Requests use the public types (annals/v1/annals.pb-c.h). Responses are
 * decoded with the wire view of the same messages (src/api/wire.proto:
 * identical field numbers, but `bytes` for every string), because protobuf-c
 * would cut a `string` at its first NUL byte and checks no UTF-8: a reader
 * must see every byte the server sent, and validate or escape it.
 *
 * Each function packs the request, makes the call and unpacks the response.
 * On success (status OK) *resp owns an unpacked message that the caller frees
 * with protobuf_c_message_free_unpacked(&(*resp)->base, NULL); on failure
 * *resp is NULL and st holds the status. A response that does not parse is
 * reported as INTERNAL ("malformed response").
 *
 * Callers must not put NUL bytes in the C strings of a public-typed request.
 */
#ifndef ANN_CLIENT_RPC_H
#define ANN_CLIENT_RPC_H

#include "annals/v1/annals.pb-c.h"
#include "wire.pb-c.h"
#include "client/client.h"

#define ANN_METHOD_CREATE_LOG "/annals.v1.LoggingCommandService/CreateLog"
#define ANN_METHOD_DELETE_LOG "/annals.v1.LoggingCommandService/DeleteLog"
#define ANN_METHOD_WRITE_LOG_ENTRIES "/annals.v1.LoggingCommandService/WriteLogEntries"
#define ANN_METHOD_REVOKE_LOG_ENTRIES "/annals.v1.LoggingCommandService/RevokeLogEntries"
#define ANN_METHOD_LIST_LOG_ENTRIES "/annals.v1.LoggingQueryService/ListLogEntries"
#define ANN_METHOD_GET_LOG "/annals.v1.LoggingQueryService/GetLog"
#define ANN_METHOD_TAIL_LOG_ENTRIES "/annals.v1.LoggingQueryService/TailLogEntries"
#define ANN_METHOD_LIST_LOGS "/annals.v1.LoggingQueryService/ListLogs"
#define ANN_METHOD_READ_LOG_ENTRIES "/annals.v1.LoggingQueryService/ReadLogEntries"
#define ANN_METHOD_SEARCH_LOG_ENTRIES "/annals.v1.LoggingQueryService/SearchLogEntries"
#define ANN_METHOD_CREATE_SHARE_LINK "/annals.v1.LoggingQueryService/CreateShareLink"

/* Any unary call: packs `req`, calls `method` and unpacks the response as a
 * `resp_desc` message (any descriptor). Ownership as described above. */
int ann_rpc_call(ann_client *c, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                 ProtobufCMessage **resp, ann_rpc_status *st);

int ann_rpc_create_log(ann_client *c, const Annals__V1__CreateLogRequest *req, int64_t timeout_ms,
                       Annals__Wire__V1__CreateLogResponse **resp, ann_rpc_status *st);
int ann_rpc_get_log(ann_client *c, const Annals__V1__GetLogRequest *req, int64_t timeout_ms,
                    Annals__Wire__V1__GetLogResponse **resp, ann_rpc_status *st);
int ann_rpc_delete_log(ann_client *c, const Annals__V1__DeleteLogRequest *req, int64_t timeout_ms,
                       Annals__Wire__V1__DeleteLogResponse **resp, ann_rpc_status *st);
/* Writes go out in the wire view too, so payload bytes (NUL included) are sent
 * exactly. */
int ann_rpc_write_log_entries(ann_client *c, const Annals__Wire__V1__WriteLogEntriesRequest *req,
                              int64_t timeout_ms, Annals__Wire__V1__WriteLogEntriesResponse **resp,
                              ann_rpc_status *st);
int ann_rpc_revoke_log_entries(ann_client *c, const Annals__V1__RevokeLogEntriesRequest *req,
                               int64_t timeout_ms,
                               Annals__Wire__V1__RevokeLogEntriesResponse **resp,
                               ann_rpc_status *st);
int ann_rpc_list_log_entries(ann_client *c, const Annals__V1__ListLogEntriesRequest *req,
                             int64_t timeout_ms, Annals__Wire__V1__ListLogEntriesResponse **resp,
                             ann_rpc_status *st);

/* Starts TailLogEntries (no deadline). *out as ann_client_stream_start(). */
int ann_rpc_tail_start(ann_client *c, const Annals__V1__TailLogEntriesRequest *req,
                       ann_client_stream **out, ann_rpc_status *st);

/* Next tail message, as ann_client_stream_next(); on ANN_STREAM_MSG *resp owns
 * the unpacked message. A message that does not parse cancels the call and
 * reports END with INTERNAL. */
int ann_rpc_tail_next(ann_client_stream *s, int wait_ms,
                      Annals__Wire__V1__TailLogEntriesResponse **resp, ann_rpc_status *st);

#endif
