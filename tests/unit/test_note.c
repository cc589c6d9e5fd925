/* Signed notes and checkpoints (domain/note.h): C2SP signed-note with Ed25519 and C2SP
 * tlog-checkpoint, against golang.org/x/mod/sumdb/note's published keys and signatures
 * (kept as data) and against tampering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "domain/note.h"

static const char peter_skey[] =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char peter_vkey[] =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char enoch_vkey[] = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
static const char text[] = "If you think cryptography is the answer to your problem,\n"
                           "then you don't know what your problem is.\n";
static const char peter_sig[] =
    "\xe2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
static const char enoch_sig[] = "\xe2\x80\x94 EnochRoot "
                                "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/"
                                "5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

static char *cat3(const char *a, const char *b, const char *c)
{
    size_t x = strlen(a), y = strlen(b), z = strlen(c);
    char *s = malloc(x + y + z + 1);
    memcpy(s, a, x);
    memcpy(s + x, b, y);
    memcpy(s + x + y, c, z + 1);
    return s;
}

static int open_str(const ann_note_verifier *v, const char *note, ann_err *err)
{
    size_t tl;
    return ann_note_open(v, note, strlen(note), &tl, err);
}

static void known_keys_and_signature(void **state)
{
    (void)state;
    ann_note_signer s;
    ann_note_verifier v, w;
    ann_err err;
    assert_int_equal(ann_note_signer_parse(&s, peter_skey, strlen(peter_skey), &err), 0);
    assert_string_equal(s.name, "PeterNeumann");
    assert_int_equal(s.key_id, 0xc74f20a3);
    ann_buf b = ANN_BUF_INIT;
    ann_note_signer_format(&s, &b);
    assert_int_equal(b.len, strlen(peter_skey));
    assert_memory_equal(b.data, peter_skey, b.len);
    ann_note_verifier_of(&s, &v);
    b.len = 0;
    ann_note_verifier_format(&v, &b);
    assert_int_equal(b.len, strlen(peter_vkey));
    assert_memory_equal(b.data, peter_vkey, b.len);
    assert_int_equal(ann_note_verifier_parse(&w, peter_vkey, strlen(peter_vkey), &err), 0);
    assert_memory_equal(&v, &w, sizeof v);

    /* Ed25519 is deterministic: the published note, byte for byte. */
    b.len = 0;
    assert_int_equal(ann_note_sign(&s, text, strlen(text), &b, &err), 0);
    char *want = cat3(text, "\n", peter_sig);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    size_t tl;
    assert_int_equal(ann_note_open(&v, want, strlen(want), &tl, &err), 0);
    assert_int_equal(tl, strlen(text));
    free(want);

    /* Another key's signature beside it is ignored; each key opens its own. */
    char *two = cat3(text, "\n", peter_sig);
    char *both = cat3(two, enoch_sig, "");
    assert_int_equal(open_str(&v, both, &err), 0);
    ann_note_verifier e;
    assert_int_equal(ann_note_verifier_parse(&e, enoch_vkey, strlen(enoch_vkey), &err), 0);
    assert_int_equal(open_str(&e, both, &err), 0);
    /* The wrong key: nothing of it there. */
    assert_int_equal(open_str(&e, two, &err), -1);
    assert_non_null(strstr(err.msg, "no signature by key EnochRoot+af0cfe78"));
    free(two);
    free(both);
    ann_note_signer_release(&s);
    ann_buf_release(&b);
}

