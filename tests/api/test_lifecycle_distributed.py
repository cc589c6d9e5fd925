"""What the distributed mode does its own way (docs/distributed.md, "Retention and legal
hold"): holds in the catalog, its audit rows read by `annalsd audit --distributed`.
tests/api/test_lifecycle.py runs the whole contract in both modes."""
import os
import signal
import tempfile
import time

import grpc
import pytest

from conftest import BIN, Client, Server, _keep_log
from helpers import DISTRIBUTED, create_log, entry, expect_code, get_log, pb, uid, write_and_wait

pytestmark = pytest.mark.skipif(not DISTRIBUTED, reason="the distributed mode's answer")
PRECOND = grpc.StatusCode.FAILED_PRECONDITION


def test_hold_blocks_delete_until_released(server, client, other_client):
    log_id = create_log(client)
    client.call(client.cmd.SetLegalHold,
                pb.SetLegalHoldRequest(log_id=log_id, hold=True, reason="case 5"))
    log = get_log(client, log_id)
    assert log.legal_hold and log.last_hold_change.hold
    assert log.last_hold_change.reason == "case 5"
    assert log.last_hold_change.actor == "tenant:tenant-a/key:admin"
    err = expect_code(PRECOND, client.call, client.cmd.DeleteLog,
                      pb.DeleteLogRequest(log_id=log_id))
    assert "hold" in err.details()
    assert get_log(client, log_id).legal_hold  # nothing changed
    # Another tenant: NOT_FOUND, as for a missing log.
    expect_code(grpc.StatusCode.NOT_FOUND, other_client.call, other_client.cmd.SetLegalHold,
                pb.SetLegalHoldRequest(log_id=log_id, hold=False, reason="x"))
    expect_code(grpc.StatusCode.NOT_FOUND, other_client.call, other_client.cmd.DeleteLog,
                pb.DeleteLogRequest(log_id=log_id))
    client.call(client.cmd.SetLegalHold,
                pb.SetLegalHoldRequest(log_id=log_id, hold=False, reason=""))
    log = get_log(client, log_id)
    assert not log.legal_hold and not log.last_hold_change.hold
    assert log.last_hold_change.reason == ""
    client.call(client.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id))
    expect_code(grpc.StatusCode.NOT_FOUND, client.call, client.cmd.SetLegalHold,
                pb.SetLegalHoldRequest(log_id=log_id, hold=True, reason="too late"))
    # The trail outlives the log (annalsd audit reads the catalog's log_events).
    out = server.admin("audit", "tenant-a", "--log", log_id).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        (log_id, "hold", "tenant:tenant-a/key:admin", "case 5"),
        (log_id, "release", "tenant:tenant-a/key:admin", "")]
    assert server.admin("audit", "no-such-tenant", check=False).returncode == 1


def test_never_held_log_deletes(client):
    log_id = create_log(client)
    assert not get_log(client, log_id).HasField("last_hold_change")
    client.call(client.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id))
    expect_code(grpc.StatusCode.NOT_FOUND, get_log, client, log_id)


def test_bad_retention_is_still_invalid_argument(client):
    err = expect_code(grpc.StatusCode.INVALID_ARGUMENT, client.call, client.cmd.CreateLog,
                      pb.CreateLogRequest(retention_days=-1))
    assert "retention_days" in err.details()


class _FaultServer(Server):
    """The same deployment served by build/bin/annalsd-faults (its API server's fault
    points live), retention days of 1 s, a pass every 100 ms."""

    def command(self):
        cmd = super().command()
        cmd[0] = os.path.join(BIN, "annalsd-faults")
        return cmd


def test_interrupted_retention_deletion_is_finished_with_its_audit_row():
    """kill -9 of the API server between the catalog's mark and the DeleteLog command: the
    log is gone for every read at once (GetLog and ListLogs), and a later pass finishes the
    deletion (the read model drops it) and writes the audit row the mark carried."""
    fast = ["--retention-day-ms", "1000", "--retention-every-ms", "100"]
    with tempfile.TemporaryDirectory(prefix="annals-life-") as d:
        # The log and its entry first, under days of real length: with 1 s days a pass could
        # take the log while its write is still on its way (a slow machine), before the test
        # has written anything.
        s = _FaultServer(d)
        s.start()
        try:
            name = "cut-" + uid()[:12]
            c = Client(s, s.tenant(name))
            kept = create_log(c)
            lg = c.call(c.cmd.CreateLog, pb.CreateLogRequest(retention_days=1)).log.id
            write_and_wait(c, lg, [entry("old line")])
            c.close()
            assert s.stop() == 0
            s.extra = fast
            s.env = dict(os.environ, ANNALS_FAULT="dist.delete_marked")
            try:
                s.start()
            except RuntimeError:
                pass  # the first pass may reach the fault point before every server listens
            deadline = time.time() + 60
            while s.proc.poll() is None:
                assert time.time() < deadline, "the retention pass never reached the fault point"
                time.sleep(0.1)
            assert s.proc.returncode == -signal.SIGKILL
            assert "dist.delete_marked" in open(s.log_path, errors="replace").read()
            s.kill()
            s.env = None
            s.start()
            c = Client(s, s.admin("key", "create", name, "--role", "admin").stdout
                       .strip().splitlines()[-1])
            expect_code(grpc.StatusCode.NOT_FOUND, get_log, c, lg)
            listed = [x.id for x in c.call(c.query.ListLogs,
                                           pb.ListLogsRequest(page_size=1000)).logs]
            assert lg not in listed and kept in listed
            deadline = time.time() + 120
            while True:
                rows = [r.split("\t") for r in s.admin("audit", name).stdout.splitlines() if r]
                done = [r for r in rows if r[1] == lg and r[2] == "retention"]
                if done:
                    break
                assert time.time() < deadline, rows
                time.sleep(0.5)
            assert len(done) == 1 and done[0][3] == "annals:retention"
            assert "last write" in done[0][4], done
            logs = [s.log_path] + [s.log_path + ".api-2"] * os.path.exists(s.log_path + ".api-2")
            assert any("finished the interrupted deletion" in open(p, errors="replace").read()
                       for p in logs)
            c.close()
            assert s.stop() == 0
        finally:
            if s.proc:
                s.kill()
            _keep_log(s)
