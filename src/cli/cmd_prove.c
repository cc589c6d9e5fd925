/*
 * annals prove LOG ID --key VERIFIER_KEY > bundle.json
 * annals verify-proof bundle.json --key VERIFIER_KEY
 * (issue 10 section 3, docs/integrity.md): an offline proof that one entry, as shown, is in
 * the signed log. The bundle is one flat JSON object:
 *
 *   format           "annals.proof.v1"
 *   log_id, entry_id
 *   entry            base64 of the LogEntry exactly as the server sent it (the leaf is
 *                    recomputed from these bytes: salt, labels, payload or body_hash)
 *   entry_json       the same entry rendered as `annals read --json` prints it (for people;
 *                    not trusted by verify-proof)
 *   tree_size        the checkpoint's size
 *   inclusion_proof  [base64 hash, ...], RFC 9162 2.1.3
 *   checkpoint       the signed checkpoint note
 *
 * verify-proof needs nothing but the bundle and the key: it opens the checkpoint, recomputes
 * the entry's leaf and checks the proof against the signed root.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/render.h"
#include "cli/text.h"
#include "client/rpc.h"
#include "domain/integrity.h"
#include "domain/merkle.h"
#include "domain/note.h"
#include "domain/pbread.h"
#include "domain/text.h"

#define QRY "/annals.v1.LoggingQueryService/"
#define BUNDLE_MAX (8 << 20)
#define FORMAT "annals.proof.v1"

static void put_b64(FILE *f, const uint8_t *p, size_t n)
{
    ann_buf b = ANN_BUF_INIT;
    ann_base64_encode(p, n, &b);
    fprintf(f, "\"%.*s\"", (int)b.len, (const char *)b.data);
    ann_buf_release(&b);
}

int ann_cmd_prove(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL;
    int c, rc;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'k')
            return ann_cli_bad_option(cli, argv, c);
        key = optarg;
    }
    uint64_t id;
    if (optind + 2 != argc || !key ||
        ann_entry_id_parse(argv[optind + 1], strlen(argv[optind + 1]), false, &id) != 0)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "usage: annals prove LOG ID --key VERIFIER_KEY");
    const char *log_id = argv[optind], *id_text = argv[optind + 1];
    ann_note_verifier v;
    if ((rc = ann_cli_verifier_key(cli, key, &v)) || (rc = ann_cli_connect(cli)))
        return rc;

    ann_buf ckr = ANN_BUF_INIT, er = ANN_BUF_INIT, pr = ANN_BUF_INIT;
    ann_err err;
    ann_checkpoint ck;
    const uint8_t *note = NULL, *ent = NULL;
    size_t note_len = 0, ent_len = 0, pos = 0, np = 0;
    ann_pb_field f;
    uint8_t path[ANN_MERKLE_MAX_PROOF][32], leaf[32];
    uint64_t got_id = 0;

    Annals__Wire__V1__GetLogCheckpointRequest creq =
        ANNALS__WIRE__V1__GET_LOG_CHECKPOINT_REQUEST__INIT;
    creq.log_id = ANN_CLI_BYTES(log_id);
    if ((rc = ann_cli_unary_raw(cli, QRY "GetLogCheckpoint", &creq.base, &ckr)))
        goto done;
    while (pos < ckr.len && ann_pb_next(ckr.data, ckr.len, &pos, &f))
        if (f.num == 1 && f.wt == 2)
            note = f.p, note_len = f.n;
    if (!note || ann_checkpoint_open(&v, (const char *)note, note_len, log_id, &ck, &err) != 0) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "FAILED: checkpoint signature: %s",
                          note ? err.msg : "no checkpoint");
        goto done;
    }
    if (id > ck.size) {
        rc = ann_cli_fail(cli, ANN_EXIT_INVALID,
                          "entry %s is not in the latest checkpoint (%" PRIu64
                          " entries); retry in a second",
                          id_text, ck.size);
        goto done;
    }
    Annals__Wire__V1__ReadLogEntriesRequest rreq = ANNALS__WIRE__V1__READ_LOG_ENTRIES_REQUEST__INIT;
    rreq.log_id = ANN_CLI_BYTES(log_id);
    rreq.first_entry_id = ANN_CLI_BYTES(id_text);
    rreq.page_size = 1;
    if ((rc = ann_cli_unary_raw(cli, QRY "ReadLogEntries", &rreq.base, &er)))
        goto done;
    pos = 0;
    while (pos < er.len && ann_pb_next(er.data, er.len, &pos, &f))
        if (f.num == 1 && f.wt == 2 && !ent)
            ent = f.p, ent_len = f.n;
    bool redacted;
    const char *why = "the entry was not returned";
    if (ent && ann_integrity_wire_leaf(ent, ent_len, &got_id, &redacted, leaf, &why) == 0)
        why = NULL;
    if (why || got_id != id) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "FAILED: entry %s: %s", id_text,
                          why ? why : "another id was returned");
        goto done;
    }
    Annals__Wire__V1__GetInclusionProofRequest preq =
        ANNALS__WIRE__V1__GET_INCLUSION_PROOF_REQUEST__INIT;
    preq.log_id = ANN_CLI_BYTES(log_id);
    preq.entry_id = ANN_CLI_BYTES(id_text);
    preq.tree_size = (int64_t)ck.size;
    if ((rc = ann_cli_unary_raw(cli, QRY "GetInclusionProof", &preq.base, &pr)))
        goto done;
    pos = 0;
    while (pos < pr.len && ann_pb_next(pr.data, pr.len, &pos, &f))
        if (f.num == 1 && f.wt == 2 && f.n == 32 && np < ANN_MERKLE_MAX_PROOF)
            memcpy(path[np++], f.p, 32);
    if (!ann_merkle_verify_inclusion(id - 1, ck.size, leaf, (const uint8_t(*)[32])path, np,
                                     ck.root)) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED,
                          "FAILED: inclusion: entry %s is not in the signed tree of %" PRIu64,
                          id_text, ck.size);
        goto done;
    }
    /* The bundle. */
    Annals__Wire__V1__LogEntry *shown =
        annals__wire__v1__log_entry__unpack(NULL, ent_len, (const uint8_t *)ent);
    char *js = NULL;
    size_t js_len = 0;
    if (shown) {
        FILE *m = open_memstream(&js, &js_len);
        if (m) {
            ann_cli_print_entry_json(m, shown);
            fclose(m);
        }
        protobuf_c_message_free_unpacked(&shown->base, NULL);
    }
    while (js_len && js[js_len - 1] == '\n')
        js_len--;
    FILE *o = cli->out;
    fprintf(o, "{\"format\": \"" FORMAT "\",\n \"log_id\": ");
    ann_cli_put_json_str(o, log_id, strlen(log_id));
    fprintf(o, ",\n \"entry_id\": \"%" PRIu64 "\",\n \"tree_size\": %" PRIu64 ",\n \"entry\": ", id,
            ck.size);
    put_b64(o, ent, ent_len);
    fprintf(o, ",\n \"entry_json\": ");
    ann_cli_put_json_str(o, js ? js : "", js ? js_len : 0);
    fprintf(o, ",\n \"inclusion_proof\": [");
    for (size_t i = 0; i < np; i++) {
        fprintf(o, i ? ", " : "");
        put_b64(o, path[i], 32);
    }
    fprintf(o, "],\n \"checkpoint\": ");
    ann_cli_put_json_str(o, (const char *)note, note_len);
    fprintf(o, "}\n");
    free(js);
