/* The service's limits: part of the public contract (issue 2, section 5). */
#ifndef ANN_DOMAIN_LIMITS_H
#define ANN_DOMAIN_LIMITS_H

#define ANN_MAX_ENTRIES_PER_WRITE 10000
#define ANN_MAX_ENTRY_BYTES (256 * 1024) /* one LogEntry, serialized */
#define ANN_MAX_LABELS 64
#define ANN_MAX_LABEL_KEY_BYTES 128
#define ANN_MAX_LABEL_VALUE_BYTES 4096
#define ANN_MAX_INSERT_ID_BYTES 256
#define ANN_MAX_REQUEST_BYTES (16 * 1024 * 1024) /* enforced by the transport */
#define ANN_DEFAULT_PAGE_SIZE 100
#define ANN_MAX_PAGE_SIZE 1000
#define ANN_MAX_REVOKE_IDS 10000
#define ANN_MAX_REASON_BYTES 4096
#define ANN_MAX_TEXT_FILTER_BYTES 1024
/* Retention and legal hold (docs/api.md, "Retention and legal hold"). */
#define ANN_MAX_RETENTION_DAYS 36500   /* 100 years; 0 is "the tenant's" (or forever) */
#define ANN_MAX_HOLD_REASON_BYTES 1024 /* SetLegalHoldRequest.reason */
#define ANN_MAX_QUERY_BYTES 1024       /* SearchLogEntries.query */
#define ANN_MAX_SEARCH_LOGS 1000       /* SearchLogEntries.log_ids */
/* Entries one listing or search call examines at most before it answers with what it has
 * and a page token to continue (docs/api.md, "Bounded work"). */
#define ANN_WORK_BUDGET 50000
#define ANN_MAX_NESTING 64 /* protobuf message nesting in a request (json_payload) */
/* A response message stays under this many bytes (clients' default receive limit is 4 MiB);
 * a page or tail message always carries at least one entry. */
#define ANN_MAX_RESPONSE_BYTES (3 * 1024 * 1024 + 512 * 1024)

#endif
