"""Forensic integrity (issue 10) through the public API: checkpoints, proofs, sealing.

Every check is made by tests/integrity/verifier.py, written from RFC 9162, the C2SP specs and
docs/integrity.md (not from the C code): the entries are read back as raw protobuf bytes (the
JSON payload's Struct must be hashed exactly as returned), their leaves and the tree are
recomputed here, and the server's signed checkpoints and proofs are checked against them.
"""
import os
import random
import struct
import sys
import tempfile
import threading
import time
import uuid

import grpc
import pytest

import diskscan

from conftest import Client, Server
from helpers import (CMD, DISTRIBUTED, QRY, SEV, create_log, entry, expect_code,
                     expect_invalid, get_log, pb, raw_unary, uid, write)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integrity"))
import verifier as V  # noqa: E402

# The data directory's files (kill -9 rounds, blocks, saved leaves) are the embedded mode's;
# the distributed mode's faults are tests/faults/test_distributed_faults.py's.
FILES = pytest.mark.embedded_only("the embedded data directory's files")


# ---------------------------------------------------------------- raw wire reading

def _varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return v, i


def _fields(b):
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


def _i64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _ts(b):
    sec = nanos = 0
    for num, _, v in _fields(b):
        if num == 1:
            sec = _i64(v)
        elif num == 2:
            nanos = _i64(v)
    return sec * 1_000_000_000 + nanos


def parse_entry(b):
    """A LogEntry's leaf ingredients from its bytes on the wire."""
    e = {"labels": {}, "payload": None, "redacted": False, "severity": 0, "time": 0,
         "insert_time": 0, "salt": None, "hash": None, "insert_id": b""}
    for num, _, v in _fields(b):
        if num == 2:
            e["insert_id"] = v
        elif num == 20:
            e["id"] = int(v)
        elif num == 21:
            e["time"] = _ts(v)
        elif num == 22:
            e["insert_time"] = _ts(v)
        elif num == 23:
            kv = dict((n, x) for n, _, x in _fields(v))
            e["labels"][kv.get(1, b"")] = kv.get(2, b"")
        elif num == 30:
            e["payload"] = ("text", v)
        elif num == 31:
            e["payload"] = ("json", v)
        elif num == 40:
            e["redacted"] = bool(v)
        elif num == 41:
            e["severity"] = _i64(v)
        elif num == 43:
            for n, _, x in _fields(v):
                e["salt" if n == 1 else "hash"] = x
    return e


def read_raw(c, log_id):
    """Every entry of the log, parsed from the raw ReadLogEntries replies."""
    out, first = [], "1"
    while first:
        req = pb.ReadLogEntriesRequest(log_id=log_id, first_entry_id=first, page_size=1000)
        raw = raw_unary(c, QRY + "ReadLogEntries", req.SerializeToString())
        first = ""
        for num, _, v in _fields(raw):
            if num == 1:
                out.append(parse_entry(v))
            elif num == 2:
                first = v.decode()
    return out


def leaf_of(e):
    """The entry's leaf hash, recomputed (a live entry from its salt, labels and payload; a
    redacted one from its body_hash, and it must have no salt)."""
    if e["redacted"]:
        assert e["salt"] is None, f"redacted entry {e['id']} still returns its salt"
        assert e["hash"] is not None and len(e["hash"]) == 32, \
            f"redacted entry {e['id']} has no body_hash"
        bh = e["hash"]
    else:
        assert e["salt"] is not None and len(e["salt"]) == 32, f"entry {e['id']}: no salt"
        bh = V.body_hash(e["salt"], e["labels"], e["payload"])
        if e["hash"] is not None:
            assert e["hash"] == bh
    return V.leaf_hash(V.leaf_input(e["id"], e["time"], e["insert_time"], e["severity"],
                                    e["insert_id"], bh))


# ---------------------------------------------------------------- checkpoints

def verifier_key(server):
    return V.VerifierKey(server.admin("verifier-key").stdout.strip())


