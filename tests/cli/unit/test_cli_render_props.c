/*
 * Property test of what the CLI prints from untrusted server bytes: for random
 * entries (every byte value in payloads, labels, ids and JSON strings) and for
 * randomly corrupted responses, the text and JSON renderings (of entries, of
 * search hits, and of logs made of the same random bytes)
 *   - are valid UTF-8,
 *   - contain no C0 control but the newline ending each entry, no DEL, no C1
 *     control and no bidirectional control,
 *   - print exactly one line per entry.
 * Deterministic (fixed seeds), so a failure reproduces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/render.h"
#include "cli/text.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* Random bytes, biased towards the dangerous ones. */
static ProtobufCBinaryData rand_bytes(uint8_t *pool, size_t *used)
{
    static const uint8_t spicy[][3] = {
        {0x1b, '[', 0},     {'\r', 0, 0},    {'\n', 0, 0},       {0, 0, 0},
        {0x7f, 0, 0},       {0xc2, 0x9b, 0}, {0xe2, 0x80, 0xae}, {0xe2, 0x80, 0xa8},
        {0xe2, 0x81, 0xa6}, {0xd8, 0x9c, 0}, {0xff, 0, 0},       {0xed, 0xa0, 0x80},
        {'\\', 0, 0},       {'"', 0, 0},     {0xf0, 0x9f, 0x98}, {0xc3, 0xa9, 0},
    };
    size_t n = rnd() % 24;
    ProtobufCBinaryData b = {0, pool + *used};
    for (size_t i = 0; i < n; i++) {
        if (rnd() % 3 == 0) {
            const uint8_t *s = spicy[rnd() % 16];
            for (int k = 0; k < 3 && (k == 0 || s[k]); k++)
                pool[(*used)++] = s[k];
        } else {
            pool[(*used)++] = (uint8_t)rnd();
        }
    }
    b.len = (size_t)(pool + *used - b.data);
    return b;
}

static void check_safe(const char *out, size_t len, size_t want_lines)
{
    size_t lines = 0, i = 0;
    const uint8_t *p = (const uint8_t *)out;
    while (i < len) {
        uint32_t cp;
        int ok;
        size_t k = ann_cli_utf8_next(p + i, len - i, &cp, &ok);
        if (!ok)
            fail_msg("invalid UTF-8 at byte %zu", i);
        if (cp == '\n')
            lines++;
        else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c ||
                 cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
                 (cp >= 0x2066 && cp <= 0x2069))
            fail_msg("raw U+%04X at byte %zu", (unsigned)cp, i);
        i += k;
    }
    assert_int_equal(lines, want_lines);
}

/* Every one-line rendering of an entry: text, JSON, and as a search hit. */
static void (*const entry_renderers[])(FILE *, const Annals__Wire__V1__LogEntry *) = {
    ann_cli_print_entry_text,
    ann_cli_print_entry_json,
    ann_cli_print_hit_text,
};

/* Each entry's labels and id also make a log, as `annals logs` prints it. */
static void render_as_log(FILE *f, const Annals__Wire__V1__LogEntry *e, int json)
{
    Annals__Wire__V1__Log log = ANNALS__WIRE__V1__LOG__INIT;
    log.id = e->log_id;
    log.create_time = e->time;
    log.entry_count = (int64_t)e->severity * 1000003;
    log.n_labels = e->n_labels;
    log.labels = e->labels;
    (json ? ann_cli_print_log_json : ann_cli_print_log_line)(f, &log);
}

static void render_all(const Annals__Wire__V1__ListLogEntriesResponse *r)
{
    for (int k = 0; k < 5; k++) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        assert_non_null(f);
        for (size_t i = 0; i < r->n_entries; i++)
            if (k < 3)
                entry_renderers[k](f, r->entries[i]);
            else
                render_as_log(f, r->entries[i], k == 4);
        fclose(f);
        check_safe(out, len, r->n_entries);
        free(out);
    }
}

