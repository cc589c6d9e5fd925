/*
 * Response frames built by hand from the protocol specification, shared by
 * the codec unit tests and the fuzz seed generator. Each builder resets `b`
 * and leaves one whole frame (header + body) in it.
 */
#ifndef ANN_TESTS_CQL_FRAMES_H
#define ANN_TESTS_CQL_FRAMES_H

#include "cql/cql_codec.h"

/* Starts a response frame (version 0x84). */
void fb_begin(ann_cql_buf *b, uint8_t opcode, uint8_t flags, int16_t stream);
/* Patches the body length. */
void fb_end(ann_cql_buf *b);

typedef void (*frame_fn)(ann_cql_buf *b);

typedef struct test_frame {
    const char *name;
    frame_fn build;
} test_frame;

/* Every sample frame, NULL-terminated. */
extern const test_frame ann_test_frames[];

void frame_ready(ann_cql_buf *b);
void frame_authenticate(ann_cql_buf *b);
void frame_auth_challenge(ann_cql_buf *b);
void frame_auth_success_null(ann_cql_buf *b);
void frame_supported(ann_cql_buf *b);
void frame_void_warn_trace(ann_cql_buf *b);
void frame_set_keyspace(ann_cql_buf *b);
void frame_schema_keyspace(ann_cql_buf *b);
void frame_schema_table(ann_cql_buf *b);
void frame_schema_function(ann_cql_buf *b);
void frame_rows_global(ann_cql_buf *b);
void frame_rows_local_paged(ann_cql_buf *b);
void frame_rows_no_metadata(ann_cql_buf *b);
void frame_rows_lwt_not_applied(ann_cql_buf *b);
void frame_rows_nested_types(ann_cql_buf *b);
void frame_prepared(ann_cql_buf *b);
void frame_err_syntax(ann_cql_buf *b);
void frame_err_unavailable(ann_cql_buf *b);
void frame_err_write_timeout(ann_cql_buf *b);
void frame_err_read_timeout(ann_cql_buf *b);
void frame_err_read_failure(ann_cql_buf *b);
void frame_err_write_failure(ann_cql_buf *b);
void frame_err_function_failure(ann_cql_buf *b);
void frame_err_already_exists(ann_cql_buf *b);
void frame_err_unprepared(ann_cql_buf *b);
void frame_err_overloaded(ann_cql_buf *b);
void frame_event_status(ann_cql_buf *b);

#endif
