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
size_t ann_cli_utf8_next(const uint8_t *p, size_t n, uint32_t *cp, int *ok);

/* 1 when s[0..n) is valid UTF-8, else 0. */
int ann_cli_utf8_valid(const char *s, size_t n);

/*
 * Makes a line sendable as a protobuf string: each invalid UTF-8 subpart
 * becomes U+FFFD; every other byte (NUL included) is kept exactly. Writes a
 * copy with a NUL after it to *out (heap, caller frees) and its length to
 * *out_len; counts the replacements in *n_invalid. Returns 0, or -1 when out
 * of memory.
 */
int ann_cli_utf8_repair(const char *s, size_t n, char **out, size_t *out_len, size_t *n_invalid);

/*
 * The incremental form of ann_cli_utf8_repair(): repairs a prefix of s[0..n)
 * into out (room for max_out bytes plus a NUL), stopping before the unit
 * (a character or an invalid subpart) that would not fit. Unless `final`, it
 * also stops before a sequence cut short by the end of s, since more bytes
 * may complete it. Returns how many bytes of s it consumed; sets *out_len and
 * adds the replacements to *n_invalid.
 */
size_t ann_cli_utf8_repair_prefix(const char *s, size_t n, size_t max_out, int final, char *out,
                                  size_t *out_len, size_t *n_invalid);

/*
 * Writes s[0..n) for a terminal: backslash as \\, newline \n, CR \r, tab \t,
 * other C0 controls and DEL as \xHH, C1 controls, bidirectional controls and
 * U+2028/U+2029 as \uHHHH, bytes of invalid UTF-8 as \xHH. Everything else
 * (printable ASCII and valid UTF-8) is written as is.
 */
void ann_cli_put_term(FILE *f, const char *s, size_t n);

/* ann_cli_put_term() of a NUL-terminated string (NULL prints nothing). */
void ann_cli_put_term_str(FILE *f, const char *s);

/*
 * Writes s[0..n) as a JSON string, quotes included: " and \ escaped,
 * control characters (C0, DEL, C1), bidirectional controls and U+2028/2029
 * as \uXXXX (\n \r \t \b \f in short form), invalid UTF-8 as \ufffd. The
 * result is valid JSON and safe for a terminal.
 */
void ann_cli_put_json_str(FILE *f, const char *s, size_t n);

/* ann_cli_put_json_str() of a NUL-terminated string (NULL prints ""). */
void ann_cli_put_json_cstr(FILE *f, const char *s);

/* The same two for protobuf-c `bytes` fields (ProtobufCBinaryData). */
#define ANN_CLI_PUT_TERM_BYTES(f, b) ann_cli_put_term((f), (const char *)(b).data, (b).len)
#define ANN_CLI_PUT_JSON_BYTES(f, b) ann_cli_put_json_str((f), (const char *)(b).data, (b).len)

#endif