def checkpoint(c, log_id):
    return c.call(c.query.GetLogCheckpoint, pb.GetLogCheckpointRequest(log_id=log_id)).checkpoint


def open_checkpoint(vk, note, log_id):
    origin, size, root = V.parse_checkpoint(vk.open(note))
    assert origin == "annals/" + log_id
    return size, root


def inclusion(c, log_id, entry_id, size):
    return list(c.call(c.query.GetInclusionProof, pb.GetInclusionProofRequest(
        log_id=log_id, entry_id=str(entry_id), tree_size=size)).hashes)


def consistency(c, log_id, first, second):
    return list(c.call(c.query.GetConsistencyProof, pb.GetConsistencyProofRequest(
        log_id=log_id, first_size=first, second_size=second)).hashes)


def seal(c, log_id):
    return c.call(c.cmd.SealLog, pb.SealLogRequest(log_id=log_id)).checkpoint


def verify_log(c, vk, log_id):
    """Checks the latest checkpoint against the entries; returns (size, root, leaves)."""
    size, root = open_checkpoint(vk, checkpoint(c, log_id), log_id)
    es = read_raw(c, log_id)
    assert [e["id"] for e in es] == list(range(1, len(es) + 1))
    leaves = [leaf_of(e) for e in es]
    assert size <= len(leaves), "a checkpoint covers entries that are not there"
    assert V.Tree(leaves).root(size) == root, "the checkpoint's root is not the entries'"
    return size, root, leaves


def varied(n, rnd):
    """Entries of every shape: labels out of order and UTF-8, text, JSON, none, severities,
    times before 1970."""
    out = []
    for i in range(n):
        k = rnd.randrange(4)
        e = pb.LogEntry(insert_id=uid(), severity=rnd.choice([0, SEV.INFO, SEV.ERROR]))
        if k == 0:
            e.text_payload = f"line {i} ünïcødé"
        elif k == 1:
            e.json_payload.update({"i": i, "z": "last", "a": {"nested": [1, "two", None]}})
        elif k == 2:
            e.text_payload = ""
        labels = {"zone": "eu", "job": f"j{i % 3}", "é": "ü"} if rnd.random() < 0.6 else {}
        for key, v in labels.items():
            e.labels[key] = v
        if rnd.random() < 0.3:
            e.time.FromNanoseconds(-rnd.randrange(10 ** 18))
        out.append(e)
    return out


# ---------------------------------------------------------------- tests

def test_checkpoints_roots_and_proofs_verify(server, client, log):
    vk = verifier_key(server)
    rnd = random.Random(10)
    seen = []  # (size, root) of every checkpoint fetched
    for batch in (1, 2, 5, 1, 8, 16, 3, 31, 1):
        write(client, log, varied(batch, rnd))
        size, root, leaves = verify_log(client, vk, log)
        seen.append((size, root))
    n = seen[-1][0]
    assert n == 68
    tree = V.Tree(leaves)
    # Every entry in every checkpoint's tree.
    for size, root in seen:
        for i in range(1, size + 1):
            path = inclusion(client, log, i, size)
            assert V.verify_inclusion(i - 1, size, leaves[i - 1], path, root), (i, size)
            assert path == tree.path(i - 1, size)
    # Every pair of checkpoints.
    for a, ra in seen:
        for b, rb in seen:
            if a <= b:
                path = consistency(client, log, a, b)
                assert V.verify_consistency(a, b, ra, rb, path), (a, b)
                assert path == tree.proof(a, b)
    # A proof against the wrong root or leaf fails (the check can fail).
    path = inclusion(client, log, 5, n)
    assert not V.verify_inclusion(5, n, leaves[4], path, seen[-1][1])
    assert not V.verify_inclusion(4, n, leaves[5], path, seen[-1][1])


