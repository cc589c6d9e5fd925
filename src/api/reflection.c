#include "api/reflection.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/text.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp;

typedef struct file {
    const char *name;          /* in set */
    ProtobufCBinaryData bytes; /* the serialized FileDescriptorProto */
    size_t *deps;              /* indexes of the files it imports */
    size_t n_deps;
} file;

typedef struct symbol {
    char *name; /* fully qualified, without the leading dot */
    size_t file;
} symbol;

struct ann_reflection {
    Google__Protobuf__FileDescriptorSet *set;
    file *files;
    size_t n_files;
    symbol *syms;
    size_t n_syms, cap_syms;
    char **services;
    size_t n_services;
};

static char *join(const char *prefix, const char *name)
{
    size_t a = strlen(prefix), b = strlen(name);
    char *s = ann_xmalloc(a + b + 2);
    if (a) {
        memcpy(s, prefix, a);
        s[a] = '.';
        memcpy(s + a + 1, name, b + 1);
    } else {
        memcpy(s, name, b + 1);
    }
    return s;
}

static void add_symbol(ann_reflection *r, char *name, size_t fi)
{
    if (r->n_syms == r->cap_syms) {
        r->cap_syms = r->cap_syms ? 2 * r->cap_syms : 64;
        r->syms = ann_xrealloc(r->syms, r->cap_syms * sizeof *r->syms);
    }
    r->syms[r->n_syms++] = (symbol){name, fi};
}

static void add_enum(ann_reflection *r, const char *scope,
                     const Google__Protobuf__EnumDescriptorProto *e, size_t fi)
{
    add_symbol(r, join(scope, e->name), fi);
}

static void add_message(ann_reflection *r, const char *scope,
                        const Google__Protobuf__DescriptorProto *m, size_t fi)
{
    char *full = join(scope, m->name);
    add_symbol(r, full, fi);
    for (size_t i = 0; i < m->n_nested_type; i++)
        add_message(r, full, m->nested_type[i], fi);
    for (size_t i = 0; i < m->n_enum_type; i++)
        add_enum(r, full, m->enum_type[i], fi);
    for (size_t i = 0; i < m->n_field; i++)
        add_symbol(r, join(full, m->field[i]->name), fi);
}

ann_reflection *ann_reflection_new(ann_err *err)
{
    ann_reflection *r = ann_xcalloc(1, sizeof *r);
    r->set = google__protobuf__file_descriptor_set__unpack(NULL, ann_descriptor_set_len,
                                                           ann_descriptor_set);
    if (!r->set) {
        ann_err_set(err, ANN_EINTERNAL, "reflection: the embedded descriptor set is unreadable");
        free(r);
        return NULL;
    }
    r->n_files = r->set->n_file;
    r->files = ann_xcalloc(r->n_files ? r->n_files : 1, sizeof *r->files);
    for (size_t i = 0; i < r->n_files; i++) {
        const Google__Protobuf__FileDescriptorProto *f = r->set->file[i];
        file *o = &r->files[i];
        o->name = f->name;
        o->bytes.len = google__protobuf__file_descriptor_proto__get_packed_size(f);
        o->bytes.data = ann_xmalloc(o->bytes.len ? o->bytes.len : 1);
        google__protobuf__file_descriptor_proto__pack(f, o->bytes.data);
        o->deps = ann_xcalloc(f->n_dependency ? f->n_dependency : 1, sizeof *o->deps);
        for (size_t d = 0; d < f->n_dependency; d++)
            for (size_t j = 0; j < r->n_files; j++)
                if (strcmp(r->set->file[j]->name, f->dependency[d]) == 0)
                    o->deps[o->n_deps++] = j;
        const char *pkg = f->package ? f->package : "";
        for (size_t k = 0; k < f->n_message_type; k++)
            add_message(r, pkg, f->message_type[k], i);
        for (size_t k = 0; k < f->n_enum_type; k++)
            add_enum(r, pkg, f->enum_type[k], i);
        for (size_t k = 0; k < f->n_service; k++) {
            const Google__Protobuf__ServiceDescriptorProto *s = f->service[k];
            char *full = join(pkg, s->name);
            add_symbol(r, full, i);
            r->services = ann_xrealloc(r->services, (r->n_services + 1) * sizeof *r->services);
            r->services[r->n_services++] = full;
            for (size_t mi = 0; mi < s->n_method; mi++)
                add_symbol(r, join(full, s->method[mi]->name), i);
        }
    }
    return r;
}

void ann_reflection_free(ann_reflection *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_files; i++) {
        free(r->files[i].bytes.data);
        free(r->files[i].deps);
    }
    for (size_t i = 0; i < r->n_syms; i++)
        free(r->syms[i].name);
    free(r->syms);
    free(r->services); /* the names are symbols' */
    free(r->files);
    google__protobuf__file_descriptor_set__free_unpacked(r->set, NULL);
    free(r);
}

/* The file and its imports, transitively, each once, the file first. */
static void collect(const ann_reflection *r, size_t fi, bool *seen, ProtobufCBinaryData *out,
                    size_t *n)
{
    if (seen[fi])
        return;
    seen[fi] = true;
    out[(*n)++] = r->files[fi].bytes;
    for (size_t d = 0; d < r->files[fi].n_deps; d++)
        collect(r, r->files[fi].deps[d], seen, out, n);
}

#define REFLECTION_MAX_REQUEST (64 * 1024)
#define GRPC_NOT_FOUND 5

