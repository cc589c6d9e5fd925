/*
 * The RPC handlers over the memory test double of the storage port: validation of
 * every bad-input class (status, field named, nothing stored), paging, revocation,
 * deletion, isolation and tails. The same rules are checked end to end, through real
 * gRPC against a real annalsd, by tests/api.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "api/service.h"
#include "api/wire.h"
#include "domain/limits.h"
#include "domain/token.h"
#include "memstore.h"

typedef struct fx {
    ann_store *store;
    ann_service svc;
    ann_tenant a, b;
    char log[ANN_UUID_LEN + 1];
} fx;

#define BIN(s) ((ProtobufCBinaryData){sizeof(s) - 1, (uint8_t *)(s)})
#define BINZ(s) ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})

static void pack(const ProtobufCMessage *m, ann_buf *out)
{
    out->len = 0;
    size_t n = protobuf_c_message_get_packed_size(m);
    ann_buf_reserve(out, n);
    out->len = protobuf_c_message_pack(m, out->data);
}

static int call(fx *f, ann_rpc rpc, const ann_tenant *t, const ProtobufCMessage *req, ann_buf *resp,
                ann_err *err)
{
    ann_buf in = ANN_BUF_INIT;
    pack(req, &in);
    resp->len = 0;
    ann_err_clear(err);
    int rc = ann_service_unary(&f->svc, rpc, t, in.data, in.len, resp, err);
    ann_buf_release(&in);
    return rc;
}

static uint64_t entry_count(fx *f, const ann_tenant *t, const char *log)
{
    ann_log_meta m = {0};
    ann_err err;
    if (ann_store_log_get(f->store, t->id, log, &m, &err) != 0)
        return UINT64_MAX;
    ann_log_meta_release(&m);
    return m.entry_count;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    ann_err err;
    uint8_t h[32];
    f->store = ann_memstore_new();
    SHA256((const unsigned char *)"key-a", 5, h);
    ann_store_tenant_create(f->store, "a", h, &f->a, &err);
    SHA256((const unsigned char *)"key-b", 5, h);
    ann_store_tenant_create(f->store, "b", h, &f->b, &err);
    assert_int_equal(ann_service_init(&f->svc, f->store, &err), 0);

    Annals__Wire__V1__CreateLogRequest req = ANNALS__WIRE__V1__CREATE_LOG_REQUEST__INIT;
    ann_buf resp = ANN_BUF_INIT;
    assert_int_equal(call(f, ANN_RPC_CREATE_LOG, &f->a, &req.base, &resp, &err), 0);
    Annals__Wire__V1__CreateLogResponse *r =
        annals__wire__v1__create_log_response__unpack(NULL, resp.len, resp.data);
    assert_non_null(r);
    assert_int_equal(r->log->id.len, ANN_UUID_LEN);
    memcpy(f->log, r->log->id.data, ANN_UUID_LEN);
    annals__wire__v1__create_log_response__free_unpacked(r, NULL);
    ann_buf_release(&resp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ann_store_close(f->store);
    free(f);
    return 0;
}

/* Writes one entry with `mutate` applied; returns rc and leaves err. */
static int write_one(fx *f, void (*mutate)(Annals__Wire__V1__LogEntry *, void *), void *ud,
                     ann_err *err)
{
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT;
    Annals__Wire__V1__LogEntry *ep = &e;
    e.payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e.text_payload = BIN("hello");
    if (mutate)
        mutate(&e, ud);
    Annals__Wire__V1__WriteLogEntriesRequest req =
        ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    req.log_id = BINZ(f->log);
    req.n_entries = 1;
    req.entries = &ep;
    ann_buf resp = ANN_BUF_INIT;
    int rc = call(f, ANN_RPC_WRITE, &f->a, &req.base, &resp, err);
    ann_buf_release(&resp);
    return rc;
}

