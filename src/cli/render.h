/*
 * How the annals CLI shows what the server sends.
 *
 * Text: one line per entry, four fields separated by single spaces:
 *     <entry_id> <time> <SEVERITY> <text>
 * time is the entry's `time` in UTC with nanoseconds; SEVERITY is the enum
 * name (a number when the server sends a value we do not know); text is the
 * text payload escaped by ann_cli_put_term(), the JSON payload as compact JSON,
 * or "[redacted]" for a revoked entry. Nothing from the server reaches the
 * terminal unescaped.
 *
 * JSON: one object per line with every field, named as in the proto:
 *     {"log_id":..,"entry_id":..,"insert_id":..,"time":..,"insert_time":..,
 *      "severity":"INFO","labels":{..},"text_payload":".."|"json_payload":{..},
 *      "redacted":false}
 * times are RFC 3339 strings (null when absent); a redacted entry has no
 * payload field, and when the server says who revoked it, why and when, a
 * "revocation":{"actor":..,"reason":..,"time":..} after "redacted".
 *
 * The entries are the wire view of the messages (client/rpc.h): strings are
 * bytes, so a NUL or invalid UTF-8 from the server is shown, not lost.
 */
#ifndef ANN_CLI_RENDER_H
#define ANN_CLI_RENDER_H

#include <stdio.h>

#include "wire.pb-c.h"

/* "INFO", ...; NULL for a value not in the enum. */
const char *ann_cli_severity_name(int sev);

/* Parses a severity name (any case) or its number; -1 when unknown. */
int ann_cli_severity_parse(const char *s);

void ann_cli_print_entry_text(FILE *f, const Annals__Wire__V1__LogEntry *e);
void ann_cli_print_entry_json(FILE *f, const Annals__Wire__V1__LogEntry *e);

/* A search hit: "<log_id> " and then the entry's text line. (Its JSON form is
 * ann_cli_print_entry_json(), which has the log_id.) */
void ann_cli_print_hit_text(FILE *f, const Annals__Wire__V1__LogEntry *e);

/* A google.protobuf.Struct as compact JSON (nesting beyond 64 levels is
 * written as null). */
void ann_cli_print_struct_json(FILE *f, const Annals__Wire__V1__Struct *s);

/* A log's metadata: "key: value" lines (retention and hold included), or one JSON object
 * {"id","labels","create_time","entry_count"} on one line (`annals logs --json`); _full
 * adds "retention_days", "legal_hold" and, when set, "last_hold_change" (`log get`). */
void ann_cli_print_log_text(FILE *f, const Annals__Wire__V1__Log *log);
void ann_cli_print_log_json(FILE *f, const Annals__Wire__V1__Log *log);
void ann_cli_print_log_json_full(FILE *f, const Annals__Wire__V1__Log *log);

/* A log on one line, fields separated by single spaces:
 *     <id> <create_time> <entry_count> [<key>=<value>]...
 * (labels in the server's order, each escaped). */
void ann_cli_print_log_line(FILE *f, const Annals__Wire__V1__Log *log);

#endif
