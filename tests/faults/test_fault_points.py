"""kill -9 at every step of revocation, deletion and the group commit, at a chosen point.

build/bin/annalsd-faults is annalsd with the store's fault points compiled in
(src/common/fault.h): ANNALS_FAULT=<point>[:<n>] makes it SIGKILL itself at the
n-th hit of that point. For each point: a log of thousands of entries, each with a
unique marker string, is written with the release annalsd; annalsd-faults then runs a
large revocation (thousands of ids), a deletion or a write, and dies at the point; the
release annalsd restarts on the same data directory (recovery) and the invariants are
checked:
  - every acknowledged entry is there with its id, ids are dense 1..N;
  - a revocation is not visible at all or complete (every point comes after its audit
    record, so recovery must complete it), nothing else is redacted, and no revoked
    marker is left in any file of the data directory (raw bytes);
  - a deletion is not applied or complete: NOT_FOUND and no file of the log left;
  - an unacknowledged write is all or nothing;
and then the cut operation, retried, succeeds (a deletion already finished answers
NOT_FOUND, the idempotent outcome) and the invariants hold again.
"""
import contextlib
import importlib.util
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import grpc
import pytest

import diskscan

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_CONFTEST = os.path.join(os.path.dirname(HERE), "conftest.py")


def _load(path, name):
    """A module of tests/ by its path, whatever other conftest is loaded."""
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if f and os.path.abspath(f) == path:
            return m
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


_rc = _load(ROOT_CONFTEST, "annals_tests_conftest")
Server, Client, pb, BIN, SANITIZED = _rc.Server, _rc.Client, _rc.pb, _rc.BIN, _rc.SANITIZED
list_all = _load(os.path.join(os.path.dirname(HERE), "api", "helpers.py"),
                 "annals_tests_api_helpers").list_all

FAULTS_BIN = os.path.join(BIN, "annalsd-faults")
ENTRIES = 3000       # in the log before the cut operation
BATCH = 500
REVOKED = 2500       # ids in the cut revocation
MARK = re.compile(rb"MK[0-9a-f]{32}")
WAIT = 120 if SANITIZED else 60


