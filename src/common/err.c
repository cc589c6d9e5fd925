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
    }
    return "unknown";
}