static void expect_invalid(fx *f, void (*mutate)(Annals__Wire__V1__LogEntry *, void *), void *ud,
                           const char *field)
{
    ann_err err;
    uint64_t before = entry_count(f, &f->a, f->log);
    assert_int_equal(write_one(f, mutate, ud, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    if (!strstr(err.msg, field))
        fail_msg("message '%s' does not name '%s'", err.msg, field);
    assert_true(entry_count(f, &f->a, f->log) == before);
}

static void m_bad_utf8(Annals__Wire__V1__LogEntry *e, void *ud)
{
    (void)ud;
    e->text_payload = BIN("bad \xff byte");
}
static void m_severity(Annals__Wire__V1__LogEntry *e, void *ud)
{
    e->severity = *(int *)ud;
}
static void m_insert_id(Annals__Wire__V1__LogEntry *e, void *ud)
{
    e->insert_id = *(ProtobufCBinaryData *)ud;
}
static void m_labels(Annals__Wire__V1__LogEntry *e, void *ud)
{
    Annals__Wire__V1__Label **l = ud;
    size_t n = 0;
    while (l[n])
        n++;
    e->labels = l;
    e->n_labels = n;
}
static void m_log_id(Annals__Wire__V1__LogEntry *e, void *ud)
{
    e->log_id = BINZ((char *)ud);
}
static void m_time(Annals__Wire__V1__LogEntry *e, void *ud)
{
    e->time = ud;
}
static void m_json(Annals__Wire__V1__LogEntry *e, void *ud)
{
    e->payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_JSON_PAYLOAD;
    e->json_payload = ud;
}

static void bad_entries_are_refused_whole(void **state)
{
    fx *f = *state;
    ann_err err;
    assert_int_equal(write_one(f, NULL, NULL, &err), 0);
    expect_invalid(f, m_bad_utf8, NULL, "entries[0].text_payload");
    int sev[] = {150, 1000, -1, 950};
    for (size_t i = 0; i < 4; i++)
        expect_invalid(f, m_severity, &sev[i], "entries[0].severity");
    char big[ANN_MAX_INSERT_ID_BYTES + 1];
    memset(big, 'i', sizeof big);
    ProtobufCBinaryData iid = {sizeof big, (uint8_t *)big};
    expect_invalid(f, m_insert_id, &iid, "entries[0].insert_id");
    ProtobufCBinaryData bad_iid = BIN("\xc0\xaf");
    expect_invalid(f, m_insert_id, &bad_iid, "entries[0].insert_id");

    Annals__Wire__V1__Label lab[ANN_MAX_LABELS + 1];
    Annals__Wire__V1__Label *lp[ANN_MAX_LABELS + 2] = {0};
    char keys[ANN_MAX_LABELS + 1][8];
    for (int i = 0; i <= ANN_MAX_LABELS; i++) {
        annals__wire__v1__label__init(&lab[i]);
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        lab[i].key = BINZ(keys[i]);
        lab[i].value = BIN("v");
        lp[i] = &lab[i];
    }
    expect_invalid(f, m_labels, lp, "entries[0].labels"); /* 65 labels */
    lp[1] = NULL;
    char longkey[ANN_MAX_LABEL_KEY_BYTES + 1];
    memset(longkey, 'k', sizeof longkey);
    lab[0].key = (ProtobufCBinaryData){sizeof longkey, (uint8_t *)longkey};
    expect_invalid(f, m_labels, lp, "entries[0].labels");
    static char longval[ANN_MAX_LABEL_VALUE_BYTES + 1];
    memset(longval, 'v', sizeof longval);
    lab[0].key = BIN("k");
    lab[0].value = (ProtobufCBinaryData){sizeof longval, (uint8_t *)longval};
    expect_invalid(f, m_labels, lp, "entries[0].labels");
    lab[0].value = BIN("\xed\xa0\x80");
    expect_invalid(f, m_labels, lp, "entries[0].labels");

    expect_invalid(f, m_log_id, "00000000-0000-4000-8000-000000000000", "entries[0].log_id");
    expect_invalid(f, m_log_id, "not-a-uuid", "entries[0].log_id");

    Annals__Wire__V1__Timestamp ts = ANNALS__WIRE__V1__TIMESTAMP__INIT;
    ts.nanos = 1000000000;
    expect_invalid(f, m_time, &ts, "entries[0].time");
    ts.nanos = 0;
    ts.seconds = 253402300800LL; /* year 10000 */
    expect_invalid(f, m_time, &ts, "entries[0].time");

    Annals__Wire__V1__Value v = ANNALS__WIRE__V1__VALUE__INIT;
    v.kind_case = ANNALS__WIRE__V1__VALUE__KIND_STRING_VALUE;
    v.string_value = BIN("\xff");
    Annals__Wire__V1__Struct__FieldsEntry fe = ANNALS__WIRE__V1__STRUCT__FIELDS_ENTRY__INIT;
    Annals__Wire__V1__Struct__FieldsEntry *fep = &fe;
    fe.key = BIN("k");
    fe.value = &v;
    Annals__Wire__V1__Struct st = ANNALS__WIRE__V1__STRUCT__INIT;
    st.n_fields = 1;
    st.fields = &fep;
    expect_invalid(f, m_json, &st, "entries[0].json_payload");

    static char huge[ANN_MAX_ENTRY_BYTES];
    memset(huge, 'x', sizeof huge);
    v.string_value = (ProtobufCBinaryData){sizeof huge, (uint8_t *)huge};
    expect_invalid(f, m_json, &st, "entries[0]");
    assert_true(entry_count(f, &f->a, f->log) == 1);
}

static void request_level_limits(void **state)
{
    fx *f = *state;
    ann_err err;
    ann_buf resp = ANN_BUF_INIT;
    Annals__Wire__V1__WriteLogEntriesRequest req =
        ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    req.log_id = BINZ(f->log);
    assert_int_equal(call(f, ANN_RPC_WRITE, &f->a, &req.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "entries"));

    size_t n = ANN_MAX_ENTRIES_PER_WRITE + 1;
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT;
    Annals__Wire__V1__LogEntry **ep = calloc(n, sizeof *ep);
    for (size_t i = 0; i < n; i++)
        ep[i] = &e;
    req.n_entries = n;
    req.entries = ep;
    assert_int_equal(call(f, ANN_RPC_WRITE, &f->a, &req.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "entries"));
    assert_true(entry_count(f, &f->a, f->log) == 0);
    free(ep);

    req.n_entries = 0;
    req.log_id = BIN("nope");
    assert_int_equal(call(f, ANN_RPC_WRITE, &f->a, &req.base, &resp, &err), -1);
    assert_non_null(strstr(err.msg, "log_id"));

    /* Undecodable bytes. */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x0f};
    for (int rpc = ANN_RPC_CREATE_LOG; rpc <= ANN_RPC_GET_LOG; rpc++) {
        assert_int_equal(
            ann_service_unary(&f->svc, (ann_rpc)rpc, &f->a, junk, sizeof junk, &resp, &err), -1);
        assert_int_equal(err.code, ANN_EINVAL);
        assert_non_null(strstr(err.msg, "request"));
    }
    ann_buf_release(&resp);
}

/* A json_payload nested far deeper than the limit is refused before unpacking. */
static void deep_nesting_is_refused(void **state)
{
    fx *f = *state;
    ann_err err;
    /* Build Value{list_value{values: Value{list_value{...}}}} from the inside out. */
    ann_buf v = ANN_BUF_INIT, tmp = ANN_BUF_INIT;
    for (int depth = 0; depth < 20000; depth++) {
        tmp.len = 0;
        ann_buf_add_len_field(&tmp, 1, v.data, v.len); /* ListValue.values */
        v.len = 0;
        ann_buf_add_len_field(&v, 6, tmp.data, tmp.len); /* Value.list_value */
    }
    /* Struct{fields{key:"k", value: v}} inside LogEntry.json_payload inside the request. */
    ann_buf fe = ANN_BUF_INIT, st = ANN_BUF_INIT, entry = ANN_BUF_INIT, req = ANN_BUF_INIT;
    ann_buf_add_len_field(&fe, 1, "k", 1);
    ann_buf_add_len_field(&fe, 2, v.data, v.len);
    ann_buf_add_len_field(&st, 1, fe.data, fe.len);
    ann_buf_add_len_field(&entry, 31, st.data, st.len);
    ann_buf_add_len_field(&req, 1, f->log, strlen(f->log));
    ann_buf_add_len_field(&req, 2, entry.data, entry.len);
    ann_buf resp = ANN_BUF_INIT;
    assert_int_equal(
        ann_service_unary(&f->svc, ANN_RPC_WRITE, &f->a, req.data, req.len, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    ann_buf_release(&v), ann_buf_release(&tmp), ann_buf_release(&fe), ann_buf_release(&st);
    ann_buf_release(&entry), ann_buf_release(&req), ann_buf_release(&resp);
}

/* Counts beyond twice the limits, and floods of unknown fields, are refused before
 * protobuf-c unpacks anything (each 2-byte empty sub-message would cost ~200 bytes). */
static void floods_are_refused_before_unpacking(void **state)
{
    fx *f = *state;
    ann_err err;
    ann_buf req = ANN_BUF_INIT, resp = ANN_BUF_INIT;
    ann_buf_add_len_field(&req, 1, f->log, strlen(f->log));
    for (int i = 0; i < 3 * ANN_MAX_ENTRIES_PER_WRITE; i++)
        ann_buf_add_len_field(&req, 2, "", 0);
    assert_int_equal(
        ann_service_unary(&f->svc, ANN_RPC_WRITE, &f->a, req.data, req.len, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "entries"));

    /* 65 unknown fields in one entry. */
    ann_buf entry = ANN_BUF_INIT;
    for (int i = 0; i < 65; i++)
        ann_buf_add_tag(&entry, 1000, 0), ann_buf_add_varint(&entry, 1);
    req.len = 0;
    ann_buf_add_len_field(&req, 1, f->log, strlen(f->log));
    ann_buf_add_len_field(&req, 2, entry.data, entry.len);
    assert_int_equal(
        ann_service_unary(&f->svc, ANN_RPC_WRITE, &f->a, req.data, req.len, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "unknown fields"));
    /* A few unknown fields (a newer client) are fine. */
    entry.len = 0;
    ann_buf_add_tag(&entry, 1000, 0), ann_buf_add_varint(&entry, 1);
    ann_buf_add_len_field(&entry, 30, "hi", 2);
    req.len = 0;
    ann_buf_add_len_field(&req, 1, f->log, strlen(f->log));
    ann_buf_add_len_field(&req, 2, entry.data, entry.len);
    assert_int_equal(
        ann_service_unary(&f->svc, ANN_RPC_WRITE, &f->a, req.data, req.len, &resp, &err), 0);
    assert_true(entry_count(f, &f->a, f->log) == 1);
    ann_buf_release(&entry);
    ann_buf_release(&req);
    ann_buf_release(&resp);
}

/* JSON payloads are checked on their bytes: each defect is refused by name. */
static void json_payload_bytes_are_checked(void **state)
{
    fx *f = *state;
    struct {
        const char *why;
        uint8_t bytes[16];
        size_t n;
    } cases[] = {
        /* Struct{fields{key:"k"}}: no value */
        {"not set", {0x0a, 0x03, 0x0a, 0x01, 'k'}, 5},
        /* Struct{fields{key:"k", value:{}}}: a Value with no kind */
        {"not set", {0x0a, 0x05, 0x0a, 0x01, 'k', 0x12, 0x00}, 7},
        /* value: null_value = 1 */
        {"null_value", {0x0a, 0x07, 0x0a, 0x01, 'k', 0x12, 0x02, 0x08, 0x01}, 9},
        /* value: string_value "\xff" */
        {"UTF-8", {0x0a, 0x08, 0x0a, 0x01, 'k', 0x12, 0x03, 0x1a, 0x01, 0xff}, 10},
        /* value: string_value sent as a varint */
        {"string_value", {0x0a, 0x07, 0x0a, 0x01, 'k', 0x12, 0x02, 0x18, 0x01}, 9},
        /* value: number_value NaN */
        {"finite",
         {0x0a, 0x0e, 0x0a, 0x01, 'k', 0x12, 0x09, 0x11, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f},
         16},
        /* an unknown field in a Value */
        {"unknown", {0x0a, 0x07, 0x0a, 0x01, 'k', 0x12, 0x02, 0x38, 0x01}, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ann_buf entry = ANN_BUF_INIT, req = ANN_BUF_INIT, resp = ANN_BUF_INIT;
        ann_err err;
        ann_buf_add_len_field(&entry, 31, cases[i].bytes, cases[i].n);
        ann_buf_add_len_field(&req, 1, f->log, strlen(f->log));
        ann_buf_add_len_field(&req, 2, entry.data, entry.len);
        assert_int_equal(
            ann_service_unary(&f->svc, ANN_RPC_WRITE, &f->a, req.data, req.len, &resp, &err), -1);
        assert_int_equal(err.code, ANN_EINVAL);
        if (!strstr(err.msg, "entries[0].json_payload") || !strstr(err.msg, cases[i].why))
            fail_msg("case %zu: '%s'", i, err.msg);
        ann_buf_release(&entry), ann_buf_release(&req), ann_buf_release(&resp);
    }
    assert_true(entry_count(f, &f->a, f->log) == 0);
}

static void time_bounds_are_exact(void **state)
{
    fx *f = *state;
    ann_err err;
    Annals__Wire__V1__Timestamp ts = ANNALS__WIRE__V1__TIMESTAMP__INIT;
    ts.seconds = -9214560000LL; /* 1678-01-01T00:00:00Z */
    assert_int_equal(write_one(f, m_time, &ts, &err), 0);
    ts.seconds = 9214646399LL; /* 2261-12-31T23:59:59.999999999Z */
    ts.nanos = 999999999;
    assert_int_equal(write_one(f, m_time, &ts, &err), 0);
    ts.seconds = 9214646400LL; /* 2262-01-01T00:00:00Z */
    ts.nanos = 0;
    expect_invalid(f, m_time, &ts, "entries[0].time");
    ts.seconds = -9214560001LL;
    ts.nanos = 999999999;
    expect_invalid(f, m_time, &ts, "entries[0].time");
}

static int write_batch(fx *f, size_t n, int64_t base_time, const char *prefix)
{
    Annals__Wire__V1__LogEntry *e = calloc(n, sizeof *e);
    Annals__Wire__V1__LogEntry **ep = calloc(n, sizeof *ep);
    Annals__Wire__V1__Timestamp *ts = calloc(n, sizeof *ts);
    char(*ids)[32] = calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        annals__wire__v1__log_entry__init(&e[i]);
        annals__wire__v1__timestamp__init(&ts[i]);
        ts[i].seconds = base_time + (int64_t)(i % 7); /* times out of id order */
        e[i].time = &ts[i];
        e[i].payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
        snprintf(ids[i], sizeof ids[i], "%s-%zu", prefix, i);
        e[i].text_payload = BINZ(ids[i]);
        e[i].insert_id = BINZ(ids[i]);
        ep[i] = &e[i];
    }
    Annals__Wire__V1__WriteLogEntriesRequest req =
        ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    req.log_id = BINZ(f->log);
    req.n_entries = n;
    req.entries = ep;
    ann_buf resp = ANN_BUF_INIT;
    ann_err err;
    int rc = call(f, ANN_RPC_WRITE, &f->a, &req.base, &resp, &err);
    ann_buf_release(&resp);
    free(e), free(ep), free(ts), free(ids);
    return rc;
}

/* Walking pages while writes go on yields each entry of the snapshot exactly once, in
 * (time, id) order. */
static void paging_is_exactly_once(void **state)
{
    fx *f = *state;
    assert_int_equal(write_batch(f, 250, 1000, "a"), 0);
    uint8_t seen[600] = {0};
    char token[ANN_PAGE_TOKEN_MAX] = "";
    int64_t last_t = INT64_MIN;
    uint64_t last_id = 0;
    size_t total = 0, pages = 0;
    for (;;) {
        Annals__Wire__V1__ListLogEntriesRequest req =
            ANNALS__WIRE__V1__LIST_LOG_ENTRIES_REQUEST__INIT;
        req.log_id = BINZ(f->log);
        req.page_size = 30;
        req.page_token = BINZ(token);
        ann_buf resp = ANN_BUF_INIT;
        ann_err err;
        assert_int_equal(call(f, ANN_RPC_LIST, &f->a, &req.base, &resp, &err), 0);
        Annals__Wire__V1__ListLogEntriesResponse *r =
            annals__wire__v1__list_log_entries_response__unpack(NULL, resp.len, resp.data);
        assert_non_null(r);
        pages++;
        for (size_t i = 0; i < r->n_entries; i++) {
            Annals__Wire__V1__LogEntry *e = r->entries[i];
            char idbuf[24] = {0};
            memcpy(idbuf, e->entry_id.data, e->entry_id.len);
            uint64_t id = strtoull(idbuf, NULL, 10);
            int64_t t = e->time->seconds;
            assert_true(t > last_t || (t == last_t && id > last_id));
            last_t = t, last_id = id;
            assert_true(id >= 1 && id <= 250);
            assert_int_equal(seen[id], 0);
            seen[id] = 1;
            total++;
        }
        /* Writes during the walk are not part of it. */
        assert_int_equal(write_batch(f, 5, 900 + (int64_t)pages, "during"), 0);
        memset(token, 0, sizeof token);
        if (r->next_page_token.len)
            memcpy(token, r->next_page_token.data, r->next_page_token.len);
        annals__wire__v1__list_log_entries_response__free_unpacked(r, NULL);
        ann_buf_release(&resp);
        if (!token[0])
            break;
    }
    assert_int_equal(total, 250);
    assert_int_equal(pages, 9);
}

static void isolation_and_deletion(void **state)
{
    fx *f = *state;
    ann_err err, err_missing;
    ann_buf resp = ANN_BUF_INIT;
    assert_int_equal(write_batch(f, 3, 1, "x"), 0);
    Annals__Wire__V1__GetLogRequest get = ANNALS__WIRE__V1__GET_LOG_REQUEST__INIT;
    get.log_id = BINZ(f->log);
    assert_int_equal(call(f, ANN_RPC_GET_LOG, &f->b, &get.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    Annals__Wire__V1__GetLogRequest missing = ANNALS__WIRE__V1__GET_LOG_REQUEST__INIT;
    char other[] = "00000000-0000-4000-8000-00000000abcd";
    missing.log_id = BINZ(other);
    assert_int_equal(call(f, ANN_RPC_GET_LOG, &f->a, &missing.base, &resp, &err_missing), -1);
    assert_int_equal(err_missing.code, ANN_ENOTFOUND);

    Annals__Wire__V1__DeleteLogRequest del = ANNALS__WIRE__V1__DELETE_LOG_REQUEST__INIT;
    del.log_id = BINZ(f->log);
    assert_int_equal(call(f, ANN_RPC_DELETE_LOG, &f->b, &del.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_int_equal(call(f, ANN_RPC_GET_LOG, &f->a, &get.base, &resp, &err), 0);
    assert_int_equal(call(f, ANN_RPC_DELETE_LOG, &f->a, &del.base, &resp, &err), 0);
    assert_int_equal(call(f, ANN_RPC_GET_LOG, &f->a, &get.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_int_equal(call(f, ANN_RPC_DELETE_LOG, &f->a, &del.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    ann_buf_release(&resp);
}

/* SetLegalHold and CreateLogRequest.retention_days (docs/api.md, "Retention and legal
 * hold"): validation names the field and changes nothing; a held log refuses DeleteLog
 * with EPRECOND; another tenant's log is not found. */
static void hold_rules(void **state)
{
    fx *f = *state;
    ann_err err;
    ann_buf resp = ANN_BUF_INIT;
    Annals__Wire__V1__SetLegalHoldRequest h = ANNALS__WIRE__V1__SET_LEGAL_HOLD_REQUEST__INIT;
    h.log_id = BINZ(f->log);
    h.hold = true;
    h.reason = BINZ("case 9");
    assert_int_equal(call(f, ANN_RPC_SET_LEGAL_HOLD, &f->b, &h.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    static char big[1026];
    memset(big, 'x', 1025);
    h.reason = BINZ(big);
    assert_int_equal(call(f, ANN_RPC_SET_LEGAL_HOLD, &f->a, &h.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "reason"));
    h.reason = (ProtobufCBinaryData){3, (uint8_t *)"a\0b"};
    assert_int_equal(call(f, ANN_RPC_SET_LEGAL_HOLD, &f->a, &h.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    h.reason = (ProtobufCBinaryData){2, (uint8_t *)"\xc3("};
    assert_int_equal(call(f, ANN_RPC_SET_LEGAL_HOLD, &f->a, &h.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);

    Annals__Wire__V1__DeleteLogRequest del = ANNALS__WIRE__V1__DELETE_LOG_REQUEST__INIT;
    del.log_id = BINZ(f->log);
    ann_log_meta m = {0};
    assert_int_equal(ann_store_log_get(f->store, f->a.id, f->log, &m, &err), 0);
    assert_false(m.legal_hold); /* the refused requests changed nothing */
    assert_false(m.has_hold_change);
    ann_log_meta_release(&m);

    h.reason = BINZ("case 9");
    assert_int_equal(call(f, ANN_RPC_SET_LEGAL_HOLD, &f->a, &h.base, &resp, &err), 0);
    assert_int_equal(call(f, ANN_RPC_DELETE_LOG, &f->a, &del.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EPRECOND);
    assert_non_null(strstr(err.msg, "hold"));
    assert_int_equal(ann_store_log_get(f->store, f->a.id, f->log, &m, &err), 0);
    assert_true(m.legal_hold);
    assert_string_equal(m.last_hold_change.reason, "case 9");
    ann_log_meta_release(&m);
    h.hold = false;
    assert_int_equal(call(f, ANN_RPC_SET_LEGAL_HOLD, &f->a, &h.base, &resp, &err), 0);
    assert_int_equal(call(f, ANN_RPC_DELETE_LOG, &f->a, &del.base, &resp, &err), 0);

    Annals__Wire__V1__CreateLogRequest cr = ANNALS__WIRE__V1__CREATE_LOG_REQUEST__INIT;
    cr.retention_days = -1;
    assert_int_equal(call(f, ANN_RPC_CREATE_LOG, &f->a, &cr.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "retention_days"));
    cr.retention_days = 36501;
    assert_int_equal(call(f, ANN_RPC_CREATE_LOG, &f->a, &cr.base, &resp, &err), -1);
    assert_non_null(strstr(err.msg, "retention_days"));
    cr.retention_days = 12;
    assert_int_equal(call(f, ANN_RPC_CREATE_LOG, &f->a, &cr.base, &resp, &err), 0);
    Annals__Wire__V1__CreateLogResponse *r =
        annals__wire__v1__create_log_response__unpack(NULL, resp.len, resp.data);
    assert_non_null(r);
    assert_non_null(r->log);
    assert_int_equal(r->log->retention_days, 12);
    assert_false(r->log->legal_hold);
    annals__wire__v1__create_log_response__free_unpacked(r, NULL);
    ann_buf_release(&resp);
}

static void revoke_rules(void **state)
{
    fx *f = *state;
    ann_err err;
    ann_buf resp = ANN_BUF_INIT;
    assert_int_equal(write_batch(f, 3, 1, "r"), 0);
    ProtobufCBinaryData ids[2] = {BIN("1"), BIN("999")};
    Annals__Wire__V1__RevokeLogEntriesRequest req =
        ANNALS__WIRE__V1__REVOKE_LOG_ENTRIES_REQUEST__INIT;
    req.log_id = BINZ(f->log);
    req.entry_ids = ids;
    req.n_entry_ids = 2;
    req.reason = BIN("leaked secret");
    assert_int_equal(call(f, ANN_RPC_REVOKE, &f->a, &req.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    ids[1] = BIN("x1");
    assert_int_equal(call(f, ANN_RPC_REVOKE, &f->a, &req.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "entry_ids[1]"));
    req.n_entry_ids = 1;
    assert_int_equal(call(f, ANN_RPC_REVOKE, &f->a, &req.base, &resp, &err), 0);
    assert_int_equal(call(f, ANN_RPC_REVOKE, &f->a, &req.base, &resp, &err), 0);
    assert_int_equal(call(f, ANN_RPC_REVOKE, &f->b, &req.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);

    /* The tail sees entry 1 redacted, with no payload; 2 and 3 intact. */
    Annals__Wire__V1__TailLogEntriesRequest treq = ANNALS__WIRE__V1__TAIL_LOG_ENTRIES_REQUEST__INIT;
    treq.log_id = BINZ(f->log);
    treq.after_entry_id = BIN("0");
    ann_buf in = ANN_BUF_INIT;
    pack(&treq.base, &in);
    ann_tail t;
    assert_int_equal(ann_tail_open(&f->svc, &f->a, in.data, in.len, &t, &err), 0);
    size_t n;
    resp.len = 0;
    assert_int_equal(ann_tail_next(&t, &resp, &n, &err), 0);
    assert_int_equal(n, 3);
    Annals__Wire__V1__TailLogEntriesResponse *r =
        annals__wire__v1__tail_log_entries_response__unpack(NULL, resp.len, resp.data);
    assert_non_null(r);
    assert_true(r->entries[0]->redacted);
    assert_int_equal(r->entries[0]->payload_case, ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD__NOT_SET);
    assert_false(r->entries[1]->redacted);
    assert_int_equal(r->entries[1]->payload_case,
                     ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD);
    annals__wire__v1__tail_log_entries_response__free_unpacked(r, NULL);
    resp.len = 0;
    assert_int_equal(ann_tail_next(&t, &resp, &n, &err), 0);
    assert_int_equal(n, 0);
    ann_buf_release(&in);
    ann_buf_release(&resp);
}

static void auth_header(void **state)
{
    fx *f = *state;
    ann_err err;
    ann_tenant t;
    assert_int_equal(ann_service_auth(&f->svc, "Bearer key-a", 12, &t, &err), 0);
    assert_string_equal(t.id, f->a.id);
    assert_int_equal(ann_service_auth(&f->svc, "bearer key-b", 12, &t, &err), 0);
    assert_string_equal(t.id, f->b.id);
    assert_int_equal(ann_service_auth(&f->svc, "Bearer key-c", 12, &t, &err), -1);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_int_equal(ann_service_auth(&f->svc, "key-a", 5, &t, &err), -1);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_int_equal(ann_service_auth(&f->svc, NULL, 0, &t, &err), -1);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_int_equal(ann_service_auth(&f->svc, "Bearer ", 7, &t, &err), -1);
    assert_int_equal(err.code, ANN_EUNAUTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bad_entries_are_refused_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(request_level_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(deep_nesting_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(floods_are_refused_before_unpacking, setup, teardown),
        cmocka_unit_test_setup_teardown(json_payload_bytes_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(time_bounds_are_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(paging_is_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(isolation_and_deletion, setup, teardown),
        cmocka_unit_test_setup_teardown(revoke_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(hold_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(auth_header, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
