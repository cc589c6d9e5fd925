"""`annals verify` (issue 10 section 3, docs/integrity.md) against a real annalsd: a clean
log verifies, a saved checkpoint carries consistency forward, and tampering with the data
directory (a payload byte flipped, entries removed, the directory rolled back to an older
copy) fails, with the check named."""
import os
import shutil
import subprocess
import tempfile

import pytest

import diskscan

from conftest import BIN, Client, Server
from annals.v1 import annals_pb2 as pb

ANNALS = os.path.join(BIN, "annals")
pytestmark = pytest.mark.embedded_only("tampers with the embedded data directory's files")


def run(server, key, *args):
    env = dict(os.environ, ANNALS_ADDR=server.addr, ANNALS_TOKEN=key)
    return subprocess.run([ANNALS, *args], capture_output=True, env=env, timeout=60)


def write(c, log, texts):
    e = [pb.LogEntry(text_payload=t, labels={"k": "v"}) for t in texts]
    c.call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(log_id=log, entries=e))


@pytest.fixture
def setup():
    with tempfile.TemporaryDirectory(prefix="annals-verify-") as d:
        data = os.path.join(d, "data")
        s = Server(data).start()
        key = s.tenant("t")
        c = Client(s, key)
        vk = s.admin("verifier-key").stdout.strip()
        try:
            yield s, key, c, vk, d
        finally:
            c.close()
            s.kill()


def test_verify_save_and_consistency(setup):
    s, key, c, vk, d = setup
    log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
    write(c, log, [f"line {i}" for i in range(10)])
    c.call(c.cmd.RevokeLogEntries,
           pb.RevokeLogEntriesRequest(log_id=log, entry_ids=["4"], reason="r"))
    f1 = os.path.join(d, "c1")
    p = run(s, key, "verify", log, "--key", vk, "--save", f1)
    assert p.returncode == 0, p.stderr
    assert b"10 entries (1 redacted)" in p.stdout and b"tree size 10" in p.stdout
    write(c, log, [f"more {i}" for i in range(5)])
    keyfile = os.path.join(d, "vk")
    open(keyfile, "w").write(vk + "\n")
    p = run(s, key, "verify", log, "--key", keyfile, "--checkpoint", f1)
    assert p.returncode == 0, p.stderr
    assert b"tree size 15" in p.stdout and b"consistent" in p.stdout
    # Another deployment's key fails the signature check.
    other = Server(os.path.join(d, "other"))
    bad = other.admin("verifier-key").stdout.strip()
    p = run(s, key, "verify", log, "--key", bad)
    assert p.returncode == 1 and b"signature" in p.stderr


def test_rollback_is_caught(setup):
    s, key, c, vk, d = setup
    log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
    write(c, log, [f"line {i}" for i in range(6)])
    c.close()
    assert s.stop() == 0
    old = os.path.join(d, "old-copy")
    shutil.copytree(s.data, old)
    s.start()
    c = Client(s, key)
    write(c, log, [f"later {i}" for i in range(6)])
    f2 = os.path.join(d, "c2")
    assert run(s, key, "verify", log, "--key", vk, "--save", f2).returncode == 0
    c.close()
    assert s.stop() == 0
    shutil.rmtree(s.data)
    shutil.copytree(old, s.data)
    s.start()
    p = run(s, key, "verify", log, "--key", vk, "--checkpoint", f2)
    assert p.returncode == 1, p.stdout
    assert b"consistency" in p.stderr and b"rolled back" in p.stderr
    # Without the saved checkpoint the rolled-back log is self-consistent: that is why
    # clients keep checkpoints.
    assert run(s, key, "verify", log, "--key", vk).returncode == 0


