#include "cli/text.h"

#include <stdlib.h>
#include <string.h>

size_t ann_cli_utf8_next(const uint8_t *p, size_t n, uint32_t *cp, int *ok)
{
    uint8_t b = p[0];
    uint8_t lo = 0x80, hi = 0xBF;
    size_t need;
    uint32_t c;

    if (b < 0x80) {
        *cp = b;
        *ok = 1;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        c = b & 0x0F;
        if (b == 0xE0)
            lo = 0xA0; /* no overlong forms */
        if (b == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        c = b & 0x07;
        if (b == 0xF0)
            lo = 0x90;
        if (b == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *ok = 0;
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || p[i] < lo || p[i] > hi) {
            *ok = 0;
            return i;
        }
        lo = 0x80;
        hi = 0xBF;
        c = (c << 6) | (p[i] & 0x3F);
    }
    *cp = c;
    *ok = 1;
    return need + 1;
}

int ann_cli_utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int ok;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        i += ann_cli_utf8_next(p + i, n - i, &cp, &ok);
        if (!ok)
            return 0;
    }
    return 1;
}

size_t ann_cli_utf8_repair_prefix(const char *s, size_t n, size_t max_out, int final, char *out,
                                  size_t *out_len, size_t *n_invalid)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, j = 0;

    while (i < n) {
        uint32_t cp;
        int ok;
        if (p[i] < 0x80) {
            if (j + 1 > max_out)
                break;
            out[j++] = (char)p[i++];
            continue;
        }
        size_t len = ann_cli_utf8_next(p + i, n - i, &cp, &ok);
        if (!ok && !final && i + len == n)
            break; /* maybe only the start of a sequence */
        if (j + (ok ? len : 3) > max_out)
            break;
        if (ok) {
            memcpy(out + j, p + i, len);
            j += len;
        } else {
            (*n_invalid)++;
            memcpy(out + j, fffd, 3);
            j += 3;
        }
        i += len;
    }
    out[j] = '\0';
    *out_len = j;
    return i;
}

int ann_cli_utf8_repair(const char *s, size_t n, char **out, size_t *out_len, size_t *n_invalid)
{
    /* Worst case: every byte becomes three. */
    char *o = malloc(n * 3 + 1);
    *n_invalid = 0;
    if (!o)
        return -1;
    ann_cli_utf8_repair_prefix(s, n, n * 3, 1, o, out_len, n_invalid);
    *out = o;
    return 0;
}

/* Code points that must not reach a terminal raw although they are valid:
 * C1 controls, bidirectional controls (they reorder what follows) and the
 * Unicode line and paragraph separators. */
static int is_dangerous(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

void ann_cli_put_term(FILE *f, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0; /* p[run..i) is pending raw output */

    if (n == 0) /* s may be NULL then (an empty protobuf bytes field) */
        return;

    while (i < n) {
        uint8_t b = p[i];
        if (b >= 0x20 && b < 0x7F && b != '\\') {
            i++;
            continue;
        }
        if (b >= 0x80) {
            uint32_t cp;
            int ok;
            size_t len = ann_cli_utf8_next(p + i, n - i, &cp, &ok);
            if (ok && !is_dangerous(cp)) {
                i += len;
                continue;
            }
            fwrite(p + run, 1, i - run, f);
            if (ok) {
                fprintf(f, "\\u%04x", (unsigned)cp);
            } else {
                for (size_t k = 0; k < len; k++)
                    fprintf(f, "\\x%02x", p[i + k]);
            }
            i += len;
            run = i;
            continue;
        }
        fwrite(p + run, 1, i - run, f);
        switch (b) {
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            fprintf(f, "\\x%02x", b);
            break;
        }
        i++;
        run = i;
    }
    fwrite(p + run, 1, i - run, f);
}

void ann_cli_put_term_str(FILE *f, const char *s)
{
    if (s)
        ann_cli_put_term(f, s, strlen(s));
}

void ann_cli_put_json_str(FILE *f, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0;

    if (n == 0) { /* s may be NULL then */
        fputs("\"\"", f);
        return;
    }
    fputc('"', f);
    while (i < n) {
        uint8_t b = p[i];
        if (b >= 0x20 && b < 0x7F && b != '\\' && b != '"') {
            i++;
            continue;
        }
        if (b >= 0x80) {
            uint32_t cp;
            int ok;
            size_t len = ann_cli_utf8_next(p + i, n - i, &cp, &ok);
            if (ok && !is_dangerous(cp)) {
                i += len;
                continue;
            }
            fwrite(p + run, 1, i - run, f);
            fprintf(f, "\\u%04x", ok ? (unsigned)cp : 0xFFFDu);
            i += len;
            run = i;
            continue;
        }
        fwrite(p + run, 1, i - run, f);
        switch (b) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        default:
            fprintf(f, "\\u%04x", b);
            break;
        }
        i++;
        run = i;
    }
    fwrite(p + run, 1, i - run, f);
    fputc('"', f);
}

void ann_cli_put_json_cstr(FILE *f, const char *s)
{
    ann_cli_put_json_str(f, s ? s : "", s ? strlen(s) : 0);
}
