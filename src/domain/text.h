/* Text rules with no I/O: UTF-8, UUIDs, decimal ids, base64url. */
#ifndef ANN_DOMAIN_TEXT_H
#define ANN_DOMAIN_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
 * NUL bytes are valid UTF-8. */
bool ann_utf8_valid(const char *s, size_t len);

/* Parses a UUID in its canonical 8-4-4-4-12 hex form (either case) into 16 bytes.
 * Returns 0, or -1 when `s` is not exactly a canonical UUID. */
int ann_uuid_parse(const char *s, size_t len, uint8_t out[16]);

/* Writes the canonical lower-case form (36 chars + NUL) of 16 bytes to out[37]. */
void ann_uuid_format(const uint8_t in[16], char out[37]);

/* Turns 16 random bytes into a version-4 UUID in place. */
void ann_uuid_v4_from_random(uint8_t bytes[16]);

/* Parses a decimal entry id: 1..UINT64_MAX, digits only, no sign, no leading zero.
 * Returns 0, or -1. "0" parses to 0 only when allow_zero. */
int ann_entry_id_parse(const char *s, size_t len, bool allow_zero, uint64_t *out);

/* base64url without padding. Encode writes ann_b64url_len(n) chars + NUL. Decode returns
 * the decoded length, or -1 on a bad character, a bad length or a too small buffer. */
size_t ann_b64url_len(size_t n);
void ann_b64url_encode(const uint8_t *in, size_t n, char *out);
long ann_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