class FaultServer(Server):
    """Server that can also run annalsd-faults armed at one point."""

    def start_faulty(self, point, timeout=30):
        log = open(self.log_path, "ab")
        env = dict(os.environ, ANNALS_FAULT=point)
        self.proc = subprocess.Popen(
            [FAULTS_BIN, "serve", "--data", self.data, "--listen", self.addr] + self.extra,
            stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return self  # died during recovery at its point: checked by the caller
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("annalsd-faults did not start listening")

    def expect_killed_at(self, point):
        """The armed server must have died by SIGKILL at its point."""
        try:
            rc = self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{point}: never reached (server still running)")
        self.proc = None
        out = open(self.log_path, errors="replace").read()
        name, _, nth = point.partition(":")
        assert rc == -9, f"{point}: server exited with {rc}, not SIGKILL: {out[-2000:]}"
        assert f"annals fault: {name} hit {nth or 1}: SIGKILL" in out, \
            f"{point}: SIGKILL not from the fault point: {out[-2000:]}"


def marker():
    return "MK" + uuid.uuid4().hex


def new_entries(n):
    return [pb.LogEntry(insert_id=uuid.uuid4().hex, text_payload=marker(), severity=300)
            for _ in range(n)]


def markers_on_disk(data_dir):
    """Every marker in every file of the data directory (raw bytes)."""
    found = set()
    for _, blob in diskscan.walk(data_dir):  # raw bytes and compressed blocks
        found.update(m.decode() for m in MARK.findall(blob))
    return found


def log_files(data_dir, log_id):
    logs = os.path.join(data_dir, "logs")
    return [os.path.join(d, f) for d, _, files in os.walk(logs) for f in files
            if f.split(".")[0] == log_id]


NO_BLOCKS = ["--blocks", "off"]          # the data file's own points: nothing sealed
BLOCKS = ["--seal-idle-ms", "100"]       # sealed blocks: the log is sealed at once


@contextlib.contextmanager
def world(args=NO_BLOCKS):
    """A World in a temporary directory; its server is stopped (exit 0) at the end."""
    with tempfile.TemporaryDirectory(prefix="annals-faults-") as d:
        w = World(d, args)
        try:
            yield w
        finally:
            if w.s.proc is not None:
                assert w.s.stop() == 0


class World:
    """One data directory with one log of ENTRIES acknowledged entries."""

    def __init__(self, d, args):
        self.s = FaultServer(d, extra_args=args)
        self.key = self.s.tenant("faults")
        self.s.start()
        with self.client() as c:
            self.log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
            self.acked = []  # (entry_id, LogEntry), in id order
            for _ in range(ENTRIES // BATCH):
                es = new_entries(BATCH)
                r = c.call(c.cmd.WriteLogEntries,
                           pb.WriteLogEntriesRequest(log_id=self.log, entries=es))
                self.acked += list(zip([int(i) for i in r.entry_ids], es))
        assert self.s.stop() == 0

    @contextlib.contextmanager
    def client(self):
        c = Client(self.s, self.key)
        try:
            yield c
        finally:
            c.close()

    def cut(self, point, op, *recovery_points):
        """Runs op(client) on annalsd-faults armed at `point`, which must kill it;
        then (optionally) restarts armed at each recovery point, which must kill it
        during recovery; then starts the release annalsd."""
        self.s.start_faulty(point)
        with self.client() as c, pytest.raises(grpc.RpcError):
            op(c)
        self.s.expect_killed_at(point)
        for rp in recovery_points:
            self.s.start_faulty(rp)
            self.s.expect_killed_at(rp)
        self.s.start()

    def check_entries(self, c, extra=()):
        """Acknowledged entries with their ids, dense ids; returns entries by id."""
        got = list_all(c, self.log)
        ids = sorted(int(e.entry_id) for e in got)
        assert ids == list(range(1, len(got) + 1)), "ids not dense"
        by_id = {int(e.entry_id): e for e in got}
        for i, e in list(self.acked) + list(extra):
            g = by_id.get(i)
            assert g is not None, f"acknowledged entry {i} lost"
            assert g.insert_id == e.insert_id, f"entry {i} is another entry now"
        count = c.call(c.query.GetLog, pb.GetLogRequest(log_id=self.log)).log.entry_count
        assert count == len(got), f"entry_count {count} but {len(got)} listed"
        return by_id


# ------------------------------------------------------------------ revocation

REVOKE_POINTS = [
    ("revoke.audit_inserted", ()),
    ("revoke.overwrite:1", ()),
    (f"revoke.overwrite:{REVOKED // 2}", ()),
    (f"revoke.overwrite:{REVOKED}", ()),
    ("revoke.before_sync", ()),
    ("revoke.synced", ()),
    ("revoke.applied", ()),
    # recovery itself cut short, then finished by the next start
    (f"revoke.overwrite:{REVOKED // 2}", ("load.redact:100",)),
    ("revoke.audit_inserted", ("load.redact_synced",)),
]


def check_revocation(w, c, revoke, where):
    by_id = w.check_entries(c)
    redacted = {i for i, e in by_id.items() if e.redacted}
    stray = len(redacted - revoke)
    assert stray == 0, f"{where}: {stray} entries redacted that nobody revoked"
    whole = not redacted or redacted == revoke
    assert whole, f"{where}: revocation half applied ({len(redacted)} of {len(revoke)})"
    for i, e in w.acked:
        g = by_id[i]
        if i in redacted:
            assert g.text_payload == "", f"{where}: redacted entry {i} kept its payload"
        else:
            assert g.text_payload == e.text_payload, f"{where}: entry {i} changed"
    if redacted:
        left = {e.text_payload for i, e in w.acked if i in revoke} & markers_on_disk(w.s.data)
        assert not left, f"{where}: {len(left)} revoked markers still on disk"
    return redacted


@pytest.mark.parametrize("point,recovery", REVOKE_POINTS,
                         ids=[p + ("+" + "+".join(r) if r else "") for p, r in REVOKE_POINTS])
def test_revocation_cut(point, recovery):
    with world() as w:
        revoke = set(random.Random(point).sample([i for i, _ in w.acked], REVOKED))
        req = pb.RevokeLogEntriesRequest(
            log_id=w.log, entry_ids=[str(i) for i in sorted(revoke)], reason="fault test")
        w.cut(point, lambda c: c.call(c.cmd.RevokeLogEntries, req, timeout=WAIT), *recovery)
        with w.client() as c:
            red = check_revocation(w, c, revoke, f"{point} after restart")
            # Every point follows the durable audit record: recovery completes it.
            done = red == revoke
            assert done, f"{point}: recovery did not finish the revocation"
            c.call(c.cmd.RevokeLogEntries, req, timeout=WAIT)  # the retry
            red = check_revocation(w, c, revoke, f"{point} after the retry")
            done = red == revoke
            assert done, f"{point}: the retried revocation is not complete"


# Revocations of sealed entries rewrite blocks: cut at each step, and in the recovery.
BLOCK_REVOKE_POINTS = [
    ("revoke.block_written", ()),                   # the new version synced, the old alive
    ("block.killed", ()),                           # the old version dead, not yet punched
    ("revoke.audit_inserted", ("load.block_rewritten",)),  # recovery's rewrite cut short
]


@pytest.mark.parametrize("point,recovery", BLOCK_REVOKE_POINTS,
                         ids=[p + ("+" + "+".join(r) if r else "") for p, r in
                              BLOCK_REVOKE_POINTS])
def test_revocation_cut_in_blocks(point, recovery):
    with world(BLOCKS) as w:
        assert log_blocks(w.s.data, w.log), "the log was not sealed before the cut"
        revoke = set(random.Random(point).sample([i for i, _ in w.acked], REVOKED))
        req = pb.RevokeLogEntriesRequest(
            log_id=w.log, entry_ids=[str(i) for i in sorted(revoke)], reason="fault test")
        w.cut(point, lambda c: c.call(c.cmd.RevokeLogEntries, req, timeout=WAIT), *recovery)
        with w.client() as c:
            red = check_revocation(w, c, revoke, f"{point} after restart")
            assert red == revoke, f"{point}: recovery did not finish the revocation"
            c.call(c.cmd.RevokeLogEntries, req, timeout=WAIT)  # the retry
            red = check_revocation(w, c, revoke, f"{point} after the retry")
            assert red == revoke, f"{point}: the retried revocation is not complete"


SEAL_POINTS = ["seal.block_synced", "seal.dat_punched"]


@pytest.mark.parametrize("point", SEAL_POINTS)
def test_sealing_cut(point):
    """The sealer killed between a block's sync and its publication or the data file's
    wipe: every entry is still there once, read from the block or the data file, and a
    revocation afterwards leaves no copy in either."""
    with world(NO_BLOCKS) as w:
        w.s.extra = list(BLOCKS)  # the armed server seals the unsealed log at once
        w.s.start_faulty(point)
        with w.client() as c:  # the sealer seals the logs that are open: open it
            c.call(c.query.GetLog, pb.GetLogRequest(log_id=w.log), timeout=WAIT)
        w.s.expect_killed_at(point)
        w.s.start()
        with w.client() as c:
            w.check_entries(c)
            revoke = set(random.Random(point).sample([i for i, _ in w.acked], 50))
            c.call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
                log_id=w.log, entry_ids=[str(i) for i in sorted(revoke)], reason="x"),
                timeout=WAIT)
            assert check_revocation(w, c, revoke, f"{point} then revoked") == revoke


