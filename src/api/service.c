#include "api/service.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/service_internal.h"
#include "api/wire.h"
#include "common/random.h"
#include "domain/integrity.h"
#include "domain/limits.h"
#include "domain/rules.h"
#include "domain/text.h"
#include "domain/token.h"

/* ---------- small helpers ---------- */

int64_t svc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void svc_new_uuid(char out[ANN_UUID_LEN + 1])
{
    ann_uuid_v4_new(out);
}

/* Canonical (lower-case) log id from the request's bytes. */
int svc_parse_log_id(const ProtobufCBinaryData *f, const char *field, char out[ANN_UUID_LEN + 1],
                     ann_err *err)
{
    uint8_t u[16];
    if (f->len == 0)
        return ann_err_set(err, ANN_EINVAL, "%s: required", field);
    if (ann_uuid_parse((const char *)f->data, f->len, u) != 0)
        return ann_err_set(err, ANN_EINVAL, "%s: not a UUID", field);
    ann_uuid_format(u, out);
    return 0;
}

int svc_check_text(const ProtobufCBinaryData *f, const char *field, ann_err *err)
{
    if (!ann_utf8_valid((const char *)f->data, f->len))
        return ann_err_set(err, ANN_EINVAL, "%s: not valid UTF-8", field);
    return 0;
}

int svc_check_labels(Annals__Wire__V1__Label **labels, size_t n, const char *field, ann_err *err)
{
    if (n > ANN_MAX_LABELS)
        return ann_err_set(err, ANN_EINVAL, "%s: %zu labels, at most %d allowed", field, n,
                           ANN_MAX_LABELS);
    for (size_t i = 0; i < n; i++) {
        const ProtobufCBinaryData *k = &labels[i]->key, *v = &labels[i]->value;
        if (k->len > ANN_MAX_LABEL_KEY_BYTES)
            return ann_err_set(err, ANN_EINVAL, "%s: key of %zu bytes, at most %d allowed", field,
                               k->len, ANN_MAX_LABEL_KEY_BYTES);
        if (v->len > ANN_MAX_LABEL_VALUE_BYTES)
            return ann_err_set(err, ANN_EINVAL, "%s[%.*s]: value of %zu bytes, at most %d allowed",
                               field,
                               ann_utf8_valid((const char *)k->data, k->len) ? (int)k->len : 0,
                               (const char *)k->data, v->len, ANN_MAX_LABEL_VALUE_BYTES);
        if (!ann_utf8_valid((const char *)k->data, k->len))
            return ann_err_set(err, ANN_EINVAL, "%s: key is not valid UTF-8", field);
        if (!ann_utf8_valid((const char *)v->data, v->len))
            return ann_err_set(err, ANN_EINVAL, "%s: value is not valid UTF-8", field);
    }
    return 0;
}

/* Counts refused before unpacking: twice the contract's limits, so a moderate excess
 * still gets the precise message of the validation below, while an absurd one never
 * reaches the unpacker (a 2-byte empty entry costs protobuf-c ~200 bytes). */
static const ann_wire_limit unpack_limits[] = {
    {&annals__wire__v1__write_log_entries_request_in__descriptor, 2, 2 * ANN_MAX_ENTRIES_PER_WRITE},
    {&annals__wire__v1__log_entry_in__descriptor, 23, 2 * ANN_MAX_LABELS},
    {&annals__wire__v1__create_log_request__descriptor, 1, 2 * ANN_MAX_LABELS},
    {&annals__wire__v1__revoke_log_entries_request__descriptor, 2, 2 * ANN_MAX_REVOKE_IDS},
    {NULL, 0, 0},
};

/* Untrusted bytes -> message, refusing what protobuf-c cannot safely unpack. */
ProtobufCMessage *svc_decode(const ProtobufCMessageDescriptor *d, const uint8_t *req, size_t len,
                             ann_err *err)
{
    if (ann_wire_precheck(d, req, len, ANN_MAX_NESTING, unpack_limits, err) != 0)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, req);
    if (!m) {
        const char *name = d->short_name;
        size_t n = strlen(name);
        if (n > 2 && strcmp(name + n - 2, "In") == 0)
            n -= 2; /* the inbound view's name is the public one plus "In" */
        ann_err_set(err, ANN_EINVAL, "request: not a valid %.*s", (int)n, name);
    }
    return m;
}

void svc_add_entry_id(ann_buf *b, uint32_t field, uint64_t id)
{
    char s[24];
    int n = snprintf(s, sizeof s, "%" PRIu64, id);
    ann_buf_add_len_field(b, field, s, (size_t)n);
}

/* One LogEntry as the public wire sees it: the header fields, then the stored body
 * (labels and payload, already LogEntry fields) verbatim. */
