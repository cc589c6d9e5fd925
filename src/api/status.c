#include "api/status.h"

#include <stdio.h>

grpc_status_code ann_status_from_code(ann_code code)
{
    switch (code) {
    case ANN_OK:
        return GRPC_STATUS_OK;
    case ANN_EINVAL:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case ANN_ENOTFOUND:
        return GRPC_STATUS_NOT_FOUND;
    case ANN_EUNAUTH:
        return GRPC_STATUS_UNAUTHENTICATED;
    case ANN_EPERM:
        return GRPC_STATUS_PERMISSION_DENIED;
    case ANN_EPRECOND:
        return GRPC_STATUS_FAILED_PRECONDITION;
    case ANN_EUNIMPL:
        return GRPC_STATUS_UNIMPLEMENTED;
    case ANN_EEXISTS:
        return GRPC_STATUS_ALREADY_EXISTS;
    case ANN_ERANGE:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case ANN_ENOSPC:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case ANN_EUNAVAIL:
    case ANN_EIO: /* retriable: writes are idempotent by insert_id */
        return GRPC_STATUS_UNAVAILABLE;
    case ANN_ECORRUPT:
        return GRPC_STATUS_DATA_LOSS;
    case ANN_EINTERNAL:
        return GRPC_STATUS_INTERNAL;
    }
    return GRPC_STATUS_UNKNOWN;
}

void ann_status_from_err(const ann_err *err, const char *what, ann_status *out)
{
    out->code = ann_status_from_code(err->code);
    out->retriable = (ann_code_flags(err->code) & ANN_ERR_RETRIABLE) != 0;
    if (ann_code_is_internal(err->code)) {
        fprintf(stderr, "annalsd: %s: %s: %s\n", what ? what : "call", ann_code_name(err->code),
                err->msg);
        out->msg = ann_code_public_msg(err->code);
    } else {
        out->msg = err->msg;
    }
}