done:
    ann_buf_release(&ckr);
    ann_buf_release(&er);
    ann_buf_release(&pr);
    return rc;
}

/* ---- verify-proof: a strict reader of the bundle's flat JSON object ---- */

typedef struct jreader {
    const char *p, *end;
} jreader;

static void jws(jreader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r'))
        r->p++;
}

static int jhex4(const char *p, unsigned *out)
{
    *out = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16;
        if (d == 16)
            return -1;
        *out = *out * 16 + d;
    }
    return 0;
}

static void put_utf8(ann_buf *b, unsigned cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80)
        u[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800)
        u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)),
        u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f)),
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
    ann_buf_add(b, u, n);
}

/* A JSON string into out (decoded). */
static int jstr(jreader *r, ann_buf *out)
{
    out->len = 0;
    jws(r);
    if (r->p >= r->end || *r->p != '"')
        return -1;
    r->p++;
    while (r->p < r->end && *r->p != '"') {
        char ch = *r->p++;
        if ((unsigned char)ch < 0x20)
            return -1;
        if (ch != '\\') {
            ann_buf_add(out, &ch, 1);
            continue;
        }
        if (r->p >= r->end)
            return -1;
        char e = *r->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple && e) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            ann_buf_add(out, &map[simple - "\"\\/bfnrt"], 1);
        } else if (e == 'u' && r->end - r->p >= 4) {
            unsigned cp;
            if (jhex4(r->p, &cp) != 0)
                return -1;
            r->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && r->end - r->p >= 6 && r->p[0] == '\\' &&
                r->p[1] == 'u') {
                unsigned lo;
                if (jhex4(r->p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                r->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(out, cp);
        } else {
            return -1;
        }
    }
    if (r->p >= r->end)
        return -1;
    r->p++;
    return 0;
}

