#include "cli/render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/text.h"
#include "cli/timefmt.h"

#define MAX_DEPTH 64

static const struct {
    int value;
    const char *name;
} severities[] = {
    {0, "UNSPECIFIED"}, {100, "TRACE"}, {200, "DEBUG"},    {300, "INFO"},  {400, "NOTICE"},
    {500, "WARNING"},   {600, "ERROR"}, {700, "CRITICAL"}, {800, "ALERT"}, {900, "EMERGENCY"},
};

const char *ann_cli_severity_name(int sev)
{
    for (size_t i = 0; i < sizeof severities / sizeof severities[0]; i++)
        if (severities[i].value == sev)
            return severities[i].name;
    return NULL;
}

int ann_cli_severity_parse(const char *s)
{
    for (size_t i = 0; i < sizeof severities / sizeof severities[0]; i++)
        if (!strcasecmp(s, severities[i].name))
            return severities[i].value;
    if (!strcasecmp(s, "WARN"))
        return 500;
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end && ann_cli_severity_name((int)v) && v >= 0 && v <= 900)
        return (int)v;
    return -1;
}

static void put_time_text(FILE *f, const Annals__Wire__V1__Timestamp *t)
{
    char buf[ANN_CLI_TIME_BUF];
    if (!t)
        fputc('-', f);
    else
        fputs(ann_cli_time_format(t->seconds, t->nanos, buf), f);
}

static void put_time_json(FILE *f, const Annals__Wire__V1__Timestamp *t)
{
    char buf[ANN_CLI_TIME_BUF];
    if (!t)
        fputs("null", f);
    else
        fprintf(f, "\"%s\"", ann_cli_time_format(t->seconds, t->nanos, buf));
}

static void put_severity(FILE *f, int sev, int json)
{
    const char *name = ann_cli_severity_name(sev);
    if (name)
        fprintf(f, json ? "\"%s\"" : "%s", name);
    else
        fprintf(f, "%d", sev);
}

