#include "cli/timefmt.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds of 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z. */
#define MIN_SEC (-62135596800LL)
#define MAX_SEC (253402300800LL)

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, unsigned m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads exactly `n` digits at *p into *v. */
static int digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

static int parse_relative(const char *s, int64_t now_sec, int32_t now_nsec, int64_t *sec,
                          int32_t *nsec, ann_err *err)
{
    char *end;
    errno = 0;
    long long n = strtoll(s + 1, &end, 10);
    if (end == s + 1 || errno || n < 0)
        return ann_err_set(err, ANN_EINVAL, "time \"%s\": expected -<number><s|m|h|d>", s);
    int64_t unit;
    if (!strcmp(end, "s"))
        unit = 1;
    else if (!strcmp(end, "m"))
        unit = 60;
    else if (!strcmp(end, "h"))
        unit = 3600;
    else if (!strcmp(end, "d"))
        unit = 86400;
    else
        return ann_err_set(err, ANN_EINVAL, "time \"%s\": unit must be s, m, h or d", s);
    if (n > (now_sec - MIN_SEC) / unit)
        return ann_err_set(err, ANN_EINVAL, "time \"%s\": too far in the past", s);
    *sec = now_sec - n * unit;
    *nsec = now_nsec;
    return 0;
}

int ann_cli_time_parse(const char *s, int64_t now_sec, int32_t now_nsec, int64_t *sec,
                       int32_t *nsec, ann_err *err)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, se = 0;
    int32_t frac = 0;
    int64_t off = 0;

    if (!strcmp(s, "now")) {
        *sec = now_sec;
        *nsec = now_nsec;
        return 0;
    }
    if (s[0] == '-')
        return parse_relative(s, now_sec, now_nsec, sec, nsec, err);
    if (s[0] == '@') {
        char *end;
        errno = 0;
        long long v = strtoll(s + 1, &end, 10);
        if (end == s + 1 || *end || errno || v < MIN_SEC || v >= MAX_SEC)
            return ann_err_set(err, ANN_EINVAL, "time \"%s\": expected @<unix seconds>", s);
        *sec = v;
        *nsec = 0;
        return 0;
    }
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        goto bad;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, (unsigned)mo))
        return ann_err_set(err, ANN_EINVAL, "time \"%s\": no such date", s);
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            goto bad;
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
            digits(&p, 2, &se))
            goto bad;
        if (h > 23 || mi > 59 || se > 60)
            return ann_err_set(err, ANN_EINVAL, "time \"%s\": no such time of day", s);
        if (*p == '.') {
            int nd = 0;
            p++;
            if (!isdigit((unsigned char)*p))
                goto bad;
            for (; isdigit((unsigned char)*p); p++, nd++)
                if (nd < 9)
                    frac = frac * 10 + (*p - '0');
            for (; nd < 9; nd++)
                frac *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
                goto bad;
            off = sign * (int64_t)(oh * 3600 + om * 60);
        } else {
            return ann_err_set(err, ANN_EINVAL, "time \"%s\": needs a zone: Z or +HH:MM (RFC 3339)",
                               s);
        }
        if (*p)
            goto bad;
    }
    int64_t v =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    if (v < MIN_SEC || v >= MAX_SEC)
        return ann_err_set(err, ANN_EINVAL, "time \"%s\": outside years 0001..9999", s);
    *sec = v;
    *nsec = frac;
    return 0;
bad:
    return ann_err_set(err, ANN_EINVAL,
                       "time \"%s\": expected RFC 3339 (2026-01-02T15:04:05Z), a date, "
                       "-<n><s|m|h|d>, now or @<unix seconds>",
                       s);
}

char *ann_cli_time_format(int64_t sec, int32_t nsec, char buf[ANN_CLI_TIME_BUF])
{
    int64_t y;
    unsigned mo, d;

    if (sec < MIN_SEC || sec >= MAX_SEC || nsec < 0 || nsec > 999999999) {
        snprintf(buf, ANN_CLI_TIME_BUF, "invalid-time:%" PRId64 ".%" PRId32, sec, nsec);
        return buf;
    }
    int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
    int64_t rem = sec - days * 86400;
    civil_from_days(days, &y, &mo, &d);
    snprintf(buf, ANN_CLI_TIME_BUF, "%04d-%02u-%02uT%02d:%02d:%02d.%09dZ", (int)y, mo, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)nsec);
    return buf;
}
