/*
 * What the RPC handlers of service.c (commands, GetLog) and query.c (reads, search,
 * tails) share: decoding untrusted requests, validating common fields, encoding replies.
 */
#ifndef ANN_API_SERVICE_INTERNAL_H
#define ANN_API_SERVICE_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "api/service.h"
#include "common/buf.h"
#include "common/err.h"
#include "store/store.h"
#include "wire.pb-c.h"

int64_t svc_now_ns(void);
void svc_new_uuid(char out[ANN_UUID_LEN + 1]);

/* Untrusted bytes -> message, refusing what protobuf-c cannot safely unpack. */
ProtobufCMessage *svc_decode(const ProtobufCMessageDescriptor *d, const uint8_t *req, size_t len,
                             ann_err *err);

/* Canonical (lower-case) log id from the request's bytes; `field` names it in errors. */
int svc_parse_log_id(const ProtobufCBinaryData *f, const char *field, char out[ANN_UUID_LEN + 1],
                     ann_err *err);
int svc_check_text(const ProtobufCBinaryData *f, const char *field, ann_err *err);
int svc_check_labels(Annals__Wire__V1__Label **labels, size_t n, const char *field, ann_err *err);

void svc_add_entry_id(ann_buf *b, uint32_t field, uint64_t id);
/* One LogEntry (field 1 of the reply) for log_id; tmp is scratch. */
void svc_encode_entry(ann_buf *out, const char *log_id, const ann_entry *e, ann_buf *tmp);
void svc_encode_log(ann_buf *out, uint32_t field, const ann_log_meta *m);

/* The read RPCs (query.c). */
int svc_do_list(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                ann_buf *resp, ann_err *err);
int svc_do_read(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                ann_buf *resp, ann_err *err);
int svc_do_list_logs(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                     ann_buf *resp, ann_err *err);
int svc_do_search(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                  ann_buf *resp, ann_err *err);
/* integrity.c */
int svc_do_checkpoint(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                      ann_buf *resp, ann_err *err);
int svc_do_inclusion(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                     ann_buf *resp, ann_err *err);
int svc_do_consistency(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                       ann_buf *resp, ann_err *err);
int svc_do_seal(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                ann_buf *resp, ann_err *err);

/* Share links (share.c). */
#define ANN_SHARE_TTL_DEFAULT_S (7 * 86400)
#define ANN_SHARE_TTL_MAX_S (90 * 86400)
int svc_do_share(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                 ann_buf *resp, ann_err *err);
bool ann_share_token_is(const char *tok, size_t len);
/* The tenant a share token stands for (reader role, share_log and its range), or
 * UNAUTHENTICATED exactly like an unknown key when it is altered, foreign or expired. */
int ann_share_auth(ann_service *svc, const char *tok, size_t len, ann_tenant *out, ann_err *err);
/* A tail's periodic check of a share link: its expiry. */
int ann_share_recheck(const ann_tenant *t, ann_err *err);
/* NOT_FOUND, exactly as a missing log, for a log outside a share link's scope. */
int svc_share_log_check(const ann_tenant *t, const char *log_id, ann_err *err);
/* Whether entry_id is one the caller may see (always, for a key). */
bool svc_share_covers(const ann_tenant *t, uint64_t entry_id);

#endif
