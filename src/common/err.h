/*
 * ann_err: the one error convention of annals.
 *
 * Functions return 0 on success and a negative value on failure; when they
 * fail they fill the caller's `ann_err` with a code and a message that a user
 * can act on (for bad input it names the field). The gRPC surface maps codes
 * onto gRPC status codes in exactly one place (src/api/status.c).
 */
#ifndef ANN_COMMON_ERR_H
#define ANN_COMMON_ERR_H

#include <stddef.h>

typedef enum ann_code {
    ANN_OK = 0,
    ANN_EINVAL,    /* bad input from the caller: INVALID_ARGUMENT */
    ANN_ENOTFOUND, /* no such tenant-visible object: NOT_FOUND */
    ANN_EUNAUTH,   /* missing or unknown credentials: UNAUTHENTICATED */
    ANN_EEXISTS,   /* ALREADY_EXISTS */
    ANN_ERANGE,    /* a limit of the service was reached: RESOURCE_EXHAUSTED */
    ANN_EUNAVAIL,  /* try again later: UNAVAILABLE */
    ANN_EIO,       /* storage failed: INTERNAL */
    ANN_EINTERNAL, /* a bug or an impossible state: INTERNAL */
    ANN_ECORRUPT,  /* stored data failed its checksum: DATA_LOSS */
} ann_code;

typedef struct ann_err {
    ann_code code;
    char msg[256];
} ann_err;

/* Fills `err` (if not NULL) and returns -1, so callers can write
 * `return ann_err_set(err, ANN_EINVAL, "entries[%zu].insert_id: ...", i);` */
int ann_err_set(ann_err *err, ann_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets `err` to ANN_OK with an empty message. */
void ann_err_clear(ann_err *err);

/* A short stable name for a code ("invalid", "not_found", ...). */
const char *ann_code_name(ann_code code);

#endif
