/* The one place where annals' error codes become gRPC status codes. */
#ifndef ANN_API_STATUS_H
#define ANN_API_STATUS_H

#include <grpc/status.h>

#include "common/err.h"

grpc_status_code ann_status_from_code(ann_code code);

#endif
