/*
 * The one place where annals' errors become what a client reads: the gRPC status code,
 * the message, and the retriable flag (trailing metadata `annals-retriable: true`).
 *
 * The caller's errors (bad input, not found, ...) keep their message, which names the
 * field or the condition. The server's errors (storage full or failed, busy, internal)
 * reach the client as a fixed text chosen by the code: their own message may name files
 * or internal ids, so it goes to the operator's log (stderr) only.
 */
#ifndef ANN_API_STATUS_H
#define ANN_API_STATUS_H

#include <grpc/status.h>
#include <stdbool.h>

#include "common/err.h"

#define ANN_RETRIABLE_MD "annals-retriable"

typedef struct ann_status {
    grpc_status_code code;
    const char *msg; /* points into the ann_err or at a constant */
    bool retriable;
} ann_status;

grpc_status_code ann_status_from_code(ann_code code);

/* The client's view of `err`; logs a server error's own message under `what` (the rpc). */
void ann_status_from_err(const ann_err *err, const char *what, ann_status *out);

#endif