void svc_encode_entry(ann_buf *out, const char *log_id, const ann_entry *e, ann_buf *tmp)
{
    tmp->len = 0;
    ann_buf_add_len_field(tmp, 1, log_id, strlen(log_id));
    ann_buf_add_len_field(tmp, 2, e->insert_id, e->insert_id_len);
    svc_add_entry_id(tmp, 20, e->entry_id);
    ann_wire_add_ts(tmp, 21, e->time_ns);
    ann_wire_add_ts(tmp, 22, e->insert_time_ns);
    /* The body carries LogEntry.integrity (43) when the store keeps a tree; a redacted
     * entry's body is that field alone, holding its body_hash (store.h). */
    if (!(e->flags & ANN_ENTRY_REDACTED))
        ann_buf_add(tmp, e->body, e->body_len);
    else if (ann_buf_add_tag(tmp, 40, 0), ann_buf_add_varint(tmp, 1),
             ann_integrity_is_hash_field(e->body, e->body_len))
        ann_buf_add(tmp, e->body, e->body_len);
    if (e->severity)
        ann_buf_add_tag(tmp, 41, 0), ann_buf_add_varint(tmp, (uint64_t)(int64_t)e->severity);
    if ((e->flags & ANN_ENTRY_REDACTED) && e->revocation) {
        ann_buf rv = ANN_BUF_INIT;
        const char *actor = e->revocation->actor ? e->revocation->actor : "";
        const char *reason = e->revocation->reason ? e->revocation->reason : "";
        if (*actor)
            ann_buf_add_len_field(&rv, 1, actor, strlen(actor));
        if (*reason)
            ann_buf_add_len_field(&rv, 2, reason, strlen(reason));
        ann_wire_add_ts(&rv, 3, e->revocation->time_ns);
        ann_buf_add_len_field(tmp, 42, rv.data, rv.len);
        ann_buf_release(&rv);
    }
    ann_buf_add_len_field(out, 1, tmp->data, tmp->len);
}

/* A Log message: id, the stored labels (Log fields, verbatim), create_time, count. */
void svc_encode_log(ann_buf *out, uint32_t field, const ann_log_meta *m)
{
    ann_buf log = ANN_BUF_INIT;
    ann_buf_add_len_field(&log, 1, m->id, strlen(m->id));
    ann_buf_add(&log, m->labels, m->labels_len);
    ann_wire_add_ts(&log, 3, m->create_time_ns);
    if (m->entry_count)
        ann_buf_add_tag(&log, 4, 0), ann_buf_add_varint(&log, m->entry_count);
    if (m->sealed)
        ann_buf_add_tag(&log, 5, 0), ann_buf_add_varint(&log, 1);
    if (m->legal_hold)
        ann_buf_add_tag(&log, 6, 0), ann_buf_add_varint(&log, 1);
    if (m->retention_days)
        ann_buf_add_tag(&log, 7, 0), ann_buf_add_varint(&log, (uint64_t)(int64_t)m->retention_days);
    if (m->has_hold_change) {
        const ann_hold_change *c = &m->last_hold_change;
        ann_buf ch = ANN_BUF_INIT;
        if (c->hold)
            ann_buf_add_tag(&ch, 1, 0), ann_buf_add_varint(&ch, 1);
        if (c->actor[0])
            ann_buf_add_len_field(&ch, 2, c->actor, strlen(c->actor));
        if (c->reason && c->reason[0])
            ann_buf_add_len_field(&ch, 3, c->reason, strlen(c->reason));
        ann_wire_add_ts(&ch, 4, c->time_ns);
        ann_buf_add_len_field(&log, 20, ch.data, ch.len);
        ann_buf_release(&ch);
    }
    ann_buf_add_len_field(out, field, log.data, log.len);
    ann_buf_release(&log);
}

/* ---------- setup and auth ---------- */

int ann_service_init(ann_service *svc, ann_store *store, ann_err *err)
{
    memset(svc, 0, sizeof *svc);
    svc->store = store;
    svc->default_wait = ANN_WAIT_QUERYABLE;
    return ann_store_secret(store, svc->secret, err);
}

