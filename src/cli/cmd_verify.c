/*
 * annals verify LOG --key VERIFIER_KEY [--checkpoint FILE] [--save FILE]
 * (issue 10 section 3, docs/integrity.md): reads the log's latest signed checkpoint, checks
 * its signature, reads entries 1..size as raw bytes, recomputes every leaf (a live entry
 * from its salt, labels and payload; a redacted one from its body_hash) and the root, and,
 * with --checkpoint, checks that the new tree extends the saved one (a consistency proof).
 * Exit 0 only when every check holds; a failed check is exit 1, naming the check (and the
 * entry, when one entry is to blame).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/rpc.h"
#include "domain/integrity.h"
#include "domain/merkle.h"
#include "domain/note.h"
#include "domain/pbread.h"
#include "domain/text.h"

#define QRY "/annals.v1.LoggingQueryService/"
#define FILE_MAX (1 << 20)

/* A file's bytes (at most FILE_MAX), NUL-terminated; NULL with errno on failure. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = ann_xmalloc(FILE_MAX + 1);
    size_t n = fread(buf, 1, FILE_MAX + 1, f);
    int bad = ferror(f) || n > FILE_MAX;
    fclose(f);
    if (bad) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int ann_cli_verifier_key(ann_cli *cli, const char *arg, ann_note_verifier *v)
{
    ann_err err;
    if (ann_note_verifier_parse(v, arg, strlen(arg), &err) == 0)
        return 0;
    size_t n;
    char *text = slurp(arg, &n);
    if (!text)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "--key: not a verifier key, nor a file (%s)",
                            strerror(errno));
    int rc = ann_note_verifier_parse(v, text, n, &err);
    free(text);
    if (rc != 0)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "--key: %s", err.msg);
    return 0;
}

int ann_cli_unary_raw(ann_cli *cli, const char *method, const ProtobufCMessage *req, ann_buf *resp)
{
    ann_rpc_status st;
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *b = ann_xmalloc(n ? n : 1);
    protobuf_c_message_pack(req, b);
    int64_t backoff = ANN_CLI_BACKOFF_FIRST_MS;
    int rc;
    for (int attempt = 1;; attempt++) {
        if (ann_client_unary(cli->client, method, b, n, cli->timeout_ms, resp, &st) == 0) {
            rc = 0;
            break;
        }
        if (!ann_cli_retryable(&st) || attempt >= ANN_CLI_QUERY_ATTEMPTS ||
            (cli->stop && *cli->stop)) {
            rc = ann_cli_fail_rpc(cli, strrchr(method, '/') + 1, &st);
            break;
        }
        ann_cli_sleep_ms(cli, backoff);
        backoff = backoff * 2 > ANN_CLI_BACKOFF_MAX_MS ? ANN_CLI_BACKOFF_MAX_MS : backoff * 2;
    }
    free(b);
    return rc;
}

/* The bytes of field 1 of a response holding one bytes field (a checkpoint). */
static int field1(const ann_buf *resp, const uint8_t **p, size_t *n)
{
    size_t pos = 0;
    ann_pb_field f;
    *p = NULL;
    *n = 0;
    while (pos < resp->len) {
        if (!ann_pb_next(resp->data, resp->len, &pos, &f))
            return -1;
        if (f.num == 1 && f.wt == 2)
            *p = f.p, *n = f.n;
    }
    return 0;
}

typedef struct vstate {
    ann_cli *cli;
    ann_merkle_frontier fr;
    uint64_t size; /* the checkpoint's: entries 1..size are checked */
    uint64_t redacted;
    uint8_t (*leaves)[32]; /* every leaf, to name a bad entry */
} vstate;

/* One LogEntry's leaf, from its raw bytes. Returns 0, or an exit code after printing. */
static int entry_leaf(vstate *vs, const uint8_t *p, size_t n, uint64_t want)
{
    uint64_t id = 0;
    bool redacted;
    const char *why;
    ann_err err;
    if (ann_integrity_wire_leaf(p, n, &id, &redacted, vs->leaves[want - 1], &why) != 0)
        return ann_cli_fail(vs->cli, ANN_EXIT_FAILED, "FAILED: entry %" PRIu64 ": %s", want, why);
    if (id != want)
        return ann_cli_fail(vs->cli, ANN_EXIT_FAILED,
                            "FAILED: entry %" PRIu64 ": the server returned another id", want);
    vs->redacted += redacted;
    if (ann_merkle_frontier_append(&vs->fr, vs->leaves[want - 1], &err) != 0)
        return ann_cli_fail(vs->cli, ANN_EXIT_FAILED, "%s", err.msg);
    return 0;
}

