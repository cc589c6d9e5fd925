"""Storage failures as a client sees them: the right code, a retriable flag, no internals.

The data directory sits on a small tmpfs that the test fills with a file of its own, so the
server really meets ENOSPC. The client must read RESOURCE_EXHAUSTED with a message that names
the condition and never a server path or an internal tenant id, and the trailing metadata
`annals-retriable: true`; nothing is stored; once space is freed the same request (same
insert_ids) succeeds and stores each entry once. Needs mount(2) (root, as in CI); skipped
otherwise.
"""
import os
import re
import subprocess
import tempfile
import time

import grpc
import pytest

from conftest import BIN, Client, Server, pb

# A full disk under the data directory: the distributed mode's disks are the engines'.
pytestmark = pytest.mark.embedded_only("disk-full emulation of the data directory")
from helpers import expect_code

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def small_disk():
    with tempfile.TemporaryDirectory(prefix="annals-full-") as d:
        mnt = os.path.join(d, "mnt")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt],
                           capture_output=True)
        if r.returncode != 0:
            pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode(errors="replace"))
        try:
            yield d, mnt
        finally:
            subprocess.run(["umount", "-l", mnt])


def fill(path):
    """Fills the file system with one file; returns its path."""
    chunk = b"\0" * (64 * 1024)
    f = open(path, "wb", buffering=0)  # unbuffered: close() has nothing left to flush
    try:
        while True:
            f.write(chunk)
    except OSError:
        pass
    finally:
        f.close()
    return path


def trailers(err):
    return dict(err.trailing_metadata() or ())


def assert_no_internals(msg, data_dir, tenant_id):
    assert "/" not in msg, f"server path in a client's message: {msg!r}"
    assert data_dir not in msg and tenant_id not in msg, msg
    assert not UUID.search(msg), f"an internal id in a client's message: {msg!r}"


def start_on(outer, mnt):
    data = os.path.join(mnt, "data")
    s = Server(data)
    s.log_path = os.path.join(outer, "annalsd.out")  # the operator's log, off the full disk
    os.makedirs(data)
    out = subprocess.run([os.path.join(BIN, "annalsd"), "tenant", "create", "full",
                          "--data", data], check=True, capture_output=True, text=True)
    key = out.stdout.strip().splitlines()[-1]
    tenant_id = re.search(r"with id (\S+)", out.stdout).group(1)
    s.start()
    return s, data, key, tenant_id


def test_disk_full_is_retriable_resource_exhausted_without_internals(small_disk):
    outer, mnt = small_disk
    s, data, key, tenant_id = start_on(outer, mnt)
    c = Client(s, key)
    try:
        log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
        c.call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(
            log_id=log, entries=[pb.LogEntry(text_payload="before", insert_id="b0")]))

        filler = fill(os.path.join(mnt, "filler"))
        req = pb.WriteLogEntriesRequest(log_id=log, entries=[
            pb.LogEntry(text_payload=f"line {i} " + "z" * 8000, insert_id=f"full-{i}")
            for i in range(200)])
        err = expect_code(grpc.StatusCode.RESOURCE_EXHAUSTED, c.call, c.cmd.WriteLogEntries, req)
        msg = err.details()
        assert "full" in msg and "retry" in msg, msg
        assert_no_internals(msg, data, tenant_id)
        assert trailers(err).get("annals-retriable") == "true", err.trailing_metadata()
        assert c.call(c.query.GetLog, pb.GetLogRequest(log_id=log)).log.entry_count == 1

        # Metadata writes meet the full disk too (SQLite): same family of answer.
        try:
            c.call(c.cmd.CreateLog, pb.CreateLogRequest(labels={"k": "v" * 4000}))
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                grpc.StatusCode.UNAVAILABLE), e
            assert_no_internals(e.details(), data, tenant_id)
            assert trailers(e).get("annals-retriable") == "true"

        os.unlink(filler)
        r = c.call(c.cmd.WriteLogEntries, req)
        assert list(r.entry_ids) == [str(i) for i in range(2, 202)]
        r2 = c.call(c.cmd.WriteLogEntries, req)  # a retry of the retry: nothing twice
        assert list(r2.entry_ids) == list(r.entry_ids)
        assert c.call(c.query.GetLog, pb.GetLogRequest(log_id=log)).log.entry_count == 201
        # The operator's log has the details the client did not get.
        assert "storage_full" in open(s.log_path, errors="replace").read()
    finally:
        c.close()
        assert s.stop() == 0


def test_cli_writer_waits_out_a_full_disk(small_disk):
    outer, mnt = small_disk
    s, data, key, _ = start_on(outer, mnt)
    c = Client(s, key)
    try:
        log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
        filler = fill(os.path.join(mnt, "filler"))
        env = dict(os.environ, ANNALS_ADDR=s.addr, ANNALS_TOKEN=key)
        src = os.path.join(outer, "job-7.txt")
        with open(src, "w") as f:
            f.write("".join(f"line {i} " + "q" * 4000 + "\n" for i in range(300)))
        with open(src, "rb") as stdin:
            p = subprocess.Popen([os.path.join(BIN, "annals"), "write", log,
                                  "--source", "job-7"], stdin=stdin, stderr=subprocess.PIPE,
                                 env=env)
        err = b""
        deadline = time.time() + 60
        while b"retrying" not in err and time.time() < deadline:  # it met the full disk
            chunk = os.read(p.stderr.fileno(), 4096)
            if not chunk:
                break
            err += chunk
        assert b"RESOURCE_EXHAUSTED" in err and b"retrying" in err, err
        os.unlink(filler)
        rest = p.stderr.read()
        assert p.wait(timeout=120) == 0, err + rest
        got = c.call(c.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=log, page_size=1000))
        assert [e.text_payload.split(" ")[1] for e in got.entries] == [str(i) for i in range(300)]
        assert [e.entry_id for e in got.entries] == [str(i) for i in range(1, 301)]
    finally:
        c.close()
        assert s.stop() == 0