static const struct {
    const char *path;
    ann_rpc rpc;
} methods[] = {
    {"/annals.v1.LoggingCommandService/CreateLog", ANN_RPC_CREATE_LOG},
    {"/annals.v1.LoggingCommandService/DeleteLog", ANN_RPC_DELETE_LOG},
    {"/annals.v1.LoggingCommandService/WriteLogEntries", ANN_RPC_WRITE},
    {"/annals.v1.LoggingCommandService/RevokeLogEntries", ANN_RPC_REVOKE},
    {"/annals.v1.LoggingCommandService/SetLegalHold", ANN_RPC_SET_LEGAL_HOLD},
    {"/annals.v1.LoggingQueryService/ListLogEntries", ANN_RPC_LIST},
    {"/annals.v1.LoggingQueryService/GetLog", ANN_RPC_GET_LOG},
    {"/annals.v1.LoggingQueryService/TailLogEntries", ANN_RPC_TAIL},
    {"/annals.v1.LoggingQueryService/ListLogs", ANN_RPC_LIST_LOGS},
    {"/annals.v1.LoggingQueryService/ReadLogEntries", ANN_RPC_READ},
    {"/annals.v1.LoggingQueryService/SearchLogEntries", ANN_RPC_SEARCH},
    {"/annals.v1.LoggingQueryService/GetLogCheckpoint", ANN_RPC_CHECKPOINT},
    {"/annals.v1.LoggingQueryService/GetInclusionProof", ANN_RPC_INCLUSION},
    {"/annals.v1.LoggingQueryService/GetConsistencyProof", ANN_RPC_CONSISTENCY},
    {"/annals.v1.LoggingCommandService/SealLog", ANN_RPC_SEAL},
    {"/annals.v1.LoggingQueryService/CreateShareLink", ANN_RPC_SHARE},
};

const char *ann_rpc_path(ann_rpc rpc)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].rpc == rpc)
            return methods[i].path;
    return NULL;
}

int ann_rpc_from_path(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].path) == len && memcmp(methods[i].path, path, len) == 0)
            return (int)methods[i].rpc;
    return -1;
}

int ann_service_auth(ann_service *svc, const char *value, size_t len, ann_tenant *out, ann_err *err)
{
    const char *key, *why;
    size_t klen;
    if (ann_bearer_parse(value, len, &key, &klen, &why) != 0)
        return ann_err_set(err, ANN_EUNAUTH, "%s", why);
    if (ann_share_token_is(key, klen))
        return ann_share_auth(svc, key, klen, out, err);
    uint8_t hash[32];
    ann_key_hash(key, klen, hash);
    return ann_service_recheck(svc, hash, out, err);
}

int ann_service_recheck(ann_service *svc, const uint8_t key_hash[32], ann_tenant *out, ann_err *err)
{
    /* Unknown, revoked and expired keys get the same answer: a caller learns nothing of
     * which keys exist. */
    memset(out, 0, sizeof *out);
    if (ann_store_tenant_by_key(svc->store, key_hash, out, err) != 0) {
        if (err && err->code == ANN_EUNAUTH)
            ann_err_set(err, ANN_EUNAUTH, "authorization: unknown key");
        return -1;
    }
    if (out->expire_ns != 0 && svc_now_ns() >= out->expire_ns)
        return ann_err_set(err, ANN_EUNAUTH, "authorization: unknown key");
    return 0;
}

/* The roles that may make each rpc, besides admin (docs/api.md, "Keys and roles"). */
static uint32_t rpc_roles(ann_rpc rpc)
{
    switch (rpc) {
    case ANN_RPC_CREATE_LOG:
    case ANN_RPC_WRITE:
    case ANN_RPC_SEAL:
        return ANN_ROLE_WRITER;
    case ANN_RPC_GET_LOG:
        return ANN_ROLE_WRITER | ANN_ROLE_READER;
    case ANN_RPC_REVOKE:
        return ANN_ROLE_REDACTOR;
    case ANN_RPC_LIST:
    case ANN_RPC_TAIL:
    case ANN_RPC_LIST_LOGS:
    case ANN_RPC_READ:
    case ANN_RPC_SEARCH:
    case ANN_RPC_CHECKPOINT:
    case ANN_RPC_INCLUSION:
    case ANN_RPC_CONSISTENCY:
    case ANN_RPC_SHARE:
        return ANN_ROLE_READER;
    case ANN_RPC_DELETE_LOG:
    case ANN_RPC_SET_LEGAL_HOLD:
        break;
    }
    return ANN_ROLE_ADMIN;
}

static const char *rpc_name(ann_rpc rpc)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].rpc == rpc)
            return strrchr(methods[i].path, '/') + 1;
    return "this call";
}

_Static_assert(sizeof "writer or reader or redactor or admin" <= ANN_ROLES_TEXT_MAX,
               "room for every role joined with \" or \"");

