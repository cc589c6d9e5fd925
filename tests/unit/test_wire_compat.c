/*
 * The server decodes and encodes with src/api/wire.proto, its bytes-for-strings view of
 * proto/annals/v1/annals.proto. This test walks both descriptor trees and fails on any
 * field whose number, cardinality or wire type differs, in either direction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "annals/v1/annals.pb-c.h"
#include "wire.pb-c.h"

/* The wire type a field travels as: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. */
static int wire_type(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_BOOL:
    case PROTOBUF_C_TYPE_ENUM:
        return 0;
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 1;
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return 5;
    default:
        return 2;
    }
}

/* Signedness matters for varints: int32 and enum both sign-extend; bool is 0/1. */
static bool same_scalar(const ProtobufCFieldDescriptor *a, const ProtobufCFieldDescriptor *b)
{
    if (a->type == b->type)
        return true;
    bool a_int = a->type == PROTOBUF_C_TYPE_INT32 || a->type == PROTOBUF_C_TYPE_ENUM;
    bool b_int = b->type == PROTOBUF_C_TYPE_INT32 || b->type == PROTOBUF_C_TYPE_ENUM;
    bool a_len = a->type == PROTOBUF_C_TYPE_STRING || a->type == PROTOBUF_C_TYPE_BYTES;
    bool b_len = b->type == PROTOBUF_C_TYPE_STRING || b->type == PROTOBUF_C_TYPE_BYTES;
    return (a_int && b_int) || (a_len && b_len);
}

/* The one deliberate difference: the server's inbound LogEntryIn carries json_payload as the
 * raw bytes of its Struct (validated by ann_wire_struct_check), a length-delimited field
 * either way. */
static bool raw_struct_ok(const ProtobufCMessageDescriptor *x, const ProtobufCFieldDescriptor *fx,
                          const ProtobufCFieldDescriptor *fy)
{
    const ProtobufCFieldDescriptor *msg = fx->type == PROTOBUF_C_TYPE_MESSAGE ? fx : fy;
    const ProtobufCFieldDescriptor *raw = msg == fx ? fy : fx;
    return fx->id == 31 && strstr(x->name, "LogEntry") && raw->type == PROTOBUF_C_TYPE_BYTES &&
           strcmp(((const ProtobufCMessageDescriptor *)msg->descriptor)->name,
                  "google.protobuf.Struct") == 0;
}