def test_removed_entries_are_caught(setup):
    """Entries cut from the end of the log's own files (its records and sealed blocks put back
    as they were before the last write, the saved leaves deleted): the server serves the
    shorter log, self-consistent and freshly signed, and the saved checkpoint catches it."""
    s, key, c, vk, d = setup
    log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
    write(c, log, [f"line {i}" for i in range(6)])
    base = diskscan.log_base(s.data, log)
    kept = diskscan.snapshot_log(base)
    write(c, log, [f"later {i}" for i in range(6)])
    f2 = os.path.join(d, "c2")
    assert run(s, key, "verify", log, "--key", vk, "--save", f2).returncode == 0
    c.close()
    assert s.stop() == 0
    diskscan.put_back_log(base, kept, also=(".mrk",))
    s.start()
    c = Client(s, key)
    got = c.call(c.query.ReadLogEntries, pb.ReadLogEntriesRequest(log_id=log, page_size=100))
    assert len(got.entries) == 6  # what the intruder left
    assert run(s, key, "verify", log, "--key", vk).returncode == 0  # consistent by itself
    p = run(s, key, "verify", log, "--key", vk, "--checkpoint", f2)
    assert p.returncode == 1, p.stdout
    assert b"consistency" in p.stderr, p.stderr
    c.close()


def test_flipped_payload_byte_is_caught(setup):
    s, key, c, vk, d = setup
    log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
    write(c, log, ["alpha", "bravo-payload-XYZ", "charlie"])
    f1 = os.path.join(d, "c1")
    assert run(s, key, "verify", log, "--key", vk, "--save", f1).returncode == 0
    assert s.stop() == 0
    hit = None
    for root, _, files in os.walk(s.data):
        for name in files:
            path = os.path.join(root, name)
            blob = open(path, "rb").read()
            if b"bravo-payload-XYZ" in blob:
                hit = path
                blob = blob.replace(b"bravo-payload-XYZ", b"bravo-payload-XYW")
                open(path, "wb").write(blob)
    assert hit, "the payload was not found in a data file"
    s.start()
    p = run(s, key, "verify", log, "--key", vk, "--checkpoint", f1)
    assert p.returncode != 0, p.stdout


def _crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _rewrite_record(blob, old, new):
    """Replaces `old` by `new` (same length) inside a data-file record and fixes the record's
    CRC-32C (docs/storage.md, "Data file format"), as an intruder who knows the format
    would: the server itself then sees nothing wrong."""
    at = blob.index(old)
    for r in range(at - 48, -1, -1):
        iid, body = int.from_bytes(blob[r + 40:r + 42], "little"), \
            int.from_bytes(blob[r + 44:r + 48], "little")
        end = r + 48 + iid + body
        if end <= at or end > len(blob):
            continue
        if int.from_bytes(blob[r:r + 4], "little") != _crc32c(blob[r + 4:end]):
            continue
        out = bytearray(blob)
        out[at:at + len(old)] = new
        out[r:r + 4] = _crc32c(bytes(out[r + 4:end])).to_bytes(4, "little")
        return bytes(out)
    raise AssertionError("no record holds the bytes")


