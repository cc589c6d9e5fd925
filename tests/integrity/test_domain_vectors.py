"""The C tree and checkpoint code (src/domain/merkle.c, note.c) against the independent
verifier (verifier.py): leaf hashes, roots, inclusion and consistency proofs for every size
1..300 and random larger ones, and a signed checkpoint.

Environment: ANNALS_BIN (default build/bin) holds integrity_vectors.
"""
import base64
import json
import os
import random
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import verifier as V

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ANNALS_BIN", os.path.join(ROOT, "build", "bin"))


def test_the_verifier_itself_gives_the_rfc6962_roots():
    leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
    roots = ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
             "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
             "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
             "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
             "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
             "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
             "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
    t = V.Tree([V.leaf_hash(bytes.fromhex(x)) for x in leaves])
    for n in range(9):
        assert t.root(n).hex() == roots[n]
    # The published consistency proof 6 -> 8 (transparency-dev/merkle's test vectors).
    assert [h.hex()[:8] for h in t.proof(6, 8)] == ["0ebc5d34", "ca854ea1", "d37ee418"]


def _vectors(seed, max_size, extra):
    exe = os.path.join(BIN, "integrity_vectors")
    out = subprocess.run([exe, str(seed), str(max_size)] + [str(x) for x in extra],
                         check=True, capture_output=True, timeout=600).stdout
    return json.loads(out)


def _flip(h, i=0):
    b = bytearray(h)
    b[i % len(b)] ^= 0x04
    return bytes(b)


@pytest.mark.parametrize("seed", [1, random.randrange(1 << 62)])
def test_c_domain_agrees_with_the_independent_verifier(seed):
    rnd = random.Random(seed)
    extra = sorted({1024, 1025, rnd.randrange(301, 4000), rnd.randrange(301, 4000)})
    doc = _vectors(seed, 300, extra)
    print("seed", seed, "extra sizes", extra)

    # Leaves: recomputed from each entry as a client sees it (labels are a map: a repeated
    # key keeps its last value); a redacted entry shows only its body_hash.
    leaves = []
    for e in doc["entries"]:
        if e.get("redacted"):
            assert "body_salt" not in e
            bh = bytes.fromhex(e["body_hash"])
        else:
            labels = {}
            for k, v in e["labels"]:
                labels[bytes.fromhex(k)] = bytes.fromhex(v)
            payload = None
            if "text" in e:
                payload = ("text", bytes.fromhex(e["text"]).decode("utf-8"))
            elif "json" in e:
                payload = ("json", bytes.fromhex(e["json"]))
            bh = V.body_hash(bytes.fromhex(e["body_salt"]), labels, payload)
            assert bh.hex() == e["body_hash"], "entry %d body_hash" % e["entry_id"]
        li = V.leaf_input(e["entry_id"], e["time_ns"], e["insert_time_ns"], e["severity"],
                          bytes.fromhex(e["insert_id"]), bh)
        lh = V.leaf_hash(li)
        assert lh.hex() == e["leaf_hash"], "entry %d leaf hash" % e["entry_id"]
        leaves.append(lh)
    assert any(e.get("redacted") for e in doc["entries"])
    assert any(e["time_ns"] < 0 for e in doc["entries"])

    tree = V.Tree(leaves)
    sizes = [s["size"] for s in doc["sizes"]]
    assert sizes[:300] == list(range(1, 301)) and sizes[300:] == extra
    for s in doc["sizes"]:
        n = s["size"]
        root = tree.root(n)
        assert s["root"] == root.hex(), "root of %d" % n
        if n <= 64:
            assert len(s["inclusion"]) == n and len(s["consistency"]) == n
        for p in s["inclusion"]:
            m = p["index"]
            hashes = [bytes.fromhex(h) for h in p["hashes"]]
            assert hashes == tree.path(m, n), "inclusion proof of %d in %d" % (m, n)
            assert V.verify_inclusion(m, n, leaves[m], hashes, root)
            for i in range(len(hashes)):
                bad = hashes[:i] + [_flip(hashes[i], m + i)] + hashes[i + 1:]
                assert not V.verify_inclusion(m, n, leaves[m], bad, root)
            if n > 1:
                assert not V.verify_inclusion(m, n, leaves[(m + 1) % n], hashes, root)
        for p in s["consistency"]:
            f = p["first"]
            hashes = [bytes.fromhex(h) for h in p["hashes"]]
            assert hashes == tree.proof(f, n), "consistency proof %d -> %d" % (f, n)
            assert V.verify_consistency(f, n, tree.root(f), root, hashes)
            for i in range(len(hashes)):
                bad = hashes[:i] + [_flip(hashes[i], f + i)] + hashes[i + 1:]
                assert not V.verify_consistency(f, n, tree.root(f), root, bad)
            if f < n:
                # A rewritten past: the first tree with one leaf changed.
                other = V.Tree(leaves[:f - 1] + [_flip(leaves[f - 1])])
                assert not V.verify_consistency(f, n, other.root(f), root, hashes)

    # The checkpoint over the whole log, signed with the deployment's key.
    total = len(leaves)
    key = V.VerifierKey(doc["verifier_key"])
    assert key.name == "annals"
    note = bytes.fromhex(doc["checkpoint"])
    text = key.open(note)
    origin, size, root = V.parse_checkpoint(text)
    assert origin == "annals/" + doc["log_id"]
    assert size == total and root == tree.root(total)
    assert text == "%s\n%d\n%s\n" % (origin, total, base64.b64encode(root).decode())
    assert note.decode().endswith("\n") and "\n\n\u2014 annals " in note.decode()

    # Refused: an altered body, another key of the same name, a truncated signature.
    altered = note.replace(b"\n%d\n" % total, b"\n%d\n" % (total + 1), 1)
    with pytest.raises(V.VerifyError):
        key.open(altered)
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = V.key_id("annals", b"\x01" + raw).hex()
    other = V.VerifierKey("annals+%s+%s" % (kid, base64.b64encode(b"\x01" + raw).decode()))
    with pytest.raises(V.VerifyError, match="no signature"):
        other.open(note)
    with pytest.raises(V.VerifyError):
        key.open(note[:-6] + b"AAAA=\n")
