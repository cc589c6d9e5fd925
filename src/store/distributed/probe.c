#include "store/distributed/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One HOST:PORT: true when it accepts a connection in time. */
static bool reachable(const char *hp, size_t len, int timeout_ms)
{
    char buf[300];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, hp, len);
    buf[len] = '\0';
    char *colon = strrchr(buf, ':');
    if (!colon)
        return false;
    *colon = '\0';
    char *host = buf;
    if (host[0] == '[' && colon > host + 1 && colon[-1] == ']') {
        host++;
        colon[-1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return false;
    bool ok = false;
    for (struct addrinfo *a = ai; a && !ok; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (poll(&p, 1, timeout_ms) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                ok = true;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return ok;
}

int ann_probe_tcp(const char *what, const char *hostports, int timeout_ms, ann_err *err)
{
    const char *p = hostports;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (reachable(p, len, timeout_ms))
            return 0;
        p = end ? end + 1 : NULL;
    }
    return ann_err_set(err, ANN_EUNAVAIL, "%s at %s is unreachable", what, hostports);
}

int ann_probe_pg(const char *conninfo, ann_err *err)
{
    /* connect_timeout bounds the wait; an empty conninfo means libpq's environment. */
    char ci[1024];
    snprintf(ci, sizeof ci, "%s connect_timeout=2", conninfo ? conninfo : "");
    PGPing r = PQping(ci);
    if (r == PQPING_OK)
        return 0;
    return ann_err_set(err, ANN_EUNAVAIL, "postgresql is %s",
                       r == PQPING_REJECT ? "rejecting connections" : "unreachable");
}
