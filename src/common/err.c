#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

int ann_err_set(ann_err *err, ann_code code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void ann_err_clear(ann_err *err)
{
    if (err) {
        err->code = ANN_OK;
        err->msg[0] = '\0';
    }
}

const char *ann_code_name(ann_code code)
{
    switch (code) {
    case ANN_OK:
        return "ok";
    case ANN_EINVAL:
        return "invalid";
    case ANN_ENOTFOUND:
        return "not_found";
    case ANN_EUNAUTH:
        return "unauthenticated";
    case ANN_EEXISTS:
        return "already_exists";
    case ANN_ERANGE:
        return "resource_exhausted";
    case ANN_EUNAVAIL:
        return "unavailable";
    case ANN_EIO:
        return "io";
    case ANN_EINTERNAL:
        return "internal";
    case ANN_ECORRUPT:
        return "corrupt";
    case ANN_ENOSPC:
        return "storage_full";
    case ANN_EPERM:
        return "permission_denied";
    case ANN_EPRECOND:
        return "failed_precondition";
    case ANN_EUNIMPL:
        return "unimplemented";
    }
    return "unknown";
}

unsigned ann_code_flags(ann_code code)
{
    switch (code) {
    case ANN_EUNAVAIL:
    case ANN_ENOSPC:
        return ANN_ERR_RETRIABLE;
    case ANN_EIO:
        return ANN_ERR_RETRIABLE | ANN_ERR_OUTCOME_UNKNOWN;
    case ANN_EINTERNAL:
    case ANN_ECORRUPT:
        return ANN_ERR_FATAL;
    default:
        return 0;
    }
}

int ann_code_is_internal(ann_code code)
{
    switch (code) {
    case ANN_EUNAVAIL:
    case ANN_EIO:
    case ANN_EINTERNAL:
    case ANN_ECORRUPT:
    case ANN_ENOSPC:
        return 1;
    default:
        return 0;
    }
}

const char *ann_code_public_msg(ann_code code)
{
    switch (code) {
    case ANN_EUNAVAIL:
        return "the server is busy or shutting down; nothing was done; retry";
    case ANN_EIO:
        return "storage failed; the request may or may not have taken effect; retry it "
               "unchanged (writes keep their insert_ids, so nothing is stored twice)";
    case ANN_EINTERNAL:
        return "internal error; the operator's log has the details";
    case ANN_ECORRUPT:
        return "stored data failed its checksum; the operator's log has the details";
    case ANN_ENOSPC:
        return "the server's storage is full; nothing was stored; retry once space is freed";
    default:
        return "";
    }
}
