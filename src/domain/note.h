/*
 * Signed checkpoints of a log's tree (docs/integrity.md), with no I/O: a C2SP tlog-checkpoint
 * body signed as a C2SP signed-note with Ed25519.
 *
 * A checkpoint of log L at n leaves with root R is the note text
 *     "annals/" L "\n" decimal(n) "\n" base64(R) "\n"
 * then a blank line, then one signature line
 *     U+2014 " " <key name> " " base64(key_id || Ed25519 signature of the text) "\n"
 * where key_id = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]. The deployment
 * signs every log with one key, whose name (default "annals") is that of the deployment, so
 * one verifier key checks every log: "<name>+<key_id as 8 lower-case hex>+<base64(0x01 ||
 * public key)>". The signing key is kept as "PRIVATE+KEY+<name>+<key_id hex>+<base64(0x01
 * || 32-byte seed)>", the form golang.org/x/mod/sumdb/note reads.
 *
 * Randomness comes from the caller (a fresh key is made from 32 random bytes).
 */
#ifndef ANN_DOMAIN_NOTE_H
#define ANN_DOMAIN_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "domain/merkle.h"

#define ANN_NOTE_NAME_DEFAULT "annals"
#define ANN_NOTE_NAME_MAX 128       /* bytes of a key name we make or accept */
#define ANN_NOTE_MAX_BYTES 65536    /* a note we parse, at most */
#define ANN_NOTE_MAX_SIGNATURES 100 /* signature lines in a note, at most */
#define ANN_CHECKPOINT_ORIGIN_PREFIX "annals/"

/* A key name: 1..ANN_NOTE_NAME_MAX bytes of printable ASCII, no space and no '+'. */
bool ann_note_name_valid(const char *name, size_t len);

/* A signing key. Holds the seed: release it with ann_note_signer_release(), which wipes it. */
typedef struct ann_note_signer {
    char name[ANN_NOTE_NAME_MAX + 1];
    uint32_t key_id;
    uint8_t seed[32];
    uint8_t pub[32];
} ann_note_signer;

/* The key of `name` from a 32-byte Ed25519 seed (32 random bytes for a new key). */
int ann_note_signer_init(ann_note_signer *s, const char *name, const uint8_t seed[32],
                         ann_err *err);
/* "PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>" (no newline), appended to out. */
void ann_note_signer_format(const ann_note_signer *s, ann_buf *out);
/* Parses that form (surrounding ASCII whitespace allowed); the key id must match. */
int ann_note_signer_parse(ann_note_signer *s, const char *text, size_t len, ann_err *err);
void ann_note_signer_release(ann_note_signer *s);

/* A verifier key: what a reader needs to check notes. */
typedef struct ann_note_verifier {
    char name[ANN_NOTE_NAME_MAX + 1];
    uint32_t key_id;
    uint8_t pub[32];
} ann_note_verifier;

void ann_note_verifier_of(const ann_note_signer *s, ann_note_verifier *v);
/* "<name>+<hex id>+<base64(0x01 || public key)>" (no newline), appended to out. */
void ann_note_verifier_format(const ann_note_verifier *v, ann_buf *out);
/* Parses that form (surrounding ASCII whitespace allowed); the key id must match. */
int ann_note_verifier_parse(ann_note_verifier *v, const char *text, size_t len, ann_err *err);

/* Signs `text` (which must end in a newline, be UTF-8 and hold no control character but
 * newline): appends text, a blank line and the signature line to out. */
int ann_note_sign(const ann_note_signer *s, const char *text, size_t len, ann_buf *out,
                  ann_err *err);

/*
 * Opens a signed note against one verifier key: the note must be well-formed (UTF-8, no
 * control characters but newline, text and signatures separated by the last blank line,
 * each signature line "— name base64" with a name of no space and no '+' and at least 5
 * decoded bytes, at most ANN_NOTE_MAX_SIGNATURES of them); signatures of other keys (another
 * name or key id) are ignored; every signature of this key must verify, and at least one
 * must be there. Returns 0 with *text_len set (the text is note[0..*text_len), its final
 * newline included), or -1 with err ANN_EINVAL saying what failed.
 */
int ann_note_open(const ann_note_verifier *v, const char *note, size_t len, size_t *text_len,
                  ann_err *err);

/* ---- Checkpoints ------------------------------------------------------------------------ */

typedef struct ann_checkpoint {
    char origin[ANN_NOTE_NAME_MAX + 1];
    uint64_t size;
    uint8_t root[ANN_HASH_LEN];
} ann_checkpoint;

/* The checkpoint's note text for log `log_id` (the origin "annals/<log_id>"), appended. */
void ann_checkpoint_text(const char *log_id, uint64_t size, const uint8_t root[ANN_HASH_LEN],
                         ann_buf *out);
/* The signed checkpoint (text, blank line, signature line), appended to out. */
int ann_checkpoint_sign(const ann_note_signer *s, const char *log_id, uint64_t size,
                        const uint8_t root[ANN_HASH_LEN], ann_buf *out, ann_err *err);
/*
 * Opens a signed checkpoint (ann_note_open), then parses its text: origin, tree size
 * (decimal, no leading zero), root (canonical base64 of 32 bytes), then any extension lines,
 * which must be non-empty and are ignored. When log_id is not NULL the origin must be
 * "annals/<log_id>". Returns 0, or -1 with err ANN_EINVAL saying what failed.
 */
int ann_checkpoint_open(const ann_note_verifier *v, const char *note, size_t len,
                        const char *log_id, ann_checkpoint *out, ann_err *err);

/* Standard base64 (RFC 4648 section 4, padded): encode appends; decode is strict (canonical
 * form only) and returns the decoded length, or -1. */
void ann_base64_encode(const uint8_t *in, size_t n, ann_buf *out);
long ann_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