/* Shortest decimal that reads back as the same double. */
static void put_number(FILE *f, double v)
{
    char buf[40];
    if (isnan(v)) {
        fputs("\"NaN\"", f);
        return;
    }
    if (isinf(v)) {
        fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", f);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, f);
}

static void put_struct(FILE *f, const Annals__Wire__V1__Struct *s, int depth);

static void put_value(FILE *f, const Annals__Wire__V1__Value *v, int depth)
{
    if (!v || depth > MAX_DEPTH) {
        fputs("null", f);
        return;
    }
    switch (v->kind_case) {
    case ANNALS__WIRE__V1__VALUE__KIND_NUMBER_VALUE:
        put_number(f, v->number_value);
        break;
    case ANNALS__WIRE__V1__VALUE__KIND_STRING_VALUE:
        ANN_CLI_PUT_JSON_BYTES(f, v->string_value);
        break;
    case ANNALS__WIRE__V1__VALUE__KIND_BOOL_VALUE:
        fputs(v->bool_value ? "true" : "false", f);
        break;
    case ANNALS__WIRE__V1__VALUE__KIND_STRUCT_VALUE:
        put_struct(f, v->struct_value, depth + 1);
        break;
    case ANNALS__WIRE__V1__VALUE__KIND_LIST_VALUE:
        fputc('[', f);
        if (v->list_value)
            for (size_t i = 0; i < v->list_value->n_values; i++) {
                if (i)
                    fputc(',', f);
                put_value(f, v->list_value->values[i], depth + 1);
            }
        fputc(']', f);
        break;
    default:
        fputs("null", f);
        break;
    }
}

static void put_struct(FILE *f, const Annals__Wire__V1__Struct *s, int depth)
{
    if (!s || depth > MAX_DEPTH) {
        fputs(s ? "null" : "{}", f);
        return;
    }
    fputc('{', f);
    for (size_t i = 0; i < s->n_fields; i++) {
        if (i)
            fputc(',', f);
        ANN_CLI_PUT_JSON_BYTES(f, s->fields[i]->key);
        fputc(':', f);
        put_value(f, s->fields[i]->value, depth + 1);
    }
    fputc('}', f);
}

void ann_cli_print_struct_json(FILE *f, const Annals__Wire__V1__Struct *s)
{
    put_struct(f, s, 0);
}

void ann_cli_print_hit_text(FILE *f, const Annals__Wire__V1__LogEntry *e)
{
    ANN_CLI_PUT_TERM_BYTES(f, e->log_id);
    fputc(' ', f);
    ann_cli_print_entry_text(f, e);
}

void ann_cli_print_entry_text(FILE *f, const Annals__Wire__V1__LogEntry *e)
{
    ANN_CLI_PUT_TERM_BYTES(f, e->entry_id);
    fputc(' ', f);
    put_time_text(f, e->time);
    fputc(' ', f);
    put_severity(f, e->severity, 0);
    fputc(' ', f);
    if (e->redacted)
        fputs("[redacted]", f);
    else if (e->payload_case == ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD)
        ANN_CLI_PUT_TERM_BYTES(f, e->text_payload);
    else if (e->payload_case == ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_JSON_PAYLOAD)
        put_struct(f, e->json_payload, 0); /* JSON escaping is terminal-safe */
    fputc('\n', f);
}

/* Labels arrive as map entries (key, value); both are untrusted strings. */
#define PUT_LABELS(f, n, labels)                                                                   \
    do {                                                                                           \
        fputc('{', f);                                                                             \
        for (size_t i_ = 0; i_ < (n); i_++) {                                                      \
            if (i_)                                                                                \
                fputc(',', f);                                                                     \
            ANN_CLI_PUT_JSON_BYTES(f, (labels)[i_]->key);                                          \
            fputc(':', f);                                                                         \
            ANN_CLI_PUT_JSON_BYTES(f, (labels)[i_]->value);                                        \
        }                                                                                          \
        fputc('}', f);                                                                             \
    } while (0)

void ann_cli_print_entry_json(FILE *f, const Annals__Wire__V1__LogEntry *e)
{
    fputs("{\"log_id\":", f);
    ANN_CLI_PUT_JSON_BYTES(f, e->log_id);
    fputs(",\"entry_id\":", f);
    ANN_CLI_PUT_JSON_BYTES(f, e->entry_id);
    fputs(",\"insert_id\":", f);
    ANN_CLI_PUT_JSON_BYTES(f, e->insert_id);
    fputs(",\"time\":", f);
    put_time_json(f, e->time);
    fputs(",\"insert_time\":", f);
    put_time_json(f, e->insert_time);
    fputs(",\"severity\":", f);
    put_severity(f, e->severity, 1);
    fputs(",\"labels\":", f);
    PUT_LABELS(f, e->n_labels, e->labels);
    if (e->payload_case == ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD) {
        fputs(",\"text_payload\":", f);
        ANN_CLI_PUT_JSON_BYTES(f, e->text_payload);
    } else if (e->payload_case == ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_JSON_PAYLOAD) {
        fputs(",\"json_payload\":", f);
        put_struct(f, e->json_payload, 0);
    }
    fprintf(f, ",\"redacted\":%s", e->redacted ? "true" : "false");
    if (e->revocation) {
        fputs(",\"revocation\":{\"actor\":", f);
        ANN_CLI_PUT_JSON_BYTES(f, e->revocation->actor);
        fputs(",\"reason\":", f);
        ANN_CLI_PUT_JSON_BYTES(f, e->revocation->reason);
        fputs(",\"time\":", f);
        put_time_json(f, e->revocation->time);
        fputc('}', f);
    }
    fputs("}\n", f);
}

/* A label as key=value, each escaped for a terminal. */
static void put_label_term(FILE *f, const Annals__Wire__V1__Label *l)
{
    ANN_CLI_PUT_TERM_BYTES(f, l->key);
    fputc('=', f);
    ANN_CLI_PUT_TERM_BYTES(f, l->value);
}

void ann_cli_print_log_text(FILE *f, const Annals__Wire__V1__Log *log)
{
    fputs("id: ", f);
    ANN_CLI_PUT_TERM_BYTES(f, log->id);
    fputs("\ncreate_time: ", f);
    put_time_text(f, log->create_time);
    fprintf(f, "\nentry_count: %lld\n", (long long)log->entry_count);
    for (size_t i = 0; i < log->n_labels; i++) {
        fputs("label: ", f);
        put_label_term(f, log->labels[i]);
        fputc('\n', f);
    }
    if (log->retention_days)
        fprintf(f, "retention: %d day%s after the last write\n", (int)log->retention_days,
                log->retention_days == 1 ? "" : "s");
    else
        fputs("retention: the tenant's period\n", f);
    fprintf(f, "legal_hold: %s\n", log->legal_hold ? "yes" : "no");
    const Annals__Wire__V1__LegalHoldChange *c = log->last_hold_change;
    if (c) {
        fprintf(f, "last_hold_change: %s at ", c->hold ? "held" : "released");
        put_time_text(f, c->time);
        fputs(" by ", f);
        ANN_CLI_PUT_TERM_BYTES(f, c->actor);
        fputs("\nhold_reason: ", f);
        ANN_CLI_PUT_TERM_BYTES(f, c->reason);
        fputc('\n', f);
    }
}

void ann_cli_print_log_line(FILE *f, const Annals__Wire__V1__Log *log)
{
    ANN_CLI_PUT_TERM_BYTES(f, log->id);
    fputc(' ', f);
    put_time_text(f, log->create_time);
    fprintf(f, " %lld", (long long)log->entry_count);
    for (size_t i = 0; i < log->n_labels; i++) {
        fputc(' ', f);
        put_label_term(f, log->labels[i]);
    }
    fputc('\n', f);
}

/* The object's fields up to entry_count, without the closing brace. */
static void put_log_json_head(FILE *f, const Annals__Wire__V1__Log *log)
{
    fputs("{\"id\":", f);
    ANN_CLI_PUT_JSON_BYTES(f, log->id);
    fputs(",\"labels\":", f);
    PUT_LABELS(f, log->n_labels, log->labels);
    fputs(",\"create_time\":", f);
    put_time_json(f, log->create_time);
    fprintf(f, ",\"entry_count\":%lld", (long long)log->entry_count);
}

void ann_cli_print_log_json(FILE *f, const Annals__Wire__V1__Log *log)
{
    put_log_json_head(f, log);
    fputs("}\n", f);
}

void ann_cli_print_log_json_full(FILE *f, const Annals__Wire__V1__Log *log)
{
    put_log_json_head(f, log);
    fprintf(f, ",\"retention_days\":%d,\"legal_hold\":%s", (int)log->retention_days,
            log->legal_hold ? "true" : "false");
    const Annals__Wire__V1__LegalHoldChange *c = log->last_hold_change;
    if (c) {
        fprintf(f, ",\"last_hold_change\":{\"hold\":%s,\"actor\":", c->hold ? "true" : "false");
        ANN_CLI_PUT_JSON_BYTES(f, c->actor);
        fputs(",\"reason\":", f);
        ANN_CLI_PUT_JSON_BYTES(f, c->reason);
        fputs(",\"time\":", f);
        put_time_json(f, c->time);
        fputc('}', f);
    }
    fputs("}\n", f);
}