def test_larger_log_every_proof(server, client, log):
    vk = verifier_key(server)
    rnd = random.Random(300)
    for _ in range(3):
        write(client, log, varied(100, rnd))
    size, root, leaves = verify_log(client, vk, log)
    assert size == 300
    for i in rnd.sample(range(1, 301), 60) + [1, 256, 257, 300]:
        assert V.verify_inclusion(i - 1, 300, leaves[i - 1], inclusion(client, log, i, 300), root)
    tree = V.Tree(leaves)
    for m in list(range(1, 301, 7)) + [255, 256, 257, 299, 300]:
        assert V.verify_consistency(m, 300, tree.root(m), root, consistency(client, log, m, 300))


def test_checkpoint_is_signed_by_the_deployment_key(server, client, log):
    write(client, log, [entry("x", insert_id=uid())])
    note = checkpoint(client, log)
    text = note.decode()
    assert text.startswith(f"annals/{log}\n1\n") and "\n\n\u2014 annals " in text
    vk = verifier_key(server)
    open_checkpoint(vk, note, log)
    # Altered text, and another log's origin, fail.
    with pytest.raises(V.VerifyError):
        vk.open(note.replace(b"\n1\n", b"\n2\n", 1))
    other = create_log(client)
    write(client, other, [entry("y", insert_id=uid())])
    with pytest.raises(AssertionError):
        open_checkpoint(vk, checkpoint(client, other), log)


def test_redacted_entry_keeps_hash_loses_salt_and_tree_verifies(server, client, log):
    vk = verifier_key(server)
    secret = "token=" + uid()
    write(client, log, [entry("a", insert_id=uid()),
                        entry(secret, insert_id=uid(), labels={"leak": secret}),
                        entry("c", insert_id=uid())])
    size, root, _ = verify_log(client, vk, log)
    salt = read_raw(client, log)[1]["salt"]
    client.call(client.cmd.RevokeLogEntries,
                pb.RevokeLogEntriesRequest(log_id=log, entry_ids=["2"], reason="leak"))
    es = read_raw(client, log)
    assert es[1]["redacted"] and es[1]["salt"] is None and len(es[1]["hash"]) == 32
    assert es[0]["salt"] is not None and es[2]["salt"] is not None
    size2, root2, _ = verify_log(client, vk, log)
    assert (size2, root2) == (size, root), "a revocation changed the tree"
    if not DISTRIBUTED:  # the engines' files: tests/api/test_distributed_purge.py
        hits = diskscan.files_containing(server.data, [salt, secret.encode()])
        assert not hits, f"the salt or the secret is still on disk: {hits}"


def test_seal_refuses_writes_keeps_retries_and_revocation(server, client, log):
    vk = verifier_key(server)
    first = [entry(f"l{i}", insert_id=uid()) for i in range(4)]
    assert list(write(client, log, first).entry_ids) == ["1", "2", "3", "4"]
    assert get_log(client, log).sealed is False
    note = seal(client, log)
    size, root = open_checkpoint(vk, note, log)
    assert size == 4
    assert get_log(client, log).sealed is True
    err = expect_code(grpc.StatusCode.FAILED_PRECONDITION, write, client, log,
                      [entry("late", insert_id=uid())])
    assert "sealed" in err.details()
    # Mixed old and new: all or nothing, still refused.
    expect_code(grpc.StatusCode.FAILED_PRECONDITION, write, client, log,
                [first[0], entry("late", insert_id=uid())])
    # A retry of stored entries answers their ids.
    assert list(write(client, log, first[1:3]).entry_ids) == ["2", "3"]
    assert get_log(client, log).entry_count == 4
    # Revocation still works and the tree still verifies.
    client.call(client.cmd.RevokeLogEntries,
                pb.RevokeLogEntriesRequest(log_id=log, entry_ids=["3"], reason="r"))
    assert verify_log(client, vk, log)[:2] == (4, root)
    # Sealing again is harmless and answers the same tree.
    assert open_checkpoint(vk, seal(client, log), log) == (4, root)