static void notes_refused(void **state)
{
    (void)state;
    ann_note_verifier v;
    ann_err err;
    assert_int_equal(ann_note_verifier_parse(&v, peter_vkey, strlen(peter_vkey), &err), 0);
    char *good = cat3(text, "\n", peter_sig);

    /* An altered text byte, an altered signature. */
    char *t = strdup(good);
    t[3] ^= 0x01;
    assert_int_equal(open_str(&v, t, &err), -1);
    assert_non_null(strstr(err.msg, "invalid signature"));
    free(t);
    char sig[sizeof peter_sig + 4];
    memcpy(sig, peter_sig, 60);
    memcpy(sig + 60, "ABCD", 4);
    memcpy(sig + 64, peter_sig + 60, sizeof peter_sig - 60);
    t = cat3(text, "\n", sig);
    assert_int_equal(open_str(&v, t, &err), -1);
    assert_non_null(strstr(err.msg, "invalid signature"));
    free(t);

    /* Malformed: no signatures, a missing final newline, control bytes, bad UTF-8, a name
     * with a space, a line after the signatures, no blank line. */
    char *no_nl = strdup(good);
    no_nl[strlen(no_nl) - 1] = 0;
    char *ctl = cat3("\x01", good, "");
    char *ff = cat3("\xff", good, "");
    char *spaced = cat3(text, "\n",
                        "\xe2\x80\x94 Bad Name "
                        "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
                        "pRZb6KE6RyyBwJnAM=\n");
    char *trailing = cat3(good, "Unexpected line.\n", "");
    char *dash = cat3(text, "\n", "- PeterNeumann x08go/ZJku\n");
    char *nosig = cat3(text, "\n", "");
    const char *bad[] = {text, nosig, no_nl, ctl, ff, spaced, trailing, dash};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(open_str(&v, bad[i], &err), -1);
        assert_int_equal(err.code, ANN_EINVAL);
    }
    free(no_nl), free(ctl), free(ff), free(spaced), free(trailing), free(dash), free(nosig);

    /* Too many signature lines. */
    ann_buf many = ANN_BUF_INIT;
    ann_buf_add(&many, text, strlen(text));
    ann_buf_add_byte(&many, '\n');
    for (int i = 0; i < ANN_NOTE_MAX_SIGNATURES + 1; i++)
        ann_buf_add(&many, peter_sig, strlen(peter_sig));
    size_t tl;
    assert_int_equal(ann_note_open(&v, (const char *)many.data, many.len, &tl, &err), -1);
    ann_buf_release(&many);

    /* Keys: a mangled id, an unknown algorithm, a short key. */
    ann_note_verifier w;
    const char *bad_keys[] = {
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T=",
        "PeterNeumann+c74f20a3",
        "Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    };
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
        assert_int_equal(ann_note_verifier_parse(&w, bad_keys[i], strlen(bad_keys[i]), &err), -1);
    ann_note_signer s;
    const char *bad_skey =
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    assert_int_equal(ann_note_signer_parse(&s, bad_skey, strlen(bad_skey), &err), -1);
    assert_int_equal(ann_note_signer_parse(&s, peter_vkey, strlen(peter_vkey), &err), -1);
    free(good);
}

