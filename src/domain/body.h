/*
 * An entry's body and a log's labels as the store keeps them, read without trust, and the
 * search rule on them.
 *
 * The body is the entry's LogEntry fields 23 (labels: Label { key = 1; value = 2; }),
 * 30 (text_payload) and 31 (json_payload: the google.protobuf.Struct's bytes), exactly as
 * the API layer encoded them. A log's labels are Log fields 2, each a Label.
 *
 * Search (SearchLogEntries, ListLogEntries' text_contains): an entry matches when its text
 * payload, any string value of its JSON payload (at any depth), or any label value contains
 * the query as a byte-exact substring; with ignore_case, ASCII letters match either case
 * and every other byte matches itself.
 */
#ifndef ANN_DOMAIN_BODY_H
#define ANN_DOMAIN_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ann_body_kind {
    ANN_BODY_LABEL_VALUE,
    ANN_BODY_TEXT,
    ANN_BODY_JSON_STRING,
} ann_body_kind;

/* Called for each searchable string; a nonzero return stops the walk and is returned. */
typedef int (*ann_body_str_fn)(ann_body_kind kind, const uint8_t *p, size_t n, void *ud);

/* Visits the label values, the text payload and the JSON string values of a body.
 * Malformed bytes end the walk quietly (the store only holds bodies the API validated). */
int ann_body_strings(const uint8_t *body, size_t len, ann_body_str_fn fn, void *ud);

/* Called for each (key, value) label; a nonzero return stops the walk and is returned. */
typedef int (*ann_label_fn)(const uint8_t *k, size_t kn, const uint8_t *v, size_t vn, void *ud);

/* Visits the Label messages found as field `field` of `buf` (23 in a body, 2 in a Log). */
int ann_labels_each(const uint8_t *buf, size_t len, uint32_t field, ann_label_fn fn, void *ud);

/* One label pair of a filter. */
typedef struct ann_label_pair {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
} ann_label_pair;

/* True when every pair of the filter is among the labels (field `field` of buf). */
bool ann_labels_match(const uint8_t *buf, size_t len, uint32_t field, const ann_label_pair *filter,
                      size_t n);

/* A literal query, ready to match. */
#define ANN_QUERY_MAX 1024
typedef struct ann_matcher {
    uint8_t q[ANN_QUERY_MAX]; /* lower-cased when icase */
    size_t n;
    bool icase;
} ann_matcher;

/* n is 1..ANN_QUERY_MAX (the caller validated it). */
void ann_matcher_init(ann_matcher *m, const uint8_t *q, size_t n, bool icase);
bool ann_matcher_find(const ann_matcher *m, const uint8_t *p, size_t n);
bool ann_body_matches(const ann_matcher *m, const uint8_t *body, size_t len);

/* The search projection's pre-filter (docs/distributed.md, "Search"): a body's searchable
 * strings as one PostgreSQL text, and a query as a LIKE pattern, so that whenever
 * ann_body_matches(m, body) holds, doc LIKE pattern holds too (ILIKE with icase). Text
 * cannot hold NUL: each string is mapped character by character, NUL and any byte that is
 * not part of well-formed UTF-8 to U+FFFD, the same way in both, and the strings are
 * joined with '\n'. A query spanning two strings or naming U+FFFD may give extra
 * candidates, never fewer: the caller checks each candidate with ann_body_matches. */
#include "common/buf.h"
/* Appends the doc of a body to out (no NUL terminator). */
void ann_body_search_doc(const uint8_t *body, size_t len, ann_buf *out);
/* Sets out to '%' + the mapped query with LIKE's % _ \ escaped + '%', NUL-terminated. */
void ann_search_like_pattern(const uint8_t *q, size_t n, ann_buf *out);

#endif