def test_seal_of_an_empty_log(server, client, log):
    size, root = open_checkpoint(verifier_key(server), seal(client, log), log)
    assert size == 0 and root == V.sha256(b"")


def test_bad_input_names_the_field(server, client, log):
    write(client, log, [entry(f"l{i}", insert_id=uid()) for i in range(3)])
    checkpoint(client, log)
    q = client.query
    inc = lambda **kw: client.call(q.GetInclusionProof,  # noqa: E731
                                   pb.GetInclusionProofRequest(log_id=log, **kw))
    con = lambda **kw: client.call(q.GetConsistencyProof,  # noqa: E731
                                   pb.GetConsistencyProofRequest(log_id=log, **kw))
    expect_invalid(inc, entry_id="1", tree_size=4, field="tree_size")
    expect_invalid(inc, entry_id="1", tree_size=0, field="tree_size")
    expect_invalid(inc, entry_id="1", tree_size=-1, field="tree_size")
    expect_invalid(inc, entry_id="3", tree_size=2, field="entry_id")
    expect_invalid(inc, entry_id="0", tree_size=2, field="entry_id")
    expect_invalid(inc, entry_id="x", tree_size=2, field="entry_id")
    expect_invalid(inc, entry_id="", tree_size=2, field="entry_id")
    expect_invalid(con, first_size=1, second_size=4, field="second_size")
    expect_invalid(con, first_size=0, second_size=3, field="first_size")
    expect_invalid(con, first_size=3, second_size=2, field=("first_size", "second_size"))
    expect_invalid(lambda: client.call(q.GetLogCheckpoint,
                                       pb.GetLogCheckpointRequest(log_id="nope")), field="log_id")
    expect_invalid(lambda: client.call(client.cmd.SealLog, pb.SealLogRequest(log_id="")),
                   field="log_id")
    # A new entry is provable once a checkpoint covers it (GetLogCheckpoint makes one at once;
    # the checkpointer within a second).
    write(client, log, [entry("l3", insert_id=uid())])
    expect_invalid(inc, entry_id="4", tree_size=5, field="tree_size")
    checkpoint(client, log)
    assert inc(entry_id="4", tree_size=4).hashes


def test_checkpoints_follow_writes_within_a_second(server, client, log):
    vk = verifier_key(server)
    write(client, log, [entry(f"l{i}", insert_id=uid()) for i in range(3)])
    deadline = time.time() + 10
    while True:  # without asking for one: the proofs' bound moves by itself
        try:
            path = inclusion(client, log, 3, 3)
            break
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert time.time() < deadline, "no checkpoint covered the entries"
            time.sleep(0.1)
    size, root, leaves = verify_log(client, vk, log)
    assert V.verify_inclusion(2, 3, leaves[2], path, V.Tree(leaves).root(3))


def test_isolation_across_tenants(server, client, other_client, log):
    write(client, log, [entry("mine", insert_id=uid())])
    checkpoint(client, log)
    missing = str(uuid.uuid4())
    calls = [
        lambda c, l: c.call(c.query.GetLogCheckpoint, pb.GetLogCheckpointRequest(log_id=l)),
        lambda c, l: c.call(c.query.GetInclusionProof,
                            pb.GetInclusionProofRequest(log_id=l, entry_id="1", tree_size=1)),
        lambda c, l: c.call(c.query.GetConsistencyProof,
                            pb.GetConsistencyProofRequest(log_id=l, first_size=1, second_size=1)),
        lambda c, l: c.call(c.cmd.SealLog, pb.SealLogRequest(log_id=l)),
    ]
    for call in calls:
        foreign = expect_code(grpc.StatusCode.NOT_FOUND, call, other_client, log)
        absent = expect_code(grpc.StatusCode.NOT_FOUND, call, other_client, missing)
        assert foreign.details().replace(log, missing) == absent.details()
    assert get_log(client, log).sealed is False