int ann_service_authorize(const ann_tenant *t, ann_rpc rpc, ann_err *err)
{
    if (t->share_log[0]) { /* a share link reads its one log: GetLog and the reads of entries */
        if (rpc == ANN_RPC_GET_LOG || rpc == ANN_RPC_LIST || rpc == ANN_RPC_TAIL ||
            rpc == ANN_RPC_READ || rpc == ANN_RPC_SEARCH)
            return 0;
        return ann_err_set(err, ANN_EPERM,
                           "permission denied: %s is not allowed with a share link (it reads "
                           "one log)",
                           rpc_name(rpc));
    }
    uint32_t need = rpc_roles(rpc);
    if (ann_roles_allow(t->roles, need))
        return 0;
    char want[ANN_ROLES_TEXT_MAX], have[ANN_ROLES_TEXT_MAX];
    ann_roles_format(need, want);
    for (char *p = strstr(want, ", "); p; p = strstr(p, ", ")) /* "writer or reader" */
        memmove(p + 4, p + 2, strlen(p + 2) + 1), memcpy(p, " or ", 4);
    return ann_err_set(err, ANN_EPERM, "permission denied: %s needs the %s role; key '%s' has %s",
                       rpc_name(rpc), want, t->key_name, ann_roles_format(t->roles, have));
}

/* ---------- unary rpcs ---------- */

/*
 * The commands (CreateLog, DeleteLog, WriteLogEntries, RevokeLogEntries) complete through
 * the store's asynchronous wrappers: their state lives on the heap, starts with an
 * `op_base`, and is freed by op_finish() in the completion (which may run on any thread,
 * possibly before the store call returned).
 */
typedef struct op_base {
    ann_service *svc;
    ann_unary_done_fn done;
    void *ud;
    ann_tenant tenant;
    ann_buf resp;
} op_base;

static void *op_new(size_t size, ann_service *svc, const ann_tenant *t, ann_unary_done_fn done,
                    void *ud)
{
    op_base *b = ann_xcalloc(1, size);
    b->svc = svc;
    b->done = done;
    b->ud = ud;
    b->tenant = *t;
    return b;
}

/* Reports the outcome (resp on success) and frees the base (the caller freed the rest). */
static void op_finish(op_base *b, int rc, const ann_err *err)
{
    ann_err fallback;
    if (rc != 0 && !err)
        err = &fallback, ann_err_set(&fallback, ANN_EINTERNAL, "store: failed without an error");
    b->done(b->ud, rc, &b->resp, rc == 0 ? NULL : err);
    ann_buf_release(&b->resp);
    free(b);
}

typedef struct create_op {
    op_base base;
    ann_buf labels;
    ann_log_meta m;
    ann_log_spec spec;
} create_op;

static void create_done(void *ud, int rc, const ann_err *err)
{
    create_op *o = ud;
    if (rc == 0)
        svc_encode_log(&o->base.resp, 1, &o->m);
    ann_buf_release(&o->labels);
    op_finish(&o->base, rc, err);
}

static void do_create_log(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                          ann_unary_done_fn done, void *ud)
{
    ann_err err = {0};
    create_op *o = op_new(sizeof *o, svc, t, done, ud);
    Annals__Wire__V1__CreateLogRequest *r = (Annals__Wire__V1__CreateLogRequest *)svc_decode(
        &annals__wire__v1__create_log_request__descriptor, req, len, &err);
    if (!r)
        goto fail;
    if (svc_check_labels(r->labels, r->n_labels, "labels", &err) != 0)
        goto fail;
    if (r->retention_days < 0 || r->retention_days > ANN_MAX_RETENTION_DAYS) {
        ann_err_set(&err, ANN_EINVAL,
                    "retention_days: %d is out of range (0, the tenant's period, to %d days)",
                    (int)r->retention_days, ANN_MAX_RETENTION_DAYS);
        goto fail;
    }
    o->m.retention_days = r->retention_days;
    /* Stored as Log.labels fields, so GetLog splices them back verbatim. */
    for (size_t i = 0; i < r->n_labels; i++) {
        size_t n = annals__wire__v1__label__get_packed_size(r->labels[i]);
        ann_buf_add_tag(&o->labels, 2, 2);
        ann_buf_add_varint(&o->labels, n);
        ann_buf_reserve(&o->labels, n);
        o->labels.len +=
            annals__wire__v1__label__pack(r->labels[i], o->labels.data + o->labels.len);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    o->m.create_time_ns = svc_now_ns();
    o->m.labels = o->labels.data;
    o->m.labels_len = o->labels.len;
    svc_new_uuid(o->m.id);
    o->spec = (ann_log_spec){.tenant_id = o->base.tenant.id,
                             .log_id = o->m.id,
                             .labels = o->labels.data,
                             .labels_len = o->labels.len,
                             .now_ns = o->m.create_time_ns,
                             .retention_days = o->m.retention_days};
    ann_store_log_create_spec_async(svc->store, &o->spec, create_done, o);
    return;
fail:
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
    create_done(o, -1, &err);
}

static int do_get_log(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                      ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1];
    ann_log_meta m = {0};
    Annals__Wire__V1__GetLogRequest *r = (Annals__Wire__V1__GetLogRequest *)svc_decode(
        &annals__wire__v1__get_log_request__descriptor, req, len, err);
    if (!r)
        return -1;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0 ||
        svc_share_log_check(t, log_id, err) != 0 ||
        ann_store_log_get(svc->store, t->id, log_id, &m, err) != 0)
        goto done;
    svc_encode_log(resp, 1, &m);
    rc = 0;