typedef struct bundle {
    ann_buf log_id, entry_id, entry_b64, checkpoint;
    uint64_t tree_size;
    bool have_size;
    uint8_t path[ANN_MERKLE_MAX_PROOF][32];
    size_t np;
} bundle;

/* Parses the bundle; NULL, or what is wrong. */
static const char *bundle_parse(const char *text, size_t len, bundle *b)
{
    jreader r = {text, text + len};
    ann_buf k = ANN_BUF_INIT, v = ANN_BUF_INIT;
    const char *why = NULL;
    bool format_ok = false;
    jws(&r);
    if (r.p >= r.end || *r.p++ != '{')
        return "not a JSON object";
    for (;;) {
        if (jstr(&r, &k) != 0) {
            why = "expected a key";
            break;
        }
        jws(&r);
        if (r.p >= r.end || *r.p++ != ':') {
            why = "expected ':'";
            break;
        }
        jws(&r);
        ann_buf *dst = NULL;
        if (k.len == 6 && !memcmp(k.data, "log_id", 6))
            dst = &b->log_id;
        else if (k.len == 8 && !memcmp(k.data, "entry_id", 8))
            dst = &b->entry_id;
        else if (k.len == 5 && !memcmp(k.data, "entry", 5))
            dst = &b->entry_b64;
        else if (k.len == 10 && !memcmp(k.data, "checkpoint", 10))
            dst = &b->checkpoint;
        if (k.len == 9 && !memcmp(k.data, "tree_size", 9)) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(r.p, &end, 10);
            if (end == r.p || errno || end > r.end) {
                why = "tree_size: not a number";
                break;
            }
            b->tree_size = n, b->have_size = true;
            r.p = end;
        } else if (k.len == 15 && !memcmp(k.data, "inclusion_proof", 15)) {
            if (r.p >= r.end || *r.p++ != '[') {
                why = "inclusion_proof: not an array";
                break;
            }
            jws(&r);
            if (r.p < r.end && *r.p == ']') {
                r.p++;
            } else {
                for (;;) {
                    if (jstr(&r, &v) != 0 || b->np == ANN_MERKLE_MAX_PROOF ||
                        ann_base64_decode((const char *)v.data, v.len, b->path[b->np], 32) != 32) {
                        why = "inclusion_proof: not base64 hashes of 32 bytes";
                        break;
                    }
                    b->np++;
                    jws(&r);
                    if (r.p < r.end && *r.p == ',') {
                        r.p++;
                        continue;
                    }
                    if (r.p < r.end && *r.p == ']') {
                        r.p++;
                        break;
                    }
                    why = "inclusion_proof: expected ',' or ']'";
                    break;
                }
                if (why)
                    break;
            }
        } else {
            if (jstr(&r, dst ? dst : &v) != 0) {
                why = "expected a string value";
                break;
            }
            if (k.len == 6 && !memcmp(k.data, "format", 6))
                format_ok = v.len == strlen(FORMAT) && !memcmp(v.data, FORMAT, v.len);
        }
        jws(&r);
        if (r.p < r.end && *r.p == ',') {
            r.p++;
            continue;
        }
        if (r.p < r.end && *r.p == '}') {
            r.p++;
            break;
        }
        why = "expected ',' or '}'";
        break;
    }
    if (!why && !format_ok)
        why = "not an " FORMAT " bundle";
    if (!why && (!b->log_id.len || !b->entry_b64.len || !b->checkpoint.len || !b->have_size))
        why = "a field is missing (log_id, entry, tree_size, checkpoint)";
    ann_buf_release(&k);
    ann_buf_release(&v);
    return why;
}