def log_blocks(data_dir, log_id):
    return [p for p in log_files(data_dir, log_id) if p.endswith(".blk")]


# ------------------------------------------------------------------ deletion

DELETE_POINTS = [
    ("delete.marked", ()),
    ("delete.blk_unlinked", ()),
    ("delete.idx_unlinked", ()),
    ("delete.dat_unlinked", ()),
    ("delete.dir_synced", ()),
    ("delete.removed", ()),
    # the deletion finished by recovery, which is itself cut short
    ("delete.marked", ("delete.dat_unlinked",)),
]


@pytest.mark.parametrize("point,recovery", DELETE_POINTS,
                         ids=[p + ("+" + "+".join(r) if r else "") for p, r in DELETE_POINTS])
def test_deletion_cut(point, recovery):
    with world(BLOCKS if "blk" in point else NO_BLOCKS) as w:
        d = w.s.data
        req = pb.DeleteLogRequest(log_id=w.log)
        w.cut(point, lambda c: c.call(c.cmd.DeleteLog, req, timeout=WAIT), *recovery)
        with w.client() as c:
            try:
                c.call(c.query.GetLog, pb.GetLogRequest(log_id=w.log))
                applied = False
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND, e
                applied = True
            if not applied:  # not applied: everything is still there
                w.check_entries(c)
            # Every point follows the durable "deleting" mark: recovery completes it.
            assert applied, f"{point}: recovery did not finish the deletion"
            assert not log_files(d, w.log), f"{point}: files of the deleted log left"
            left = {e.text_payload for _, e in w.acked} & markers_on_disk(d)
            assert not left, f"{point}: {len(left)} markers of the deleted log on disk"
            # The retry: the deletion is complete, so NOT_FOUND (idempotent).
            with pytest.raises(grpc.RpcError) as ei:
                c.call(c.cmd.DeleteLog, req, timeout=WAIT)
            assert ei.value.code() == grpc.StatusCode.NOT_FOUND
            # The store goes on: a new log takes writes.
            log2 = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
            r = c.call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(
                log_id=log2, entries=new_entries(3)))
            assert [int(i) for i in r.entry_ids] == [1, 2, 3]