/* Reads entries 1..vs->size and folds their leaves. */
static int read_leaves(vstate *vs, const char *log_id)
{
    ann_buf resp = ANN_BUF_INIT;
    uint64_t next = 1;
    int rc = 0;
    while (next <= vs->size && rc == 0) {
        char first[24];
        snprintf(first, sizeof first, "%" PRIu64, next);
        Annals__Wire__V1__ReadLogEntriesRequest req =
            ANNALS__WIRE__V1__READ_LOG_ENTRIES_REQUEST__INIT;
        req.log_id = ANN_CLI_BYTES(log_id);
        req.first_entry_id = ANN_CLI_BYTES(first);
        req.page_size = 1000;
        if ((rc = ann_cli_unary_raw(vs->cli, QRY "ReadLogEntries", &req.base, &resp)))
            break;
        size_t pos = 0, got = 0;
        ann_pb_field f;
        while (pos < resp.len && rc == 0) {
            if (!ann_pb_next(resp.data, resp.len, &pos, &f)) {
                rc = ann_cli_fail(vs->cli, ANN_EXIT_FAILED, "malformed ReadLogEntries reply");
                break;
            }
            if (f.num != 1 || f.wt != 2 || next > vs->size)
                continue;
            rc = entry_leaf(vs, f.p, f.n, next);
            next++;
            got++;
        }
        if (rc == 0 && got == 0 && next <= vs->size)
            rc = ann_cli_fail(vs->cli, ANN_EXIT_FAILED,
                              "FAILED: entry %" PRIu64 " is missing: the checkpoint covers %" PRIu64
                              " entries",
                              next, vs->size);
    }
    ann_buf_release(&resp);
    return rc;
}

/* After a root mismatch: the first entry whose leaf the server's own inclusion proof does
 * not place in the signed tree. 0 when none is found. */
static uint64_t blame(vstate *vs, const char *log_id, const uint8_t root[32])
{
    ann_buf resp = ANN_BUF_INIT;
    uint64_t bad = 0;
    for (uint64_t id = 1; id <= vs->size && !bad; id++) {
        char ids[24];
        snprintf(ids, sizeof ids, "%" PRIu64, id);
        Annals__Wire__V1__GetInclusionProofRequest req =
            ANNALS__WIRE__V1__GET_INCLUSION_PROOF_REQUEST__INIT;
        req.log_id = ANN_CLI_BYTES(log_id);
        req.entry_id = ANN_CLI_BYTES(ids);
        req.tree_size = (int64_t)vs->size;
        ann_rpc_status st;
        size_t n = protobuf_c_message_get_packed_size(&req.base);
        uint8_t b[512];
        if (n > sizeof b)
            break;
        protobuf_c_message_pack(&req.base, b);
        if (ann_client_unary(vs->cli->client, QRY "GetInclusionProof", b, n, vs->cli->timeout_ms,
                             &resp, &st) != 0)
            break;
        uint8_t path[ANN_MERKLE_MAX_PROOF][32];
        size_t np = 0, pos = 0;
        ann_pb_field f;
        while (pos < resp.len && ann_pb_next(resp.data, resp.len, &pos, &f))
            if (f.num == 1 && f.wt == 2 && f.n == 32 && np < ANN_MERKLE_MAX_PROOF)
                memcpy(path[np++], f.p, 32);
        if (!ann_merkle_verify_inclusion(id - 1, vs->size, vs->leaves[id - 1],
                                         (const uint8_t(*)[32])path, np, root))
            bad = id;
    }
    ann_buf_release(&resp);
    return bad;
}

static int save(ann_cli *cli, const char *path, const uint8_t *note, size_t n)
{
    size_t len = strlen(path) + 16;
    char *tmp = ann_xmalloc(len);
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(note, 1, n, f) == n;
    ok = f && fclose(f) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok)
        unlink(tmp);
    free(tmp);
    if (!ok)
        return ann_cli_fail(cli, ANN_EXIT_IO, "--save %s: %s", path, strerror(errno));
    return 0;
}