done:
    ann_log_meta_release(&m);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

typedef struct delete_op {
    op_base base;
    char log_id[ANN_UUID_LEN + 1];
} delete_op;

static void delete_done(void *ud, int rc, const ann_err *err)
{
    delete_op *o = ud; /* DeleteLogResponse is empty */
    op_finish(&o->base, rc, err);
}

static void do_delete_log(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                          ann_unary_done_fn done, void *ud)
{
    ann_err err = {0};
    delete_op *o = op_new(sizeof *o, svc, t, done, ud);
    Annals__Wire__V1__DeleteLogRequest *r = (Annals__Wire__V1__DeleteLogRequest *)svc_decode(
        &annals__wire__v1__delete_log_request__descriptor, req, len, &err);
    if (!r) {
        delete_done(o, -1, &err);
        return;
    }
    int rc = svc_parse_log_id(&r->log_id, "log_id", o->log_id, &err);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (rc != 0) {
        delete_done(o, -1, &err);
        return;
    }
    ann_store_log_delete_async(svc->store, o->base.tenant.id, o->log_id, delete_done, o);
}

/* Validates one entry of a write; fills `e` except the body. */
static int check_entry(const Annals__Wire__V1__LogEntryIn *w, size_t i, const char *log_id,
                       ann_entry *e, int64_t now, ann_err *err)
{
    char field[64];
    size_t sz = annals__wire__v1__log_entry_in__get_packed_size(w);
    if (sz > ANN_MAX_ENTRY_BYTES)
        return ann_err_set(err, ANN_EINVAL,
                           "entries[%zu]: %zu bytes serialized, at most %d allowed", i, sz,
                           ANN_MAX_ENTRY_BYTES);
    if (w->log_id.len) {
        char own[ANN_UUID_LEN + 1];
        uint8_t u[16];
        if (ann_uuid_parse((const char *)w->log_id.data, w->log_id.len, u) != 0 ||
            (ann_uuid_format(u, own), strcmp(own, log_id) != 0))
            return ann_err_set(err, ANN_EINVAL,
                               "entries[%zu].log_id: must be empty or the request's log_id", i);
    }
    /* Each check runs silent first; the field's name is formatted only for the message of
     * one that fails (three snprintf per entry were 4 % of the server's CPU at ingest). */
    if (w->insert_id.len > ANN_MAX_INSERT_ID_BYTES)
        return ann_err_set(err, ANN_EINVAL, "entries[%zu].insert_id: %zu bytes, at most %d allowed",
                           i, w->insert_id.len, ANN_MAX_INSERT_ID_BYTES);
    if (svc_check_text(&w->insert_id, "", NULL) != 0) {
        snprintf(field, sizeof field, "entries[%zu].insert_id", i);
        return svc_check_text(&w->insert_id, field, err);
    }
    if (svc_check_labels(w->labels, w->n_labels, "", NULL) != 0) {
        snprintf(field, sizeof field, "entries[%zu].labels", i);
        return svc_check_labels(w->labels, w->n_labels, field, err);
    }
    if (w->payload_case == ANNALS__WIRE__V1__LOG_ENTRY_IN__PAYLOAD_TEXT_PAYLOAD) {
        if (svc_check_text(&w->text_payload, "", NULL) != 0) {
            snprintf(field, sizeof field, "entries[%zu].text_payload", i);
            return svc_check_text(&w->text_payload, field, err);
        }
    } else if (w->payload_case == ANNALS__WIRE__V1__LOG_ENTRY_IN__PAYLOAD_JSON_PAYLOAD) {
        const char *why =
            ann_wire_struct_check(w->json_payload.data, w->json_payload.len, ANN_MAX_NESTING);
        if (why)
            return ann_err_set(err, ANN_EINVAL, "entries[%zu].json_payload: %s", i, why);
    }
    if (!ann_severity_valid(w->severity))
        return ann_err_set(err, ANN_EINVAL, "entries[%zu].severity: %d is not a Severity", i,
                           (int)w->severity);
    e->time_ns = now;
    if (w->time && ann_wire_ts_to_ns(w->time, &e->time_ns) != 0)
        return ann_err_set(err, ANN_EINVAL,
                           "entries[%zu].time: out of range (" ANN_TIME_RANGE_TEXT ")", i);
    e->insert_time_ns = now;
    e->severity = w->severity;
    e->insert_id = (const char *)w->insert_id.data;
    e->insert_id_len = w->insert_id.len;
    return 0;
}

#define GEN_IID_LEN (ANN_UUID_LEN + 8) /* "<uuid>/<index in the request>" */

