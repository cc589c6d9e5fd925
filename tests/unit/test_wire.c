/* The protobuf precheck's limits hold for any descriptor, however many fields it has. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/wire.h"

#define NFIELDS 40

static ProtobufCFieldDescriptor fields[NFIELDS];
static char names[NFIELDS][16];
static ProtobufCMessageDescriptor wide = {
    .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    .name = "test.Wide",
    .short_name = "Wide",
    .n_fields = NFIELDS,
    .fields = fields,
};

static int setup(void **state)
{
    (void)state;
    for (unsigned i = 0; i < NFIELDS; i++) {
        snprintf(names[i], sizeof names[i], "f%u", i + 1);
        fields[i] = (ProtobufCFieldDescriptor){.name = names[i],
                                               .id = i + 1,
                                               .label = PROTOBUF_C_LABEL_REPEATED,
                                               .type = PROTOBUF_C_TYPE_INT32};
    }
    return 0;
}

/* `n` occurrences of varint field `num`. */
static size_t repeat_field(uint8_t *out, uint32_t num, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        out[len++] = (uint8_t)(num << 3); /* wire type 0; num < 16 fits one byte */
        if (num >= 16) {
            len--;
            out[len++] = (uint8_t)(((num << 3) & 0x7F) | 0x80);
            out[len++] = (uint8_t)((num << 3) >> 7);
        }
        out[len++] = 1;
    }
    return len;
}

static void limit_holds_on_every_field(void **state)
{
    (void)state;
    uint8_t buf[64];
    for (uint32_t num = 1; num <= NFIELDS; num++) {
        ann_wire_limit limits[] = {{&wide, num, 2}, {NULL, 0, 0}};
        ann_err err;
        size_t len = repeat_field(buf, num, 2);
        assert_int_equal(ann_wire_precheck(&wide, buf, len, 4, limits, &err), 0);
        len = repeat_field(buf, num, 3);
        assert_int_equal(ann_wire_precheck(&wide, buf, len, 4, limits, &err), -1);
        assert_int_equal(err.code, ANN_EINVAL);
        assert_non_null(strstr(err.msg, names[num - 1]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limit_holds_on_every_field),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
