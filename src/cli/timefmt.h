/*
 * Times on the annals command line: parsing what users type and printing
 * what the server sends, always in UTC with nanoseconds.
 */
#ifndef ANN_CLI_TIMEFMT_H
#define ANN_CLI_TIMEFMT_H

#include <stdint.h>

#include "common/err.h"

/* Room for any string ann_cli_time_format() writes, NUL included. */
#define ANN_CLI_TIME_BUF 64

/*
 * Parses a time:
 *   RFC 3339           2026-11-26T10:00:00Z, 2026-11-26t10:00:00.5+01:00,
 *                      "2026-11-26 10:00:00Z" (space instead of T)
 *   a date             2026-11-26 (midnight UTC)
 *   relative to now    -90s, -15m, -1h, -2d (also "now")
 *   Unix seconds       @1764151200
 * Fractions have up to 9 digits. `now_sec`/`now_nsec` anchor relative forms.
 * Fills *sec (Unix seconds) and *nsec (0..999999999). Returns 0, or -1 with
 * err naming what is wrong.
 */
int ann_cli_time_parse(const char *s, int64_t now_sec, int32_t now_nsec, int64_t *sec,
                       int32_t *nsec, ann_err *err);

/*
 * Writes "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" for a valid protobuf Timestamp
 * (years 0001..9999, 0 <= nsec < 1e9). Values out of that range come from a
 * broken or hostile server; they are written as "invalid-time:<sec>.<nsec>"
 * so output stays one token. Returns `buf`.
 */
char *ann_cli_time_format(int64_t sec, int32_t nsec, char buf[ANN_CLI_TIME_BUF]);

#endif