/* "<uuid>/<i>" into out (GEN_IID_LEN bytes; i < 1,000,000), its length returned: by hand,
 * as snprintf cost more than the rest of the entry's validation. */
_Static_assert(ANN_MAX_ENTRIES_PER_WRITE <= 1000000, "gen_iid writes at most six digits");

static size_t gen_iid(char out[GEN_IID_LEN], const char uuid[ANN_UUID_LEN + 1], size_t i)
{
    char digits[8];
    size_t nd = 0;
    do
        digits[nd++] = (char)('0' + i % 10);
    while ((i /= 10) && nd < 6);
    memcpy(out, uuid, ANN_UUID_LEN);
    out[ANN_UUID_LEN] = '/';
    for (size_t k = 0; k < nd; k++)
        out[ANN_UUID_LEN + 1 + k] = digits[nd - 1 - k];
    out[ANN_UUID_LEN + 1 + nd] = '\0';
    return ANN_UUID_LEN + 1 + nd;
}

/* The wait levels of WriteLogEntriesRequest.Wait, as numbers (UNSPECIFIED is 0). */
static bool wait_valid(int32_t w)
{
    return w >= ANN_WAIT_DEFAULT && w <= ANN_WAIT_QUERYABLE;
}

typedef struct write_op {
    op_base base;
    char log_id[ANN_UUID_LEN + 1];
    Annals__Wire__V1__WriteLogEntriesRequestIn *r; /* the entries point into it */
    ann_entry *entries;
    uint64_t *ids;
    size_t *body_off;
    char (*gen_ids)[GEN_IID_LEN];
    ann_buf bodies;
    ann_append ap;
} write_op;

static void write_done(void *ud, int rc, const ann_err *err)
{
    write_op *o = ud;
    if (rc == 0 && o->ap.ids_known) /* else (DURABLE, before sequencing): no ids */
        for (size_t i = 0; i < o->ap.n; i++)
            svc_add_entry_id(&o->base.resp, 1, o->ids[i]);
    ann_buf_release(&o->bodies);
    free(o->gen_ids);
    free(o->body_off);
    free(o->ids);
    free(o->entries);
    if (o->r)
        protobuf_c_message_free_unpacked(&o->r->base, NULL);
    op_finish(&o->base, rc, err);
}

static void do_write(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                     ann_unary_done_fn done, void *ud)
{
    ann_err err = {0};
    char req_uuid[ANN_UUID_LEN + 1] = "";
    write_op *o = op_new(sizeof *o, svc, t, done, ud);
    Annals__Wire__V1__WriteLogEntriesRequestIn *r = o->r =
        (Annals__Wire__V1__WriteLogEntriesRequestIn *)svc_decode(
            &annals__wire__v1__write_log_entries_request_in__descriptor, req, len, &err);
    if (!r)
        goto fail;
    if (svc_parse_log_id(&r->log_id, "log_id", o->log_id, &err) != 0)
        goto fail;
    if (!wait_valid(r->wait)) {
        ann_err_set(&err, ANN_EINVAL,
                    "wait: %d is not a WriteLogEntriesRequest.Wait (0 UNSPECIFIED, 1 DURABLE, "
                    "2 SEQUENCED, 3 QUERYABLE)",
                    (int)r->wait);
        goto fail;
    }
    size_t n = r->n_entries;
    if (n == 0) {
        ann_err_set(&err, ANN_EINVAL, "entries: at least one entry is required");
        goto fail;
    }
    if (n > ANN_MAX_ENTRIES_PER_WRITE) {
        ann_err_set(&err, ANN_EINVAL, "entries: %zu entries, at most %d per request", n,
                    ANN_MAX_ENTRIES_PER_WRITE);
        goto fail;
    }
    ann_entry *entries = o->entries = ann_xcalloc(n, sizeof *entries);
    o->ids = ann_xcalloc(n, sizeof *o->ids);
    size_t *body_off = o->body_off = ann_xcalloc(n + 1, sizeof *body_off);
    char(*gen_ids)[GEN_IID_LEN] = o->gen_ids = ann_xcalloc(n, sizeof *gen_ids);
    ann_buf *bodies = &o->bodies;
    int64_t now = svc_now_ns();
    for (size_t i = 0; i < n; i++) {
        const Annals__Wire__V1__LogEntryIn *w = r->entries[i];
        if (check_entry(w, i, o->log_id, &entries[i], now, &err) != 0)
            goto fail;
        if (entries[i].insert_id_len == 0) {
            /* Generated before anything is stored, so a redelivery can't duplicate it. */
            /* One random UUID per request and the entry's place in it: unique, and cheap
             * to store compressed (a block holds one UUID per request, not per entry). */
            if (!req_uuid[0])
                svc_new_uuid(req_uuid);
            entries[i].insert_id = gen_ids[i];
            entries[i].insert_id_len = gen_iid(gen_ids[i], req_uuid, i);
            entries[i].flags |= ANN_ENTRY_GENERATED_ID;
        }
        /* The body: the entry's labels and payload as LogEntry fields (the JSON payload
         * travels as the Struct's bytes, which is how field 31 is encoded anyway). */
        Annals__Wire__V1__LogEntryIn body = ANNALS__WIRE__V1__LOG_ENTRY_IN__INIT;
        body.n_labels = w->n_labels;
        body.labels = w->labels;
        body.payload_case = w->payload_case;
        if (w->payload_case == ANNALS__WIRE__V1__LOG_ENTRY_IN__PAYLOAD_TEXT_PAYLOAD)
            body.text_payload = w->text_payload;
        else if (w->payload_case == ANNALS__WIRE__V1__LOG_ENTRY_IN__PAYLOAD_JSON_PAYLOAD)
            body.json_payload = w->json_payload;
        size_t bl = annals__wire__v1__log_entry_in__get_packed_size(&body);
        ann_buf_reserve(bodies, bl);
        body_off[i] = bodies->len;
        bodies->len += annals__wire__v1__log_entry_in__pack(&body, bodies->data + bodies->len);
    }
    body_off[n] = bodies->len;
    for (size_t i = 0; i < n; i++) {
        entries[i].body = bodies->data + body_off[i];
        entries[i].body_len = body_off[i + 1] - body_off[i];
    }
    o->ap =
        (ann_append){.tenant_id = o->base.tenant.id,
                     .log_id = o->log_id,
                     .entries = entries,
                     .n = n,
                     .wait = r->wait != ANN_WAIT_DEFAULT ? (ann_wait)r->wait : svc->default_wait,
                     .ids_out = o->ids};
    ann_store_append_async(svc->store, &o->ap, write_done, o);
    return;
fail:
    write_done(o, -1, &err);
}

