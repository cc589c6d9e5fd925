/* The integrity RPCs (docs/integrity.md): GetLogCheckpoint, GetInclusionProof,
 * GetConsistencyProof and SealLog, over the store's integrity ops. */
#include <stdio.h>
#include <string.h>

#include "api/service.h"
#include "api/service_internal.h"
#include "domain/text.h"

/* A proof as `repeated bytes hashes = 1`. */
static void add_hashes(ann_buf *resp, const uint8_t (*h)[32], size_t n)
{
    for (size_t i = 0; i < n; i++)
        ann_buf_add_len_field(resp, 1, h[i], 32);
}

int svc_do_checkpoint(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                      ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1];
    ann_buf note = ANN_BUF_INIT;
    Annals__Wire__V1__GetLogCheckpointRequest *r =
        (Annals__Wire__V1__GetLogCheckpointRequest *)svc_decode(
            &annals__wire__v1__get_log_checkpoint_request__descriptor, req, len, err);
    if (!r)
        return -1;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0 ||
        ann_store_checkpoint(svc->store, t->id, log_id, &note, err) != 0)
        goto done;
    ann_buf_add_len_field(resp, 1, note.data, note.len);
    rc = 0;
done:
    ann_buf_release(&note);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

int svc_do_inclusion(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                     ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1];
    uint64_t id = 0;
    uint8_t proof[ANN_STORE_MAX_PROOF][32];
    size_t n = 0;
    Annals__Wire__V1__GetInclusionProofRequest *r =
        (Annals__Wire__V1__GetInclusionProofRequest *)svc_decode(
            &annals__wire__v1__get_inclusion_proof_request__descriptor, req, len, err);
    if (!r)
        return -1;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0)
        goto done;
    if (ann_entry_id_parse((const char *)r->entry_id.data, r->entry_id.len, false, &id) != 0) {
        ann_err_set(err, ANN_EINVAL, "entry_id: not an entry id (1, 2, ...)");
        goto done;
    }
    if (r->tree_size < 1) {
        ann_err_set(err, ANN_EINVAL, "tree_size: must be at least 1");
        goto done;
    }
    if (ann_store_inclusion_proof(svc->store, t->id, log_id, id, (uint64_t)r->tree_size, proof, &n,
                                  err) != 0)
        goto done;
    add_hashes(resp, (const uint8_t(*)[32])proof, n);
    rc = 0;
done:
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

int svc_do_consistency(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                       ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1];
    uint8_t proof[ANN_STORE_MAX_PROOF][32];
    size_t n = 0;
    Annals__Wire__V1__GetConsistencyProofRequest *r =
        (Annals__Wire__V1__GetConsistencyProofRequest *)svc_decode(
            &annals__wire__v1__get_consistency_proof_request__descriptor, req, len, err);
    if (!r)
        return -1;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0)
        goto done;
    if (r->first_size < 1) {
        ann_err_set(err, ANN_EINVAL, "first_size: must be at least 1");
        goto done;
    }
    if (r->second_size < r->first_size) {
        ann_err_set(err, ANN_EINVAL, "second_size: must be at least first_size");
        goto done;
    }
    if (ann_store_consistency_proof(svc->store, t->id, log_id, (uint64_t)r->first_size,
                                    (uint64_t)r->second_size, proof, &n, err) != 0)
        goto done;
    add_hashes(resp, (const uint8_t(*)[32])proof, n);
    rc = 0;
done:
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

int svc_do_seal(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1];
    ann_buf note = ANN_BUF_INIT;
    Annals__Wire__V1__SealLogRequest *r = (Annals__Wire__V1__SealLogRequest *)svc_decode(
        &annals__wire__v1__seal_log_request__descriptor, req, len, err);
    if (!r)
        return -1;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0 ||
        ann_store_log_seal(svc->store, t->id, log_id, &note, err) != 0)
        goto done;
    ann_buf_add_len_field(resp, 1, note.data, note.len);
    rc = 0;
done:
    ann_buf_release(&note);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}
