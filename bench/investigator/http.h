/*
 * A minimal HTTP/1.1 client for the VictoriaLogs side of the investigator benchmarks:
 * one keep-alive connection to a loopback address, Content-Length requests, responses
 * with Content-Length or chunked bodies. Nothing else (no TLS, no redirects, no
 * compression: it never sends Accept-Encoding).
 */
#ifndef ANN_BENCH_INV_HTTP_H
#define ANN_BENCH_INV_HTTP_H

#include <stddef.h>

#include "common/buf.h"

typedef struct http_conn {
    int fd;
    int port;
    char rbuf[65536];
    size_t rpos, rlen;
} http_conn;

/* addr is "127.0.0.1:PORT" (only loopback is accepted). Returns 0 or -1 (message in err). */
int http_init(http_conn *c, const char *addr, char *err, size_t errn);
void http_close(http_conn *c);

/*
 * One request. The response body replaces out's contents; *status gets the HTTP status.
 * Reconnects (once) when the kept-alive connection was closed by the server.
 * Returns 0 when a whole response arrived (any status), -1 otherwise.
 */
int http_do(http_conn *c, const char *method, const char *target, const char *ctype,
            const void *body, size_t n, int *status, ann_buf *out, char *err, size_t errn);

/* Appends the percent-encoding of s (RFC 3986 unreserved characters kept). */
void http_urlencode(ann_buf *b, const char *s);

#endif