typedef struct revoke_op {
    op_base base;
    char log_id[ANN_UUID_LEN + 1];
    char actor[ANN_ACTOR_MAX];
    char *reason;
    uint64_t *ids;
} revoke_op;

static void revoke_done(void *ud, int rc, const ann_err *err)
{
    revoke_op *o = ud; /* RevokeLogEntriesResponse is empty */
    free(o->reason);
    free(o->ids);
    op_finish(&o->base, rc, err);
}

static void do_revoke(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                      ann_unary_done_fn done, void *ud)
{
    ann_err err = {0};
    revoke_op *o = op_new(sizeof *o, svc, t, done, ud);
    Annals__Wire__V1__RevokeLogEntriesRequest *r =
        (Annals__Wire__V1__RevokeLogEntriesRequest *)svc_decode(
            &annals__wire__v1__revoke_log_entries_request__descriptor, req, len, &err);
    if (!r)
        goto fail;
    if (svc_parse_log_id(&r->log_id, "log_id", o->log_id, &err) != 0)
        goto fail;
    if (r->n_entry_ids == 0) {
        ann_err_set(&err, ANN_EINVAL, "entry_ids: at least one entry id is required");
        goto fail;
    }
    if (r->n_entry_ids > ANN_MAX_REVOKE_IDS) {
        ann_err_set(&err, ANN_EINVAL, "entry_ids: %zu ids, at most %d per request", r->n_entry_ids,
                    ANN_MAX_REVOKE_IDS);
        goto fail;
    }
    if (r->reason.len > ANN_MAX_REASON_BYTES) {
        ann_err_set(&err, ANN_EINVAL, "reason: %zu bytes, at most %d allowed", r->reason.len,
                    ANN_MAX_REASON_BYTES);
        goto fail;
    }
    if (svc_check_text(&r->reason, "reason", &err) != 0)
        goto fail;
    o->ids = ann_xcalloc(r->n_entry_ids, sizeof *o->ids);
    for (size_t i = 0; i < r->n_entry_ids; i++) {
        const ProtobufCBinaryData *f = &r->entry_ids[i];
        if (ann_entry_id_parse((const char *)f->data, f->len, false, &o->ids[i]) != 0) {
            ann_err_set(&err, ANN_EINVAL, "entry_ids[%zu]: not an entry id (a decimal 1, 2, ...)",
                        i);
            goto fail;
        }
    }
    o->reason = ann_xmalloc(r->reason.len + 1);
    if (r->reason.len)
        memcpy(o->reason, r->reason.data, r->reason.len);
    o->reason[r->reason.len] = '\0';
    ann_actor_format(t->name, t->key_name, o->actor, sizeof o->actor);
    size_t n = r->n_entry_ids;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    ann_store_revoke_async(svc->store, o->base.tenant.id, o->log_id, o->ids, n, o->actor, o->reason,
                           svc_now_ns(), revoke_done, o);
    return;
fail:
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
    revoke_done(o, -1, &err);
}