int ann_cmd_verify(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"checkpoint", required_argument, NULL, 'c'},
        {"save", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL, *old_path = NULL, *save_path = NULL;
    int c, rc;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            key = optarg;
            break;
        case 'c':
            old_path = optarg;
            break;
        case 's':
            save_path = optarg;
            break;
        default:
            return ann_cli_bad_option(cli, argv, c);
        }
    }
    if (optind + 1 != argc || !key)
        return ann_cli_fail(cli, ANN_EXIT_USAGE,
                            "usage: annals verify LOG --key VERIFIER_KEY [--checkpoint FILE] "
                            "[--save FILE]");
    const char *log_id = argv[optind];
    ann_note_verifier v;
    if ((rc = ann_cli_verifier_key(cli, key, &v)))
        return rc;
    /* The saved checkpoint first: a bad file is the caller's mistake, before any call. */
    ann_checkpoint old = {0};
    char *old_note = NULL;
    size_t old_len = 0;
    ann_err err;
    if (old_path) {
        old_note = slurp(old_path, &old_len);
        if (!old_note)
            return ann_cli_fail(cli, ANN_EXIT_USAGE, "--checkpoint %s: %s", old_path,
                                strerror(errno));
        int r = ann_checkpoint_open(&v, old_note, old_len, log_id, &old, &err);
        free(old_note);
        if (r != 0)
            return ann_cli_fail(cli, ANN_EXIT_FAILED, "FAILED: saved checkpoint %s: %s", old_path,
                                err.msg);
    }
    if ((rc = ann_cli_connect(cli)))
        return rc;

    ann_buf resp = ANN_BUF_INIT;
    vstate vs = {.cli = cli};
    ann_merkle_frontier_init(&vs.fr);
    Annals__Wire__V1__GetLogCheckpointRequest creq =
        ANNALS__WIRE__V1__GET_LOG_CHECKPOINT_REQUEST__INIT;
    creq.log_id = ANN_CLI_BYTES(log_id);
    const uint8_t *note;
    size_t note_len;
    ann_checkpoint ck;
    if ((rc = ann_cli_unary_raw(cli, QRY "GetLogCheckpoint", &creq.base, &resp)))
        goto done;
    if (field1(&resp, &note, &note_len) != 0 || !note) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "FAILED: no checkpoint in the reply");
        goto done;
    }
    if (ann_checkpoint_open(&v, (const char *)note, note_len, log_id, &ck, &err) != 0) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "FAILED: checkpoint signature: %s", err.msg);
        goto done;
    }
    uint8_t *note_copy = ann_xmalloc(note_len);
    memcpy(note_copy, note, note_len);

    vs.size = ck.size;
    vs.leaves = ann_xmalloc((vs.size ? vs.size : 1) * sizeof *vs.leaves);
    if ((rc = read_leaves(&vs, log_id)))
        goto done_note;
    uint8_t root[32];
    ann_merkle_frontier_root(&vs.fr, root);
    if (memcmp(root, ck.root, 32) != 0) {
        uint64_t bad = blame(&vs, log_id, ck.root);
        if (bad)
            rc = ann_cli_fail(cli, ANN_EXIT_FAILED,
                              "FAILED: root: entries 1..%" PRIu64
                              " do not give the signed root; entry %" PRIu64
                              " is not the entry the tree holds",
                              vs.size, bad);
        else
            rc = ann_cli_fail(cli, ANN_EXIT_FAILED,
                              "FAILED: root: entries 1..%" PRIu64 " do not give the signed root",
                              vs.size);
        goto done_note;
    }
    if (old_path) {
        if (old.size > ck.size) {
            rc = ann_cli_fail(cli, ANN_EXIT_FAILED,
                              "FAILED: consistency: the saved checkpoint has %" PRIu64
                              " entries, the log's latest %" PRIu64 " (rolled back)",
                              old.size, ck.size);
            goto done_note;
        }
        uint8_t path[ANN_MERKLE_MAX_PROOF][32];
        size_t np = 0;
        if (old.size > 0 && old.size < ck.size) {
            Annals__Wire__V1__GetConsistencyProofRequest preq =
                ANNALS__WIRE__V1__GET_CONSISTENCY_PROOF_REQUEST__INIT;
            preq.log_id = ANN_CLI_BYTES(log_id);
            preq.first_size = (int64_t)old.size;
            preq.second_size = (int64_t)ck.size;
            if ((rc = ann_cli_unary_raw(cli, QRY "GetConsistencyProof", &preq.base, &resp)))
                goto done_note;
            size_t pos = 0;
            ann_pb_field f;
            while (pos < resp.len && ann_pb_next(resp.data, resp.len, &pos, &f))
                if (f.num == 1 && f.wt == 2 && f.n == 32 && np < ANN_MERKLE_MAX_PROOF)
                    memcpy(path[np++], f.p, 32);
        }
        /* The saved tree must also be the prefix of the entries just read. */
        uint8_t old_root[32];
        ann_merkle_frontier pf;
        ann_merkle_frontier_init(&pf);
        for (uint64_t i = 0; i < old.size; i++)
            (void)ann_merkle_frontier_append(&pf, vs.leaves[i], &err);
        ann_merkle_frontier_root(&pf, old_root);
        if (!ann_merkle_verify_consistency(old.size, ck.size, old.root, ck.root,
                                           (const uint8_t(*)[32])path, np) ||
            memcmp(old_root, old.root, 32) != 0) {
            rc = ann_cli_fail(cli, ANN_EXIT_FAILED,
                              "FAILED: consistency: the log's tree of %" PRIu64
                              " entries does not extend the saved one of %" PRIu64
                              " (its past was rewritten)",
                              ck.size, old.size);
            goto done_note;
        }
    }
    if (save_path && (rc = save(cli, save_path, note_copy, note_len)))
        goto done_note;
    ann_buf b64 = ANN_BUF_INIT;
    ann_base64_encode(root, 32, &b64);
    fprintf(cli->out,
            "verified: log %s: %" PRIu64 " entries (%" PRIu64 " redacted), tree size %" PRIu64
            ", root %.*s%s\n",
            log_id, vs.size, vs.redacted, ck.size, (int)b64.len, (const char *)b64.data,
            old_path ? ", consistent with the saved checkpoint" : "");
    ann_buf_release(&b64);
    rc = 0;
done_note:
    free(note_copy);
    free(vs.leaves);
done:
    ann_buf_release(&resp);
    return rc;
}
