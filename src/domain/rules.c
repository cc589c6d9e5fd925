#include "domain/rules.h"

#include "common/random.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "domain/text.h"

#define NS 1000000000LL

bool ann_severity_valid(int32_t s)
{
    return s >= 0 && s <= 900 && s % 100 == 0;
}

int ann_time_to_ns(int64_t seconds, int32_t nanos, int64_t *out)
{
    if (nanos < 0 || nanos >= NS)
        return -1;
    /* 1678-01-01T00:00:00Z .. 2262-01-01T00:00:00Z (exclusive): whole years inside the
     * range of int64 nanoseconds (1677-09-21 .. 2262-04-11). */
    if (seconds < -9214560000LL || seconds >= 9214646400LL)
        return -1;
    *out = seconds * NS + nanos;
    return 0;
}

void ann_uuid_v4_format(const uint8_t random[16], char out[37])
{
    uint8_t b[16];
    memcpy(b, random, sizeof b);
    ann_uuid_v4_from_random(b);
    ann_uuid_format(b, out);
}

void ann_uuid_v4_new(char out[37])
{
    uint8_t b[16];
    ann_random_bytes(b, sizeof b);
    ann_uuid_v4_format(b, out);
}

bool ann_tenant_name_valid(const char *name, size_t len)
{
    return len >= 1 && len <= ANN_TENANT_NAME_MAX && ann_utf8_valid(name, len);
}

static const struct {
    uint32_t bit;
    const char *name;
} ROLES[] = {{ANN_ROLE_WRITER, "writer"},
             {ANN_ROLE_READER, "reader"},
             {ANN_ROLE_REDACTOR, "redactor"},
             {ANN_ROLE_ADMIN, "admin"}};

uint32_t ann_role_parse(const char *name)
{
    for (size_t i = 0; i < sizeof ROLES / sizeof ROLES[0]; i++)
        if (strcmp(ROLES[i].name, name) == 0)
            return ROLES[i].bit;
    return 0;
}

const char *ann_roles_format(uint32_t roles, char out[ANN_ROLES_TEXT_MAX])
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof ROLES / sizeof ROLES[0]; i++)
        if (roles & ROLES[i].bit)
            n += (size_t)snprintf(out + n, ANN_ROLES_TEXT_MAX - n, "%s%s", n ? ", " : "",
                                  ROLES[i].name);
    if (n == 0)
        snprintf(out, ANN_ROLES_TEXT_MAX, "none");
    return out;
}
_Static_assert(sizeof "writer, reader, redactor, admin" <= ANN_ROLES_TEXT_MAX, "roles text");

bool ann_roles_allow(uint32_t roles, uint32_t need)
{
    return (roles & ANN_ROLE_ADMIN) != 0 || (roles & need) != 0;
}

bool ann_key_name_valid(const char *name, size_t len)
{
    if (len < 1 || len > ANN_KEY_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void ann_actor_format(const char *tenant_name, const char *key_name, char *out, size_t cap)
{
    snprintf(out, cap, "tenant:%.*s/key:%.*s", ANN_TENANT_NAME_MAX, tenant_name, ANN_KEY_NAME_MAX,
             key_name);
}

void ann_key_format(const uint8_t random[32], char out[ANN_KEY_LEN + 1])
{
    memcpy(out, ANN_KEY_PREFIX, sizeof ANN_KEY_PREFIX - 1);
    ann_b64url_encode(random, 32, out + sizeof ANN_KEY_PREFIX - 1);
}

void ann_key_hash(const char *key, size_t len, uint8_t out[32])
{
    SHA256((const unsigned char *)key, len, out);
}

int ann_bearer_parse(const char *value, size_t len, const char **key, size_t *klen,
                     const char **why)
{
    if (!value || len == 0) {
        *why = "authorization: missing; send 'Bearer <key>'";
        return -1;
    }
    if (len < 7 || strncasecmp(value, "Bearer ", 7) != 0) {
        *why = "authorization: expected 'Bearer <key>'";
        return -1;
    }
    const char *k = value + 7;
    size_t n = len - 7;
    while (n && *k == ' ')
        k++, n--;
    if (n == 0) {
        *why = "authorization: empty key";
        return -1;
    }
    *key = k;
    *klen = n;
    return 0;
}
