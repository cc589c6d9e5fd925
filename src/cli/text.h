/*
 * Text handling of the annals CLI: UTF-8 decoding, repair of input lines,
 * and the two escapings of output (terminal text and JSON strings).
 *
 * Every string that comes from the server is untrusted: it may hold invalid
 * UTF-8, escape sequences, carriage returns or bidirectional overrides. The
 * output functions below never let such bytes reach the terminal raw.
 */
#ifndef ANN_CLI_TEXT_H
#define ANN_CLI_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Decodes one UTF-8 sequence at p[0..n), n >= 1. Returns its length and sets
 * *ok = 1 and *cp when valid (shortest form, no surrogates, <= U+10FFFF).
 * When invalid, sets *ok = 0 and returns the length of the maximal subpart
 * (at least 1): the bytes one U+FFFD stands for, as Unicode recommends.
 */
size_t ann_utf8_next(const uint8_t *p, size_t n, uint32_t *cp, int *ok);

/* 1 when s[0..n) is valid UTF-8 without NUL bytes, else 0. */
int ann_utf8_valid(const char *s, size_t n);

/*
 * Makes a line sendable as a protobuf string: each invalid UTF-8 subpart and
 * each NUL byte becomes U+FFFD; every other byte is kept exactly. Writes a
 * NUL-terminated copy to *out (heap, caller frees) and its length to
 * *out_len; counts replaced invalid subparts in *n_invalid and NULs in
 * *n_nul. Returns 0, or -1 when out of memory.
 */
int ann_utf8_repair(const char *s, size_t n, char **out, size_t *out_len, size_t *n_invalid,
                    size_t *n_nul);

/*
 * Writes s[0..n) for a terminal: backslash as \\, newline \n, CR \r, tab \t,
 * other C0 controls and DEL as \xHH, C1 controls, bidirectional controls and
 * U+2028/U+2029 as \uHHHH, bytes of invalid UTF-8 as \xHH. Everything else
 * (printable ASCII and valid UTF-8) is written as is.
 */
void ann_put_term(FILE *f, const char *s, size_t n);

/* ann_put_term() of a NUL-terminated string (NULL prints nothing). */
void ann_put_term_str(FILE *f, const char *s);

/*
 * Writes s[0..n) as a JSON string, quotes included: " and \ escaped,
 * control characters (C0, DEL, C1), bidirectional controls and U+2028/2029
 * as \uXXXX (\n \r \t \b \f in short form), invalid UTF-8 as \ufffd. The
 * result is valid JSON and safe for a terminal.
 */
void ann_put_json_str(FILE *f, const char *s, size_t n);

/* ann_put_json_str() of a NUL-terminated string (NULL prints ""). */
void ann_put_json_cstr(FILE *f, const char *s);

#endif