static void checkpoints(void **state)
{
    (void)state;
    uint8_t seed[32], root[ANN_HASH_LEN];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(7 * i + 1), root[i] = (uint8_t)(255 - i);
    ann_note_signer s;
    ann_note_verifier v;
    ann_err err;
    assert_int_equal(ann_note_signer_init(&s, ANN_NOTE_NAME_DEFAULT, seed, &err), 0);
    ann_note_verifier_of(&s, &v);
    const char *log = "0b5a3d52-8f0e-4c61-9d3a-2a1b7c9e4f10";
    ann_buf b = ANN_BUF_INIT, t = ANN_BUF_INIT;
    ann_checkpoint_text(log, 1234, root, &t);
    ann_buf_add_byte(&t, 0);
    assert_string_equal((char *)t.data, "annals/0b5a3d52-8f0e-4c61-9d3a-2a1b7c9e4f10\n1234\n"
                                        "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=\n");
    assert_int_equal(ann_checkpoint_sign(&s, log, 1234, root, &b, &err), 0);
    ann_buf_add_byte(&b, 0);
    b.len--;
    assert_memory_equal(b.data, t.data, t.len - 1);
    assert_non_null(strstr((char *)b.data, "\n\n\xe2\x80\x94 annals "));
    ann_checkpoint c;
    assert_int_equal(ann_checkpoint_open(&v, (char *)b.data, b.len, log, &c, &err), 0);
    assert_int_equal(c.size, 1234);
    assert_memory_equal(c.root, root, ANN_HASH_LEN);
    assert_string_equal(c.origin, "annals/0b5a3d52-8f0e-4c61-9d3a-2a1b7c9e4f10");
    assert_int_equal(ann_checkpoint_open(&v, (char *)b.data, b.len, NULL, &c, &err), 0);

    /* Another log's checkpoint, a changed size, another deployment's key. */
    assert_int_equal(ann_checkpoint_open(&v, (char *)b.data, b.len,
                                         "0b5a3d52-8f0e-4c61-9d3a-2a1b7c9e4f11", &c, &err),
                     -1);
    assert_non_null(strstr(err.msg, "origin"));
    char *m = strdup((char *)b.data);
    char *p = strstr(m, "1234");
    p[3] = '5';
    assert_int_equal(ann_checkpoint_open(&v, m, strlen(m), log, &c, &err), -1);
    free(m);
    ann_note_signer other;
    seed[0] ^= 1;
    assert_int_equal(ann_note_signer_init(&other, ANN_NOTE_NAME_DEFAULT, seed, &err), 0);
    ann_note_verifier ov;
    ann_note_verifier_of(&other, &ov);
    assert_int_equal(ann_checkpoint_open(&ov, (char *)b.data, b.len, log, &c, &err), -1);
    assert_non_null(strstr(err.msg, "no signature by key annals+"));

    /* Well signed but malformed bodies: a leading zero, a short root, a non-canonical root,
     * too few lines. Extension lines are allowed. */
    static const char *bodies[] = {
        "annals/x\n01\n//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=\n",
        "annals/x\n1\n//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4Q==\n",
        "annals/x\n1\n//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eB=\n",
        "annals/x\n1\n",
        "annals/x\n18446744073709551616\n//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=\n",
        "annals/x\n-1\n//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=\n",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        ann_buf n = ANN_BUF_INIT;
        assert_int_equal(ann_note_sign(&s, bodies[i], strlen(bodies[i]), &n, &err), 0);
        assert_int_equal(ann_checkpoint_open(&v, (char *)n.data, n.len, NULL, &c, &err), -1);
        assert_int_equal(err.code, ANN_EINVAL);
        ann_buf_release(&n);
    }
    const char *ext = "annals/x\n18446744073709551615\n"
                      "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=\nextension\n";
    ann_buf n = ANN_BUF_INIT;
    assert_int_equal(ann_note_sign(&s, ext, strlen(ext), &n, &err), 0);
    assert_int_equal(ann_checkpoint_open(&v, (char *)n.data, n.len, "x", &c, &err), 0);
    assert_true(c.size == UINT64_MAX);
    ann_buf_release(&n);

    /* Texts a note cannot carry, and names a key cannot have. */
    assert_int_equal(ann_note_sign(&s, "no newline", 10, &n, &err), -1);
    assert_int_equal(ann_note_sign(&s, "tab\there\n", 9, &n, &err), -1);
    assert_int_equal(ann_note_signer_init(&other, "a b", seed, &err), -1);
    assert_int_equal(ann_note_signer_init(&other, "a+b", seed, &err), -1);
    assert_int_equal(ann_note_signer_init(&other, "", seed, &err), -1);

    /* The signing key's text form round-trips. */
    ann_buf k = ANN_BUF_INIT;
    ann_note_signer_format(&s, &k);
    ann_buf_add_byte(&k, '\n');
    ann_note_signer back;
    assert_int_equal(ann_note_signer_parse(&back, (char *)k.data, k.len, &err), 0);
    assert_memory_equal(&back, &s, sizeof s);
    ann_note_signer_release(&back);
    ann_buf_release(&k);
    ann_note_signer_release(&s);
    ann_note_signer_release(&other);
    ann_buf_release(&b);
    ann_buf_release(&t);
}

static void base64_is_strict(void **state)
{
    (void)state;
    uint8_t out[8];
    assert_int_equal(ann_base64_decode("AAE=", 4, out, sizeof out), 2);
    assert_int_equal(ann_base64_decode("AAF=", 4, out, sizeof out), -1); /* stray bits */
    assert_int_equal(ann_base64_decode("AAE", 3, out, sizeof out), -1);
    assert_int_equal(ann_base64_decode("A=AE", 4, out, sizeof out), -1);
    assert_int_equal(ann_base64_decode(" AAE", 4, out, sizeof out), -1);
    assert_int_equal(ann_base64_decode("AAECAwQFBgc=", 12, out, 7), -1); /* too small */
    assert_int_equal(ann_base64_decode("AAECAwQFBgc=", 12, out, 8), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_keys_and_signature),
        cmocka_unit_test(notes_refused),
        cmocka_unit_test(checkpoints),
        cmocka_unit_test(base64_is_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