def test_roles(server, client, log):
    write(client, log, [entry("x", insert_id=uid())])
    reader, _ = server.key("tenant-a", "reader", name="int-reader-" + uid()[:8])
    writer, _ = server.key("tenant-a", "writer", name="int-writer-" + uid()[:8])
    r, w = Client(server, reader), Client(server, writer)
    try:
        checkpoint(r, log)
        inclusion(r, log, 1, 1)
        consistency(r, log, 1, 1)
        expect_code(grpc.StatusCode.PERMISSION_DENIED, seal, r, log)
        expect_code(grpc.StatusCode.PERMISSION_DENIED, checkpoint, w, log)
        seal(w, log)
    finally:
        r.close()
        w.close()


@FILES
def test_kill9_checkpoints_cover_only_durable_entries():
    """Writers run while checkpoints are fetched; kill -9; after the restart every checkpoint
    fetched before is a prefix of the entries found (size and root), consistent with the
    new one, and every acknowledged entry is there."""
    with tempfile.TemporaryDirectory(prefix="annals-int-kill-") as d:
        s = Server(d).start()
        try:
            c = Client(s, s.tenant("t"))
            vk = verifier_key(s)
            log = create_log(c)
            acked, stop, errors = [], threading.Event(), []

            def writer():
                wc = Client(s, c.key)
                try:
                    while not stop.is_set():
                        r = write(wc, log, [entry(f"w{i}", insert_id=uid()) for i in range(20)])
                        acked.extend(int(x) for x in r.entry_ids)
                except grpc.RpcError:
                    pass  # the kill
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
                finally:
                    wc.close()

            ts = [threading.Thread(target=writer) for _ in range(3)]
            for t in ts:
                t.start()
            notes = []
            deadline = time.time() + 1.5
            while time.time() < deadline:
                notes.append(checkpoint(c, log))
                time.sleep(0.05)
            s.kill()
            stop.set()
            for t in ts:
                t.join()
            assert not errors, errors
            c.close()
            s.start()
            c = Client(s, c.key)
            assert verifier_key(s).id == vk.id, "the signing key changed across the restart"
            size, root, leaves = verify_log(c, vk, log)
            assert size >= max(acked), "an acknowledged entry is missing from the tree"
            tree = V.Tree(leaves)
            for note in notes:
                n, r = open_checkpoint(vk, note, log)
                assert n <= len(leaves), f"a checkpoint of {n} entries, {len(leaves)} survived"
                assert tree.root(n) == r, f"the checkpoint of {n} entries is not a prefix"
                if n:
                    assert V.verify_consistency(n, size, r, root, consistency(c, log, n, size))
            c.close()
        finally:
            s.kill()


@FILES
def test_compressed_blocks_keep_the_tree_through_revocation():
    """Entries moved into sealed (compressed) blocks still verify; a revocation that rewrites
    a block keeps the body_hash and purges the salt from every file."""
    with tempfile.TemporaryDirectory(prefix="annals-int-blk-") as d:
        s = Server(d, extra_args=["--seal-idle-ms", "50"]).start()
        try:
            c = Client(s, s.tenant("t"))
            vk = verifier_key(s)
            log = create_log(c)
            rnd = random.Random(7)
            write(c, log, varied(40, rnd))
            size, root, _ = verify_log(c, vk, log)
            salts = [e["salt"] for e in read_raw(c, log)]
            deadline = time.time() + 20
            while not any(f.endswith(".blk") for _, _, fs in os.walk(d) for f in fs):
                assert time.time() < deadline, "the log was never compressed into a block"
                time.sleep(0.1)
            time.sleep(0.5)
            assert verify_log(c, vk, log)[:2] == (size, root)
            c.call(c.cmd.RevokeLogEntries,
                   pb.RevokeLogEntriesRequest(log_id=log, entry_ids=["3", "17"], reason="r"))
            es = read_raw(c, log)
            assert es[2]["redacted"] and es[2]["salt"] is None and es[16]["hash"]
            assert verify_log(c, vk, log)[:2] == (size, root)
            hits = diskscan.files_containing(d, [salts[2], salts[16]])
            assert not hits, f"a revoked entry's salt is still on disk: {hits}"
            assert diskscan.files_containing(d, [salts[0]]), "the scan cannot see salts"
            # And after a restart (the tree is rebuilt from the blocks).
            c.close()
            assert s.stop() == 0
            s.start()
            c = Client(s, c.key)
            assert verify_log(c, vk, log)[:2] == (size, root)
            c.close()
        finally:
            s.kill()