static int do_set_legal_hold(ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                             ann_buf *resp, ann_err *err)
{
    int rc = -1;
    char log_id[ANN_UUID_LEN + 1], actor[ANN_ACTOR_MAX];
    char *reason = NULL;
    (void)resp; /* SetLegalHoldResponse is empty */
    Annals__Wire__V1__SetLegalHoldRequest *r = (Annals__Wire__V1__SetLegalHoldRequest *)svc_decode(
        &annals__wire__v1__set_legal_hold_request__descriptor, req, len, err);
    if (!r)
        return -1;
    if (svc_parse_log_id(&r->log_id, "log_id", log_id, err) != 0)
        goto done;
    if (r->reason.len > ANN_MAX_HOLD_REASON_BYTES) {
        ann_err_set(err, ANN_EINVAL, "reason: %zu bytes, at most %d allowed", r->reason.len,
                    ANN_MAX_HOLD_REASON_BYTES);
        goto done;
    }
    if (svc_check_text(&r->reason, "reason", err) != 0)
        goto done;
    if (memchr(r->reason.data, 0, r->reason.len)) {
        ann_err_set(err, ANN_EINVAL, "reason: must not contain NUL");
        goto done;
    }
    reason = ann_xmalloc(r->reason.len + 1);
    if (r->reason.len)
        memcpy(reason, r->reason.data, r->reason.len);
    reason[r->reason.len] = '\0';
    ann_actor_format(t->name, t->key_name, actor, sizeof actor);
    rc = ann_store_log_set_hold(svc->store, t->id, log_id, r->hold, actor, reason, svc_now_ns(),
                                err);
done:
    free(reason);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

/* The other rpcs run here and now. */
static void run_sync(int (*fn)(ann_service *, const ann_tenant *, const uint8_t *, size_t,
                               ann_buf *, ann_err *),
                     ann_service *svc, const ann_tenant *t, const uint8_t *req, size_t len,
                     ann_unary_done_fn done, void *ud)
{
    ann_err err = {0};
    ann_buf resp = ANN_BUF_INIT;
    int rc = fn(svc, t, req, len, &resp, &err);
    done(ud, rc, &resp, rc == 0 ? NULL : &err);
    ann_buf_release(&resp);
}

void ann_service_unary_async(ann_service *svc, ann_rpc rpc, const ann_tenant *tenant,
                             const uint8_t *req, size_t len, ann_unary_done_fn done, void *ud)
{
    ann_err denied;
    if (ann_service_authorize(tenant, rpc, &denied) != 0) { /* before anything is read */
        done(ud, -1, NULL, &denied);
        return;
    }
    switch (rpc) {
    case ANN_RPC_CREATE_LOG:
        do_create_log(svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_DELETE_LOG:
        do_delete_log(svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_WRITE:
        do_write(svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_REVOKE:
        do_revoke(svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_LIST:
        run_sync(svc_do_list, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_READ:
        run_sync(svc_do_read, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_LIST_LOGS:
        run_sync(svc_do_list_logs, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_SEARCH:
        run_sync(svc_do_search, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_SHARE:
        run_sync(svc_do_share, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_GET_LOG:
        run_sync(do_get_log, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_SET_LEGAL_HOLD:
        run_sync(do_set_legal_hold, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_CHECKPOINT:
        run_sync(svc_do_checkpoint, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_INCLUSION:
        run_sync(svc_do_inclusion, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_CONSISTENCY:
        run_sync(svc_do_consistency, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_SEAL:
        run_sync(svc_do_seal, svc, tenant, req, len, done, ud);
        return;
    case ANN_RPC_TAIL:
        break;
    }
    ann_err err;
    ann_err_set(&err, ANN_EINTERNAL, "rpc %d is not unary", (int)rpc);
    done(ud, -1, NULL, &err);
}

/* ann_service_unary: the asynchronous form, waited for on the caller's stack. */
typedef struct unary_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    ann_buf *resp;
    ann_err *err;
} unary_wait;

static void unary_wait_done(void *ud, int rc, ann_buf *resp, const ann_err *err)
{
    unary_wait *w = ud;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    if (rc == 0 && resp && resp->len)
        ann_buf_add(w->resp, resp->data, resp->len);
    if (rc != 0 && w->err)
        *w->err = *err;
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int ann_service_unary(ann_service *svc, ann_rpc rpc, const ann_tenant *tenant, const uint8_t *req,
                      size_t len, ann_buf *resp, ann_err *err)
{
    unary_wait w = {.resp = resp, .err = err};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    ann_service_unary_async(svc, rpc, tenant, req, len, unary_wait_done, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return w.rc == 0 ? 0 : -1;
}
