/* A minimal loopback HTTP/1.1 client (http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int http_init(http_conn *c, const char *addr, char *err, size_t errn)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) != strlen("127.0.0.1") ||
        strncmp(addr, "127.0.0.1", 9) != 0 || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535) {
        snprintf(err, errn, "%s: only 127.0.0.1:PORT is accepted", addr);
        return -1;
    }
    c->port = atoi(colon + 1);
    return 0;
}

void http_close(http_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->rpos = c->rlen = 0;
}

static int dial(http_conn *c, char *err, size_t errn)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct timeval tv = {.tv_sec = 300};
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errn, "connect 127.0.0.1:%d: %s", c->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c->fd = fd;
    c->rpos = c->rlen = 0;
    return 0;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n) {
        ssize_t k = send(fd, q, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        q += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Refills the read buffer: 1 with data, 0 at EOF, -1 on error. */
static int fill(http_conn *c)
{
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    if (c->rlen == sizeof c->rbuf) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    for (;;) {
        ssize_t k = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        c->rlen += (size_t)k;
        return k > 0;
    }
}

/* One line ending in CRLF (without it) into line[cap]; 1, 0 at EOF, -1 on error. */
static int read_line(http_conn *c, char *line, size_t cap)
{
    size_t n = 0;
    for (;;) {
        while (c->rpos < c->rlen) {
            char ch = c->rbuf[c->rpos++];
            if (ch == '\n') {
                if (n && line[n - 1] == '\r')
                    n--;
                line[n] = '\0';
                return 1;
            }
            if (n + 1 < cap)
                line[n++] = ch;
        }
        int r = fill(c);
        if (r <= 0)
            return r < 0 ? -1 : (n ? -1 : 0);
    }
}

static int read_n(http_conn *c, size_t n, ann_buf *out)
{
    while (n) {
        if (c->rpos == c->rlen && fill(c) <= 0)
            return -1;
        size_t k = c->rlen - c->rpos < n ? c->rlen - c->rpos : n;
        if (out)
            ann_buf_add(out, c->rbuf + c->rpos, k);
        c->rpos += k;
        n -= k;
    }
    return 0;
}

static int attempt(http_conn *c, const char *method, const char *target, const char *ctype,
                   const void *body, size_t n, int *status, ann_buf *out, int *eof_first, char *err,
                   size_t errn)
{
    char head[8192], line[8192];
    *eof_first = 0;
    if (c->fd < 0 && dial(c, err, errn) != 0)
        return -1;
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: annals-inv\r\n"
                      "Content-Length: %zu\r\n%s%s%s\r\n",
                      method, target, c->port, n, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                      ctype ? "\r\n" : "");
    if (hn < 0 || (size_t)hn >= sizeof head) {
        snprintf(err, errn, "request target too long");
        return -1;
    }
    if (send_all(c->fd, head, (size_t)hn) != 0 || (n && send_all(c->fd, body, n) != 0)) {
        *eof_first = 1;
        snprintf(err, errn, "send: %s", strerror(errno));
        return -1;
    }
    int r = read_line(c, line, sizeof line);
    if (r <= 0) {
        *eof_first = r == 0;
        snprintf(err, errn, "no response (%s)", r == 0 ? "connection closed" : strerror(errno));
        return -1;
    }
    if (sscanf(line, "HTTP/1.%*d %d", status) != 1) {
        snprintf(err, errn, "bad status line: %.80s", line);
        return -1;
    }
    long long clen = -1;
    int chunked = 0, close_after = 0;
    for (;;) {
        if (read_line(c, line, sizeof line) <= 0) {
            snprintf(err, errn, "truncated headers");
            return -1;
        }
        if (!line[0])
            break;
        if (!strncasecmp(line, "Content-Length:", 15))
            clen = atoll(line + 15);
        else if (!strncasecmp(line, "Transfer-Encoding:", 18) && strcasestr(line, "chunked"))
            chunked = 1;
        else if (!strncasecmp(line, "Connection:", 11) && strcasestr(line, "close"))
            close_after = 1;
    }
    out->len = 0;
    if (chunked) {
        for (;;) {
            if (read_line(c, line, sizeof line) <= 0) {
                snprintf(err, errn, "truncated chunk header");
                return -1;
            }
            unsigned long long k = strtoull(line, NULL, 16);
            if (k == 0) {
                do {
                    if (read_line(c, line, sizeof line) <= 0) {
                        snprintf(err, errn, "truncated trailer");
                        return -1;
                    }
                } while (line[0]);
                break;
            }
            if (read_n(c, (size_t)k, out) != 0 || read_n(c, 2, NULL) != 0) {
                snprintf(err, errn, "truncated chunk");
                return -1;
            }
        }
    } else if (clen >= 0) {
        if (read_n(c, (size_t)clen, out) != 0) {
            snprintf(err, errn, "truncated body");
            return -1;
        }
    } else {
        while (fill(c) > 0)
            ;
        ann_buf_add(out, c->rbuf + c->rpos, c->rlen - c->rpos);
        close_after = 1;
    }
    if (close_after)
        http_close(c);
    return 0;
}

int http_do(http_conn *c, const char *method, const char *target, const char *ctype,
            const void *body, size_t n, int *status, ann_buf *out, char *err, size_t errn)
{
    int eof_first;
    int fresh = c->fd < 0;
    if (attempt(c, method, target, ctype, body, n, status, out, &eof_first, err, errn) == 0)
        return 0;
    http_close(c);
    if (!eof_first || fresh)
        return -1;
    return attempt(c, method, target, ctype, body, n, status, out, &eof_first, err, errn) == 0
               ? 0
               : (http_close(c), -1);
}

void http_urlencode(ann_buf *b, const char *s)
{
    static const char hexd[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            ann_buf_add_byte(b, ch);
        } else {
            char e[3] = {'%', hexd[ch >> 4], hexd[ch & 15]};
            ann_buf_add(b, e, 3);
        }
    }
}