def test_rewritten_past_with_valid_checksums_is_caught(setup):
    """An intruder who rewrites a payload and fixes the checksum (and holds the signing key,
    which sits in the data directory by default) gets a self-consistent log: the saved
    checkpoint is what catches it. (--blocks off keeps the entry in the plain data file.)"""
    s0, _, c0, _, d = setup
    c0.close()
    s0.kill()
    s = Server(os.path.join(d, "plain"), extra_args=["--blocks", "off"]).start()
    key = s.tenant("t")
    c = Client(s, key)
    vk = s.admin("verifier-key").stdout.strip()
    log = c.call(c.cmd.CreateLog, pb.CreateLogRequest(labels={"x": "y"})).log.id
    write(c, log, ["alpha", "paid 100 EUR", "charlie"])
    f1 = os.path.join(d, "c1")
    assert run(s, key, "verify", log, "--key", vk, "--save", f1).returncode == 0
    c.close()
    assert s.stop() == 0
    hit = None
    for root, _, files in os.walk(s.data):
        for name in files:
            path = os.path.join(root, name)
            blob = open(path, "rb").read()
            if name.endswith(".dat") and b"paid 100 EUR" in blob:
                open(path, "wb").write(_rewrite_record(blob, b"paid 100 EUR", b"paid 900 EUR"))
                hit = path
    assert hit, "the payload was not found in a data file"
    s.start()
    c = Client(s, key)
    r = c.call(c.query.ReadLogEntries, pb.ReadLogEntriesRequest(log_id=log))
    assert r.entries[1].text_payload == "paid 900 EUR", "the rewrite did not take"
    # The server's saved leaves (<log>.mrk) still hold the old tree: the entries no longer
    # give its root, and verify names the entry.
    p = run(s, key, "verify", log, "--key", vk)
    assert p.returncode == 1 and b"root" in p.stderr and b"entry 2 " in p.stderr, p.stderr
    # An intruder who also removes the saved leaves gets a self-consistent log ...
    c.close()
    assert s.stop() == 0
    for root, _, files in os.walk(s.data):
        for name in files:
            if name.endswith(".mrk"):
                os.unlink(os.path.join(root, name))
    s.start()
    c = Client(s, key)
    assert run(s, key, "verify", log, "--key", vk).returncode == 0
    # ... which the saved checkpoint catches.
    p = run(s, key, "verify", log, "--key", vk, "--checkpoint", f1)
    assert p.returncode == 1, p.stdout
    assert b"consistency" in p.stderr and b"rewritten" in p.stderr
    c.close()
    s.kill()


def test_prove_and_verify_proof_offline(setup):
    import base64
    import json
    s, key, c, vk, d = setup
    log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
    write(c, log, ["one", "two: the line in court", "three", "four"])
    c.call(c.cmd.RevokeLogEntries,
           pb.RevokeLogEntriesRequest(log_id=log, entry_ids=["4"], reason="r"))
    p = run(s, key, "prove", log, "2", "--key", vk)
    assert p.returncode == 0, p.stderr
    bundle = json.loads(p.stdout)
    assert bundle["format"] == "annals.proof.v1" and bundle["tree_size"] == 4
    assert "the line in court" in bundle["entry_json"]
    path = os.path.join(d, "bundle.json")
    json.dump(bundle, open(path, "w"))
    p4 = run(s, key, "prove", log, "4", "--key", vk)  # a redacted entry proves too
    assert p4.returncode == 0, p4.stderr
    path4 = os.path.join(d, "bundle4.json")
    open(path4, "wb").write(p4.stdout)
    c.close()
    s.kill()  # offline: no server needed from here on
    v = subprocess.run([ANNALS, "verify-proof", path4, "--key", vk], capture_output=True,
                       timeout=60)
    assert v.returncode == 0 and b"entry 4" in v.stdout, v.stderr
    v = subprocess.run([ANNALS, "verify-proof", path, "--key", vk], capture_output=True,
                       timeout=60)
    assert v.returncode == 0, v.stderr
    assert b"entry 2 of log" in v.stdout

    def fails(mutate, what):
        b = json.loads(json.dumps(bundle))
        mutate(b)
        json.dump(b, open(path, "w"))
        r = subprocess.run([ANNALS, "verify-proof", path, "--key", vk], capture_output=True,
                           timeout=60)
        assert r.returncode == 1, f"{what}: accepted"
        return r

    raw = base64.b64decode(bundle["entry"])
    fails(lambda b: b.update(entry=base64.b64encode(
        raw.replace(b"in court", b"in COURT")).decode()), "a changed payload")
    fails(lambda b: b["inclusion_proof"].reverse(), "a reordered proof")
    fails(lambda b: b.update(checkpoint=b["checkpoint"].replace("\n4\n", "\n5\n")),
          "an altered checkpoint")
    fails(lambda b: b.update(format="other"), "another format")
    # The people's copy is not trusted, so changing it changes nothing.
    b = dict(bundle, entry_json="{}")
    json.dump(b, open(path, "w"))
    assert subprocess.run([ANNALS, "verify-proof", path, "--key", vk],
                          capture_output=True, timeout=60).returncode == 0