static void compare(const ProtobufCMessageDescriptor *pub, const ProtobufCMessageDescriptor *wire,
                    int depth)
{
    if (depth > 8)
        return; /* Struct/Value recurse into each other; 8 levels cover every shape */
    for (int pass = 0; pass < 2; pass++) {
        const ProtobufCMessageDescriptor *x = pass ? wire : pub, *y = pass ? pub : wire;
        for (unsigned i = 0; i < x->n_fields; i++) {
            const ProtobufCFieldDescriptor *fx = &x->fields[i];
            const ProtobufCFieldDescriptor *fy = protobuf_c_message_descriptor_get_field(y, fx->id);
            if (!fy)
                fail_msg("%s.%s (#%u) has no field #%u in %s", x->name, fx->name, fx->id, fx->id,
                         y->name);
            if ((fx->label == PROTOBUF_C_LABEL_REPEATED) !=
                (fy->label == PROTOBUF_C_LABEL_REPEATED))
                fail_msg("%s.%s: repeated in one view only", x->name, fx->name);
            if (wire_type(fx) != wire_type(fy))
                fail_msg("%s.%s: wire types differ", x->name, fx->name);
            if ((fx->type == PROTOBUF_C_TYPE_MESSAGE) != (fy->type == PROTOBUF_C_TYPE_MESSAGE) &&
                raw_struct_ok(x, fx, fy))
                continue;
            if (fx->type == PROTOBUF_C_TYPE_MESSAGE || fy->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (fx->type != fy->type)
                    fail_msg("%s.%s: message in one view only", x->name, fx->name);
                if (!pass)
                    compare(fx->descriptor, fy->descriptor, depth + 1);
            } else if (!same_scalar(fx, fy)) {
                fail_msg("%s.%s: scalar types differ", x->name, fx->name);
            }
            if ((fx->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) !=
                (fy->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
                fail_msg("%s.%s: oneof in one view only", x->name, fx->name);
        }
    }
}

static void views_agree(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *pairs[][2] = {
        {&annals__v1__create_log_request__descriptor,
         &annals__wire__v1__create_log_request__descriptor},
        {&annals__v1__create_log_response__descriptor,
         &annals__wire__v1__create_log_response__descriptor},
        {&annals__v1__get_log_request__descriptor, &annals__wire__v1__get_log_request__descriptor},
        {&annals__v1__get_log_response__descriptor,
         &annals__wire__v1__get_log_response__descriptor},
        {&annals__v1__delete_log_request__descriptor,
         &annals__wire__v1__delete_log_request__descriptor},
        {&annals__v1__delete_log_response__descriptor,
         &annals__wire__v1__delete_log_response__descriptor},
        {&annals__v1__write_log_entries_request__descriptor,
         &annals__wire__v1__write_log_entries_request__descriptor},
        {&annals__v1__write_log_entries_request__descriptor,
         &annals__wire__v1__write_log_entries_request_in__descriptor},
        {&annals__v1__write_log_entries_response__descriptor,
         &annals__wire__v1__write_log_entries_response__descriptor},
        {&annals__v1__revoke_log_entries_request__descriptor,
         &annals__wire__v1__revoke_log_entries_request__descriptor},
        {&annals__v1__revoke_log_entries_response__descriptor,
         &annals__wire__v1__revoke_log_entries_response__descriptor},
        {&annals__v1__list_log_entries_request__descriptor,
         &annals__wire__v1__list_log_entries_request__descriptor},
        {&annals__v1__list_log_entries_response__descriptor,
         &annals__wire__v1__list_log_entries_response__descriptor},
        {&annals__v1__tail_log_entries_request__descriptor,
         &annals__wire__v1__tail_log_entries_request__descriptor},
        {&annals__v1__tail_log_entries_response__descriptor,
         &annals__wire__v1__tail_log_entries_response__descriptor},
        {&annals__v1__list_logs_request__descriptor,
         &annals__wire__v1__list_logs_request__descriptor},
        {&annals__v1__list_logs_response__descriptor,
         &annals__wire__v1__list_logs_response__descriptor},
        {&annals__v1__read_log_entries_request__descriptor,
         &annals__wire__v1__read_log_entries_request__descriptor},
        {&annals__v1__read_log_entries_response__descriptor,
         &annals__wire__v1__read_log_entries_response__descriptor},
        {&annals__v1__search_log_entries_request__descriptor,
         &annals__wire__v1__search_log_entries_request__descriptor},
        {&annals__v1__search_log_entries_response__descriptor,
         &annals__wire__v1__search_log_entries_response__descriptor},
        {&annals__v1__get_log_checkpoint_request__descriptor,
         &annals__wire__v1__get_log_checkpoint_request__descriptor},
        {&annals__v1__get_log_checkpoint_response__descriptor,
         &annals__wire__v1__get_log_checkpoint_response__descriptor},
        {&annals__v1__get_inclusion_proof_request__descriptor,
         &annals__wire__v1__get_inclusion_proof_request__descriptor},
        {&annals__v1__get_inclusion_proof_response__descriptor,
         &annals__wire__v1__get_inclusion_proof_response__descriptor},
        {&annals__v1__get_consistency_proof_request__descriptor,
         &annals__wire__v1__get_consistency_proof_request__descriptor},
        {&annals__v1__get_consistency_proof_response__descriptor,
         &annals__wire__v1__get_consistency_proof_response__descriptor},
        {&annals__v1__seal_log_request__descriptor,
         &annals__wire__v1__seal_log_request__descriptor},
        {&annals__v1__seal_log_response__descriptor,
         &annals__wire__v1__seal_log_response__descriptor},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        compare(pairs[i][0], pairs[i][1], 0);
}

/* And bytes made by the public view decode in the server's view with every byte kept. */
static void public_bytes_decode_in_wire_view(void **state)
{
    (void)state;
    Annals__V1__LogEntry e = ANNALS__V1__LOG_ENTRY__INIT;
    Annals__V1__LogEntry__LabelsEntry l = ANNALS__V1__LOG_ENTRY__LABELS_ENTRY__INIT;
    Annals__V1__LogEntry__LabelsEntry *lp = &l;
    l.key = "k";
    l.value = "v\x1b";
    e.labels = &lp;
    e.n_labels = 1;
    e.insert_id = "id-1";
    e.payload_case = ANNALS__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e.text_payload = "hello";
    e.severity = ANNALS__V1__LOG_ENTRY__SEVERITY__ERROR;
    uint8_t buf[256];
    size_t n = annals__v1__log_entry__pack(&e, buf);
    Annals__Wire__V1__LogEntry *w = annals__wire__v1__log_entry__unpack(NULL, n, buf);
    assert_non_null(w);
    assert_int_equal(w->severity, 600);
    assert_int_equal(w->n_labels, 1);
    assert_memory_equal(w->labels[0]->value.data, "v\x1b", 2);
    assert_int_equal(w->payload_case, ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD);
    assert_memory_equal(w->text_payload.data, "hello", 5);
    annals__wire__v1__log_entry__free_unpacked(w, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(views_agree),
        cmocka_unit_test(public_bytes_decode_in_wire_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