@FILES
def test_signing_key_file_outside_the_data_directory():
    """--signing-key FILE: checkpoints are signed with that key, and no key is made in the
    data directory; the key made at first start is mode 0600."""
    import stat
    import subprocess
    from conftest import BIN
    with tempfile.TemporaryDirectory(prefix="annals-int-key-") as d:
        keydir = os.path.join(d, "keys")
        ann = os.path.join(BIN, "annalsd")
        vk_text = subprocess.run([ann, "verifier-key", "--data", keydir, "--key-name",
                                  "logs.example.com/annals"], check=True, capture_output=True,
                                 text=True).stdout.strip()
        keyfile = os.path.join(keydir, "signing.key")
        assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
        assert open(keyfile).read().startswith("PRIVATE+KEY+logs.example.com/annals+")
        assert vk_text.startswith("logs.example.com/annals+")
        assert subprocess.run([ann, "verifier-key", "--signing-key", keyfile], check=True,
                              capture_output=True, text=True).stdout.strip() == vk_text
        data = os.path.join(d, "data")
        s = Server(data, extra_args=["--signing-key", keyfile]).start()
        try:
            c = Client(s, s.tenant("t"))
            log = create_log(c)
            write(c, log, [entry("signed elsewhere", insert_id=uid())])
            vk = V.VerifierKey(vk_text)
            assert verify_log(c, vk, log)[0] == 1
            assert not os.path.exists(os.path.join(data, "signing.key"))
            c.close()
        finally:
            s.kill()


@FILES
def test_saved_leaves_survive_restart_and_go_with_the_log():
    with tempfile.TemporaryDirectory(prefix="annals-int-mrk-") as d:
        s = Server(d).start()
        try:
            c = Client(s, s.tenant("t"))
            vk = verifier_key(s)
            log = create_log(c)
            write(c, log, varied(50, random.Random(5)))
            size, root, _ = verify_log(c, vk, log)
            c.close()
            assert s.stop() == 0
            mrk = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs
                   if f == log + ".mrk"]
            assert mrk, "no saved leaves after a clean stop"
            s.start()
            c = Client(s, c.key)
            assert verify_log(c, vk, log)[:2] == (size, root)
            write(c, log, varied(5, random.Random(6)))
            assert verify_log(c, vk, log)[0] == size + 5
            # A damaged cache is ignored: the tree is read from the entries again.
            c.close()
            assert s.stop() == 0
            with open(mrk[0], "r+b") as f:
                f.seek(100)
                f.write(b"\xff" * 8)
            s.start()
            c = Client(s, c.key)
            assert verify_log(c, vk, log)[0] == size + 5
            c.call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log))
            left = [f for _, _, fs in os.walk(d) for f in fs if log in f]
            assert not left, f"files of the deleted log remain: {left}"
            c.close()
        finally:
            s.kill()