/* Builds, packs and returns a random response (caller frees *packed). */
static void random_response(uint8_t **packed, size_t *plen)
{
    enum { N = 8 };
    static uint8_t pool[N * 40 * 24 * 3];
    size_t used = 0;
    Annals__Wire__V1__ListLogEntriesResponse r = ANNALS__WIRE__V1__LIST_LOG_ENTRIES_RESPONSE__INIT;
    Annals__Wire__V1__LogEntry e[N], *ep[N];
    Annals__Wire__V1__Timestamp t[N];
    Annals__Wire__V1__Revocation rev[N];
    Annals__Wire__V1__Label lab[N][2], *labp[N][2];
    Annals__Wire__V1__Struct st[N], inner[N];
    Annals__Wire__V1__Struct__FieldsEntry fe[N][3], *fep[N][3], ife[N], *ifep[N];
    Annals__Wire__V1__Value v[N][3], iv[N];
    Annals__Wire__V1__ListValue lv[N];
    Annals__Wire__V1__Value *lvp[N][1];

    for (size_t i = 0; i < N; i++) {
        annals__wire__v1__log_entry__init(&e[i]);
        annals__wire__v1__timestamp__init(&t[i]);
        t[i].seconds = (int64_t)(rnd() % 4 == 0 ? rnd() : rnd() % 4000000000ULL);
        t[i].nanos = (int32_t)(rnd() % 4 == 0 ? (uint32_t)rnd() : (uint32_t)(rnd() % 1000000000));
        e[i].time = rnd() % 5 ? &t[i] : NULL;
        e[i].insert_time = &t[i];
        e[i].log_id = rand_bytes(pool, &used);
        e[i].entry_id = rand_bytes(pool, &used);
        e[i].insert_id = rand_bytes(pool, &used);
        e[i].severity = (int32_t)(rnd() % 3 ? (rnd() % 10) * 100 : (uint32_t)rnd());
        e[i].redacted = rnd() % 7 == 0;
        if (rnd() % 4 == 0) {
            annals__wire__v1__revocation__init(&rev[i]);
            rev[i].actor = rand_bytes(pool, &used);
            rev[i].reason = rand_bytes(pool, &used);
            rev[i].time = rnd() % 3 ? &t[i] : NULL;
            e[i].revocation = &rev[i];
        }
        for (int k = 0; k < 2; k++) {
            annals__wire__v1__label__init(&lab[i][k]);
            lab[i][k].key = rand_bytes(pool, &used);
            lab[i][k].value = rand_bytes(pool, &used);
            labp[i][k] = &lab[i][k];
        }
        e[i].n_labels = rnd() % 3;
        e[i].labels = labp[i];
        if (rnd() % 2) {
            e[i].payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
            e[i].text_payload = rand_bytes(pool, &used);
        } else {
            annals__wire__v1__struct__init(&st[i]);
            annals__wire__v1__struct__init(&inner[i]);
            annals__wire__v1__list_value__init(&lv[i]);
            annals__wire__v1__value__init(&iv[i]);
            annals__wire__v1__struct__fields_entry__init(&ife[i]);
            iv[i].kind_case = ANNALS__WIRE__V1__VALUE__KIND_STRING_VALUE;
            iv[i].string_value = rand_bytes(pool, &used);
            ife[i].key = rand_bytes(pool, &used);
            ife[i].value = &iv[i];
            ifep[i] = &ife[i];
            inner[i].n_fields = 1;
            inner[i].fields = &ifep[i];
            for (int k = 0; k < 3; k++) {
                annals__wire__v1__struct__fields_entry__init(&fe[i][k]);
                annals__wire__v1__value__init(&v[i][k]);
                fe[i][k].key = rand_bytes(pool, &used);
                fe[i][k].value = &v[i][k];
                fep[i][k] = &fe[i][k];
            }
            v[i][0].kind_case = ANNALS__WIRE__V1__VALUE__KIND_STRING_VALUE;
            v[i][0].string_value = rand_bytes(pool, &used);
            v[i][1].kind_case = ANNALS__WIRE__V1__VALUE__KIND_STRUCT_VALUE;
            v[i][1].struct_value = &inner[i];
            lvp[i][0] = &iv[i];
            lv[i].n_values = 1;
            lv[i].values = lvp[i];
            v[i][2].kind_case = ANNALS__WIRE__V1__VALUE__KIND_LIST_VALUE;
            v[i][2].list_value = &lv[i];
            st[i].n_fields = 3;
            st[i].fields = fep[i];
            e[i].payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_JSON_PAYLOAD;
            e[i].json_payload = &st[i];
        }
        ep[i] = &e[i];
    }
    r.n_entries = N;
    r.entries = ep;
    *plen = annals__wire__v1__list_log_entries_response__get_packed_size(&r);
    *packed = malloc(*plen);
    assert_non_null(*packed);
    annals__wire__v1__list_log_entries_response__pack(&r, *packed);
}

static void random_entries_render_safely(void **state)
{
    (void)state;
    rng_state = 0x1234567887654321ULL;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *packed;
        size_t plen;
        random_response(&packed, &plen);
        Annals__Wire__V1__ListLogEntriesResponse *r =
            annals__wire__v1__list_log_entries_response__unpack(NULL, plen, packed);
        assert_non_null(r);
        render_all(r);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        free(packed);
    }
}

/* Corrupted responses: whatever still parses renders safely too. */
static void corrupted_responses_render_safely(void **state)
{
    (void)state;
    rng_state = 0xfeedfacecafebeefULL;
    size_t parsed = 0;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *packed;
        size_t plen;
        random_response(&packed, &plen);
        for (int m = 0; m < 1 + (int)(rnd() % 4); m++)
            packed[rnd() % plen] = (uint8_t)rnd();
        Annals__Wire__V1__ListLogEntriesResponse *r =
            annals__wire__v1__list_log_entries_response__unpack(NULL, plen, packed);
        if (r) {
            parsed++;
            render_all(r);
            protobuf_c_message_free_unpacked(&r->base, NULL);
        }
        free(packed);
    }
    assert_true(parsed > 100); /* the property was exercised */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_entries_render_safely),
        cmocka_unit_test(corrupted_responses_render_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
