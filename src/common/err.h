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

/*
 * Codes come in two families.
 *  - The caller's: EINVAL, ENOTFOUND, EUNAUTH, EEXISTS, ERANGE, EPERM, EPRECOND. Their message is
 * for the client and names the field or the condition.
 *  - The server's: EUNAVAIL, ENOSPC, EIO, EINTERNAL, ECORRUPT. Their message is for the
 *    operator's log only (it may name files); the client reads a fixed text chosen by
 *    the code (ann_code_public_msg), never a path or an internal id.
 * Each code carries flags (ann_code_flags), as librdkafka's errors do: whether the same
 * request may succeed later (retriable), whether a write may have taken effect although
 * it failed (outcome unknown: retry it with the same insert_ids, which makes it safe),
 * and whether nothing will succeed until an operator acts (fatal).
 */
typedef enum ann_code {
    ANN_OK = 0,
    ANN_EINVAL,    /* bad input from the caller: INVALID_ARGUMENT */
    ANN_ENOTFOUND, /* no such tenant-visible object: NOT_FOUND */
    ANN_EUNAUTH,   /* missing or unknown credentials: UNAUTHENTICATED */
    ANN_EEXISTS,   /* ALREADY_EXISTS */
    ANN_ERANGE,    /* a limit of the service was reached: RESOURCE_EXHAUSTED */
    ANN_EUNAVAIL,  /* transient (closing, busy, overloaded); nothing was done: UNAVAILABLE */
    ANN_EIO,       /* storage failed mid-operation; outcome unknown: UNAVAILABLE */
    ANN_EINTERNAL, /* a bug or an impossible state: INTERNAL */
    ANN_ECORRUPT,  /* stored data failed its checksum: DATA_LOSS */
    ANN_ENOSPC,    /* the disk is full; nothing was stored: RESOURCE_EXHAUSTED, retriable */
    ANN_EPERM,     /* a valid key without the role the call needs: PERMISSION_DENIED */
    ANN_EPRECOND,  /* the object's state forbids the call (a log on legal hold, a sealed log):
                      FAILED_PRECONDITION */
    ANN_EUNIMPL,   /* the backend does not offer the operation: UNIMPLEMENTED */
} ann_code;

enum {
    ANN_ERR_RETRIABLE = 1u << 0,       /* the same request may succeed later */
    ANN_ERR_OUTCOME_UNKNOWN = 1u << 1, /* a write may have taken effect */
    ANN_ERR_FATAL = 1u << 2,           /* no retry helps: an operator must act */
};

typedef struct ann_err {
    ann_code code;
    char msg[256];
} ann_err;

/* The flags of a code (ANN_ERR_*). */
unsigned ann_code_flags(ann_code code);

/* True for the server's codes, whose message must not reach a client. */
int ann_code_is_internal(ann_code code);

/* The fixed client-facing text of a server code ("" for the caller's codes). */
const char *ann_code_public_msg(ann_code code);

/* Fills `err` (if not NULL) and returns -1, so callers can write
 * `return ann_err_set(err, ANN_EINVAL, "entries[%zu].insert_id: ...", i);` */
int ann_err_set(ann_err *err, ann_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets `err` to ANN_OK with an empty message. */
void ann_err_clear(ann_err *err);

/* A short stable name for a code ("invalid", "not_found", ...). */
const char *ann_code_name(ann_code code);

#endif