RETENTION_POINTS = ["delete.marked", "delete.dat_unlinked", "delete.removed"]


@pytest.mark.parametrize("point", RETENTION_POINTS)
def test_retention_deletion_cut(point):
    """Retention deletes through DeleteLog's path: a kill -9 anywhere after its durable
    decision is finished by the next open, the audit record stays, no byte is left."""
    with world(NO_BLOCKS) as w:
        d = w.s.data
        w.s.admin("tenant", "set-retention", "faults", "--days", "1")
        fast = ["--retention-day-ms", "100", "--retention-every-ms", "100"]
        w.s.extra = NO_BLOCKS + fast
        time.sleep(0.3)  # the log's last write is now older than one (100 ms) day
        w.s.start_faulty(point)  # the first pass deletes it and dies at the point
        w.s.expect_killed_at(point)
        w.s.extra = list(NO_BLOCKS)  # the release server, no retention pass of its own due
        w.s.admin("tenant", "set-retention", "faults", "--days", "0")
        w.s.start()
        with w.client() as c:
            with pytest.raises(grpc.RpcError) as ei:
                c.call(c.query.GetLog, pb.GetLogRequest(log_id=w.log))
            assert ei.value.code() == grpc.StatusCode.NOT_FOUND, \
                f"{point}: recovery did not finish the retention deletion"
        assert not log_files(d, w.log), f"{point}: files of the deleted log left"
        left = {e.text_payload for _, e in w.acked} & markers_on_disk(d)
        assert not left, f"{point}: {len(left)} markers of the deleted log on disk"
        trail = w.s.admin("audit", "faults", "--log", w.log).stdout.splitlines()
        assert len(trail) == 1 and "\tretention\tannals:retention\t" in trail[0], trail


# ------------------------------------------------------------------ group commit

COMMIT_POINTS = ["commit.written", "commit.synced", "commit.published"]


@pytest.mark.parametrize("point", COMMIT_POINTS)
def test_write_cut(point):
    with world() as w:
        es = new_entries(BATCH)
        req = pb.WriteLogEntriesRequest(log_id=w.log, entries=es)
        w.cut(point, lambda c: c.call(c.cmd.WriteLogEntries, req, timeout=WAIT))
        with w.client() as c:
            by_id = w.check_entries(c)
            mine = [i for i, e in by_id.items() if e.insert_id in {x.insert_id for x in es}]
            assert len(mine) in (0, BATCH), f"{point}: a write half stored ({len(mine)})"
            if mine:
                assert sorted(mine) == list(range(ENTRIES + 1, ENTRIES + BATCH + 1))
            r = c.call(c.cmd.WriteLogEntries, req, timeout=WAIT)  # the retry
            ids = [int(i) for i in r.entry_ids]
            assert ids == list(range(ENTRIES + 1, ENTRIES + BATCH + 1))
            by_id = w.check_entries(c, extra=list(zip(ids, es)))
            assert len(by_id) == ENTRIES + BATCH, f"{point}: the retry stored twice"


def test_release_binary_has_no_fault_hook():
    with open(os.path.join(BIN, "annalsd"), "rb") as fh:
        assert b"ANNALS_FAULT" not in fh.read(), "the release annalsd has the fault hook"
    with open(FAULTS_BIN, "rb") as fh:
        assert b"ANNALS_FAULT" in fh.read()