@FILES
def test_saved_leaves_of_entries_a_power_cut_took_are_not_used():
    """<log>.mrk is a cache written without fsync, and so is the log under durability none: a
    power cut can leave the file vouching for entries that the log lost, whose ids then go to
    new entries. Here the log loses its last frame (its file put back as it was before that
    write) while the file keeps all 50 leaves; the 10 entries written after the restart get
    ids 41..50, and the checkpoint must be over them, not over the lost ones."""
    with tempfile.TemporaryDirectory(prefix="annals-int-stale-") as d:
        s = Server(d).start()
        try:
            c = Client(s, s.tenant("t"))
            vk = verifier_key(s)
            log = create_log(c)
            rnd = random.Random(77)
            write(c, log, varied(40, rnd))
            base = diskscan.log_base(d, log)
            kept = diskscan.snapshot_log(base)  # the log as the disk had it
            write(c, log, varied(10, rnd))
            assert verify_log(c, vk, log)[0] == 50
            c.close()
            assert s.stop() == 0
            assert os.path.getsize(base + ".mrk") >= 16 + 50 * 32, "the leaves were not saved"
            diskscan.put_back_log(base, kept)  # the power cut: the last write is lost
            s.start()
            c = Client(s, c.key)
            write(c, log, varied(10, rnd))
            size, root, leaves = verify_log(c, vk, log)
            assert size == 50
            for i in (1, 40, 41, 50):
                assert V.verify_inclusion(i - 1, 50, leaves[i - 1],
                                          inclusion(c, log, i, 50), root), i
            c.close()
        finally:
            s.kill()


@FILES
def test_proofs_over_blocks_of_leaves_kept_on_disk():
    """Below level 8 the server keeps only the block of 256 leaves being filled in memory:
    proofs that reach into complete blocks read their leaves from <log>.mrk (checked against
    the block's node), or from the entries when that file was damaged, before and after a
    restart. Every proof is checked against the Python verifier."""
    with tempfile.TemporaryDirectory(prefix="annals-int-blk-") as d:
        s = Server(d).start()
        try:
            c = Client(s, s.tenant("t"))
            vk = verifier_key(s)
            log = create_log(c)
            rnd = random.Random(1000)
            for _ in range(10):
                write(c, log, varied(100, rnd))
            size, root, leaves = verify_log(c, vk, log)
            assert size == 1000
            tree = V.Tree(leaves)
            edges = [1, 2, 255, 256, 257, 511, 512, 513, 700, 767, 768, 769, 999, 1000]

            def check_all():
                for i in edges + rnd.sample(range(1, 1001), 30):
                    assert V.verify_inclusion(i - 1, 1000, leaves[i - 1],
                                              inclusion(c, log, i, 1000), root), i
                for m in edges + [100, 300, 900]:
                    assert consistency(c, log, m, 1000) == tree.proof(m, 1000), m

            check_all()
            mrk = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs
                   if f == log + ".mrk"]
            assert mrk, "complete blocks were not written while the log is open"
            assert os.path.getsize(mrk[0]) >= 16 + 768 * 32
            # Damage block 1 (leaves 257..512) under the running server; blocks 0 and 2
            # first, so that block 1 is read again: the proofs still hold (from the entries).
            inclusion(c, log, 1, 1000)
            inclusion(c, log, 600, 1000)
            with open(mrk[0], "r+b") as f:
                f.seek(16 + 300 * 32)
                f.write(b"\x5a" * 64)
            for i in (257, 300, 301, 512):
                assert V.verify_inclusion(i - 1, 1000, leaves[i - 1],
                                          inclusion(c, log, i, 1000), root), i
            c.close()
            assert s.stop() == 0
            s.start()  # the damaged file is not vouched for: the tree comes from the entries
            c = Client(s, c.key)
            assert verify_log(c, vk, log)[:2] == (size, root)
            check_all()
            c.close()
            assert s.stop() == 0
            s.start()  # a clean save this time: the tree comes from the file
            c = Client(s, c.key)
            assert verify_log(c, vk, log)[:2] == (size, root)
            check_all()
            write(c, log, varied(300, rnd))
            size2, root2, leaves2 = verify_log(c, vk, log)
            assert size2 == 1300
            assert consistency(c, log, 1000, 1300) == V.Tree(leaves2).proof(1000, 1300)
            c.close()
        finally:
            s.kill()