int ann_cmd_verify_proof(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL;
    int c, rc;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'k')
            return ann_cli_bad_option(cli, argv, c);
        key = optarg;
    }
    if (optind + 1 != argc || !key)
        return ann_cli_fail(cli, ANN_EXIT_USAGE,
                            "usage: annals verify-proof BUNDLE.json --key VERIFIER_KEY");
    ann_note_verifier v;
    if ((rc = ann_cli_verifier_key(cli, key, &v)))
        return rc;
    FILE *f = fopen(argv[optind], "rb");
    if (!f)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "%s: %s", argv[optind], strerror(errno));
    char *text = ann_xmalloc(BUNDLE_MAX + 1);
    size_t len = fread(text, 1, BUNDLE_MAX + 1, f);
    fclose(f);
    bundle b = {0};
    uint8_t *ent = NULL;
    ann_err err;
    ann_checkpoint ck;
    const char *why = len > BUNDLE_MAX ? "larger than 8 MiB" : bundle_parse(text, len, &b);
    if (why) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "FAILED: bundle: %s", why);
        goto done;
    }
    char log_id[ANN_UUID_LEN + 1];
    snprintf(log_id, sizeof log_id, "%.*s", (int)b.log_id.len, (const char *)b.log_id.data);
    if (ann_checkpoint_open(&v, (const char *)b.checkpoint.data, b.checkpoint.len, log_id, &ck,
                            &err) != 0) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "FAILED: checkpoint: %s", err.msg);
        goto done;
    }
    if (ck.size != b.tree_size) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED,
                          "FAILED: the bundle's tree_size is not its checkpoint's");
        goto done;
    }
    ent = ann_xmalloc(b.entry_b64.len + 1);
    long n =
        ann_base64_decode((const char *)b.entry_b64.data, b.entry_b64.len, ent, b.entry_b64.len);
    uint64_t id = 0;
    uint8_t leaf[32];
    bool redacted;
    if (n < 0)
        why = "not base64";
    else if (ann_integrity_wire_leaf(ent, (size_t)n, &id, &redacted, leaf, &why) == 0)
        why = NULL;
    if (why) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "FAILED: entry: %s", why);
        goto done;
    }
    if (!ann_merkle_verify_inclusion(id - 1, ck.size, leaf, (const uint8_t(*)[32])b.path, b.np,
                                     ck.root)) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED,
                          "FAILED: inclusion: entry %" PRIu64
                          " is not in the signed tree of %" PRIu64 " entries",
                          id, ck.size);
        goto done;
    }
    fprintf(cli->out,
            "verified: entry %" PRIu64 " of log %s is in its signed tree of %" PRIu64 " entries\n",
            id, log_id, ck.size);
    rc = 0;
done:
    free(ent);
    free(text);
    ann_buf_release(&b.log_id);
    ann_buf_release(&b.entry_id);
    ann_buf_release(&b.entry_b64);
    ann_buf_release(&b.checkpoint);
    return rc;
}
