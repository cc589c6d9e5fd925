#include "api/status.h"

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
