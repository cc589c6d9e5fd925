/*
 * The service's rules on entries, tenants and keys, with no I/O: what a severity is, which
 * times an entry may carry, what a tenant may be called, and what an API key looks like
 * and how it is stored. Randomness comes from the caller (src/common/random.h).
 */
#ifndef ANN_DOMAIN_RULES_H
#define ANN_DOMAIN_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A Severity of the contract: 0 (UNSPECIFIED) or 100..900 in steps of 100. */
bool ann_severity_valid(int32_t s);

/* Times are kept as signed 64-bit nanoseconds since the epoch; a Timestamp is accepted
 * from 1678-01-01T00:00:00Z up to 2262-01-01T00:00:00Z (exclusive), the whole years
 * inside that range, with nanos in 0..999,999,999. */
#define ANN_TIME_RANGE_TEXT "years 1678..2261, nanos 0..999999999"
int ann_time_to_ns(int64_t seconds, int32_t nanos, int64_t *out);

/* A version-4 UUID in canonical form (36 chars + NUL) from 16 random bytes. */
void ann_uuid_v4_format(const uint8_t random[16], char out[37]);
/* A fresh random (version 4) UUID in canonical text form. */
void ann_uuid_v4_new(char out[37]);

/* A tenant's name: 1..128 bytes of UTF-8. */
#define ANN_TENANT_NAME_MAX 128
bool ann_tenant_name_valid(const char *name, size_t len);

/* An API key: "annals_" and 256 random bits in base64url (50 chars). Only its SHA-256
 * is stored; a presented key is hashed the same way to be looked up. */
#define ANN_KEY_PREFIX "annals_"
#define ANN_KEY_LEN 50
void ann_key_format(const uint8_t random[32], char out[ANN_KEY_LEN + 1]);
void ann_key_hash(const char *key, size_t len, uint8_t out[32]);

/*
 * What a key may do: a set of roles (docs/api.md, "Keys and roles"). writer: CreateLog,
 * WriteLogEntries, GetLog; reader: every read (GetLog included); redactor:
 * RevokeLogEntries; admin: everything (DeleteLog included). Stored as this bit set.
 */
enum {
    ANN_ROLE_WRITER = 1u << 0,
    ANN_ROLE_READER = 1u << 1,
    ANN_ROLE_REDACTOR = 1u << 2,
    ANN_ROLE_ADMIN = 1u << 3,
};
#define ANN_ROLES_ALL 0xfu
/* Room for every role name joined with ", " and the NUL. */
#define ANN_ROLES_TEXT_MAX 40
/* The bit of a role name ("writer"...); 0 when it names none. */
uint32_t ann_role_parse(const char *name);
/* The roles as "writer, reader" in the order above ("none" for 0). Returns out. */
const char *ann_roles_format(uint32_t roles, char out[ANN_ROLES_TEXT_MAX]);
/* True when a key with `roles` may make a call that any one of `need` allows (admin may
 * make every call). */
bool ann_roles_allow(uint32_t roles, uint32_t need);

/* A key's name: 1..64 of [A-Za-z0-9._-], unique among the tenant's keys. It names the key
 * in audit records ("tenant:<tenant name>/key:<key name>"). */
#define ANN_KEY_NAME_MAX 64
bool ann_key_name_valid(const char *name, size_t len);
/* The name of the key `annalsd tenant create` makes (admin role, no expiry). */
#define ANN_ADMIN_KEY_NAME "admin"
/* The audit actor of a call made with a key: room for the longest, NUL included. */
#define ANN_ACTOR_MAX (sizeof "tenant:/key:" + ANN_TENANT_NAME_MAX + ANN_KEY_NAME_MAX)
/* "tenant:<tenant name>/key:<key name>" into out (ANN_ACTOR_MAX bytes). */
void ann_actor_format(const char *tenant_name, const char *key_name, char *out, size_t cap);
/* How often a key's last use is recorded at most (per key and server). */
#define ANN_KEY_LAST_USE_EVERY_NS (60LL * 1000000000LL)

/* The key in an `authorization` value: "Bearer <key>" (scheme in any case, spaces after
 * it skipped). Returns 0 with *key, *klen set, or -1 with a reason for the client. */
int ann_bearer_parse(const char *value, size_t len, const char **key, size_t *klen,
                     const char **why);

#endif