int ann_reflection_answer(const ann_reflection *r, const uint8_t *req, size_t len, ann_buf *resp,
                          ann_err *err)
{
    if (len > REFLECTION_MAX_REQUEST)
        return ann_err_set(err, ANN_EINVAL, "ServerReflectionRequest: larger than %d bytes",
                           REFLECTION_MAX_REQUEST);
    Req *q = grpc__reflection__v1__server_reflection_request__unpack(NULL, len, req);
    if (!q)
        return ann_err_set(err, ANN_EINVAL, "ServerReflectionRequest: not a valid message");
    /* The oneof's members share one union: read only the one that is set. */
    Grpc__Reflection__V1__ExtensionRequest *ext =
        q->message_request_case ==
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION
            ? q->file_containing_extension
            : NULL;
    const char *member = NULL, *text = NULL;
    switch (q->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        member = "file_by_filename", text = q->file_by_filename;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        member = "file_containing_symbol", text = q->file_containing_symbol;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        member = "all_extension_numbers_of_type", text = q->all_extension_numbers_of_type;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        member = "list_services", text = q->list_services;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        member = "file_containing_extension.containing_type";
        text = ext ? ext->containing_type : NULL;
        break;
    default:
        break;
    }
    /* proto3 strings are UTF-8: a client's parser would refuse our echo of anything else. */
    const char *bad = !ann_utf8_valid(q->host, strlen(q->host))     ? "host"
                      : text && !ann_utf8_valid(text, strlen(text)) ? member
                                                                    : NULL;
    if (bad) {
        ann_err_set(err, ANN_EINVAL, "ServerReflectionRequest: %s is not UTF-8", bad);
        grpc__reflection__v1__server_reflection_request__free_unpacked(q, NULL);
        return -1;
    }

    Resp a = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1__FileDescriptorResponse fdr =
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse lsr =
        GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ErrorResponse er = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1__ExtensionNumberResponse enr =
        GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
    Grpc__Reflection__V1__ServiceResponse *svcs = NULL, **svcp = NULL;
    ProtobufCBinaryData *files = NULL;
    bool *seen = NULL;
    char msg[512];

    a.valid_host = q->host;
    a.original_request = q;
    long found = -1;
    switch (q->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        svcs = ann_xcalloc(r->n_services + 1, sizeof *svcs);
        svcp = ann_xcalloc(r->n_services + 1, sizeof *svcp);
        for (size_t i = 0; i < r->n_services; i++) {
            grpc__reflection__v1__service_response__init(&svcs[i]);
            svcs[i].name = r->services[i];
            svcp[i] = &svcs[i];
        }
        lsr.n_service = r->n_services;
        lsr.service = svcp;
        a.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        a.list_services_response = &lsr;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        for (size_t i = 0; i < r->n_files; i++)
            if (strcmp(r->files[i].name, q->file_by_filename) == 0)
                found = (long)i;
        if (found < 0)
            snprintf(msg, sizeof msg, "file not found: %.400s", q->file_by_filename);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
        const char *sym = q->file_containing_symbol;
        if (*sym == '.')
            sym++;
        for (size_t i = 0; i < r->n_syms && found < 0; i++)
            if (strcmp(r->syms[i].name, sym) == 0)
                found = (long)r->syms[i].file;
        if (found < 0)
            snprintf(msg, sizeof msg, "symbol not found: %.400s", q->file_containing_symbol);
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        snprintf(msg, sizeof msg, "no extensions: %.300s has no extension %d",
                 ext && ext->containing_type ? ext->containing_type : "",
                 ext ? ext->extension_number : 0);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
        const char *t = q->all_extension_numbers_of_type;
        bool known = false;
        for (size_t i = 0; i < r->n_syms && !known; i++)
            known = strcmp(r->syms[i].name, *t == '.' ? t + 1 : t) == 0;
        if (known) { /* no message here has extensions: an empty list */
            enr.base_type_name = (char *)t;
            a.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
            a.all_extension_numbers_response = &enr;
        } else {
            snprintf(msg, sizeof msg, "type not found: %.400s", t);
        }
        break;
    }
    default:
        snprintf(msg, sizeof msg, "ServerReflectionRequest: no message_request set");
        break;
    }
    if (found >= 0) {
        files = ann_xcalloc(r->n_files, sizeof *files);
        seen = ann_xcalloc(r->n_files, sizeof *seen);
        size_t n = 0;
        collect(r, (size_t)found, seen, files, &n);
        fdr.n_file_descriptor_proto = n;
        fdr.file_descriptor_proto = files;
        a.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        a.file_descriptor_response = &fdr;
    } else if (a.message_response_case ==
               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET) {
        er.error_code = GRPC_NOT_FOUND;
        er.error_message = msg;
        a.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
        a.error_response = &er;
    }
    /* The echo carries only what was understood: unknown fields (which protobuf-c keeps
     * as they came, invalid tags included) are left out. */
    size_t n_unknown = q->base.n_unknown_fields;
    size_t n_unknown_ext = ext ? ext->base.n_unknown_fields : 0;
    q->base.n_unknown_fields = 0;
    if (ext)
        ext->base.n_unknown_fields = 0;
    size_t sz = grpc__reflection__v1__server_reflection_response__get_packed_size(&a);
    ann_buf_reserve(resp, sz);
    resp->len += grpc__reflection__v1__server_reflection_response__pack(&a, resp->data + resp->len);
    q->base.n_unknown_fields = n_unknown;
    if (ext)
        ext->base.n_unknown_fields = n_unknown_ext;
    free(files);
    free(seen);
    free(svcs);
    free(svcp);
    grpc__reflection__v1__server_reflection_request__free_unpacked(q, NULL);
    return 0;
}
