"""Retention and legal hold (issue 11 section 2; docs/api.md, "Retention and legal hold").

SetLegalHold is the admin role's: every other role is PERMISSION_DENIED and changes nothing.
A held log refuses DeleteLog with FAILED_PRECONDITION and is never deleted by retention;
revocation still works. Retention deletes a log whose last write is older than its period
(the log's own, else its tenant's), as DeleteLog would, with an audit record; nothing else.
The server runs it in the background; these tests shorten a day with the hidden test flag
`--retention-day-ms` and run a pass every 100 ms, so a period of days passes in seconds.
Holds and releases are audited on the log (GetLog's `last_hold_change`) and in the
operator's trail (`annalsd audit TENANT`), as is every deletion by retention.
Both modes.
"""
import os
import subprocess
import tempfile
import time

import grpc
import pytest

from conftest import BIN, DISTRIBUTED, Client, Server
from helpers import (WAIT, create_log, entry, expect_code, expect_invalid, get_log, list_all, pb,
                     snapshot, uid, write_and_wait)


DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECOND = grpc.StatusCode.FAILED_PRECONDITION
# One retention "day" of these tests: longer in the distributed mode, whose CreateLog and
# SetLegalHold travel the pipeline (a loaded CI machine took over a second for one).
DAY_MS = 2000 if DISTRIBUTED else 1000
FAST = ["--retention-day-ms", str(DAY_MS), "--retention-every-ms", "100"]


def hold(c, log_id, on=True, reason="case 42"):
    return c.call(c.cmd.SetLegalHold, pb.SetLegalHoldRequest(log_id=log_id, hold=on,
                                                                reason=reason))


def create(c, days=0, labels=None):
    return c.call(c.cmd.CreateLog, pb.CreateLogRequest(labels=labels or {},
                                                       retention_days=days)).log


def gone(c, log_id):
    try:
        get_log(c, log_id)
        return False
    except grpc.RpcError as e:
        assert e.code() == NOT_FOUND, e.details()
        return True


def wait_until(check, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def audit(server, tenant, log_id=None):
    args = ["audit", tenant] + (["--log", log_id] if log_id else [])
    out = server.admin(*args).stdout
    return [line.split("\t") for line in out.splitlines() if line]


class Tenant:
    def __init__(self, server):
        self.name = "life-" + uid()[:12]
        self.admin = Client(server, server.tenant(self.name))
        self.clients = {"admin": self.admin}
        for role in ("writer", "reader", "redactor"):
            key, _ = server.key(self.name, role, name=role + "-key")
            self.clients[role] = Client(server, key)

    def close(self):
        for c in self.clients.values():
            c.close()


@pytest.fixture(scope="module")
def fast():
    """A server of its own whose retention day lasts DAY_MS."""
    with tempfile.TemporaryDirectory(prefix="annals-life-") as d:
        s = Server(d, extra_args=FAST).start()
        try:
            yield s
        finally:
            if s.proc is not None:
                assert s.stop() == 0


@pytest.fixture(scope="module")
def tenant(server):
    t = Tenant(server)
    yield t
    t.close()


# ------------------------------------------------------------------ roles


@pytest.mark.parametrize("role", ["writer", "reader", "redactor", "admin"])
def test_set_legal_hold_needs_admin(server, tenant, role):
    log_id = create_log(tenant.admin)
    before = get_log(tenant.admin, log_id)
    c = tenant.clients[role]
    if role == "admin":
        hold(c, log_id, True, "litigation")
        assert get_log(tenant.admin, log_id).legal_hold
        hold(c, log_id, False, "settled")
        assert not get_log(tenant.admin, log_id).legal_hold
        return
    for on in (True, False):
        err = expect_code(DENIED, hold, c, log_id, on)
        assert "SetLegalHold" in err.details() and "admin" in err.details(), err.details()
    after = get_log(tenant.admin, log_id)
    assert after == before  # nothing changed: no hold, no audit record
    assert not after.HasField("last_hold_change")
    assert audit(server, tenant.name, log_id) == []


@pytest.mark.parametrize("role", ["writer", "reader", "redactor", "admin"])
def test_create_with_retention_roles(tenant, role):
    """retention_days rides on CreateLog: the roles that may create (writer, admin) may set it."""
    c = tenant.clients[role]
    if role in ("writer", "admin"):
        log = create(c, days=7)
        assert log.retention_days == 7
        assert get_log(tenant.admin, log.id).retention_days == 7
    else:
        expect_code(DENIED, create, c, 7)


@pytest.mark.parametrize("role", ["writer", "reader"])
def test_get_log_shows_hold_to_readers(tenant, role):
    log_id = create_log(tenant.admin)
    hold(tenant.admin, log_id, True, "audit of Q3")
    log = get_log(tenant.clients[role], log_id)
    assert log.legal_hold and log.last_hold_change.hold
    assert log.last_hold_change.reason == "audit of Q3"


# ------------------------------------------------------------------ hold semantics


def test_hold_blocks_delete_until_released(server, tenant):
    c = tenant.admin
    log_id = create_log(c)
    ids = write_and_wait(c, log_id, [entry("secret=hunter2"), entry("fine")])
    t0 = time.time()
    hold(c, log_id, True, "litigation hold: case 42")
    log = get_log(c, log_id)
    assert log.legal_hold
    ch = log.last_hold_change
    assert ch.hold and ch.reason == "litigation hold: case 42"
    assert ch.actor == f"tenant:{tenant.name}/key:admin"
    assert abs(ch.time.seconds - t0) < 60

    err = expect_code(PRECOND, c.call, c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id))
    assert "hold" in err.details(), err.details()
    assert get_log(c, log_id).entry_count == 2  # nothing deleted

    # Revocation still works on a held log.
    c.call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
        log_id=log_id, entry_ids=[ids[0]], reason="leaked secret"))
    entries = list_all(c, log_id)
    assert entries[0].redacted and not entries[1].redacted

    hold(c, log_id, False, "case closed")
    log = get_log(c, log_id)
    assert not log.legal_hold
    assert not log.last_hold_change.hold and log.last_hold_change.reason == "case closed"
    c.call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id))
    assert gone(c, log_id)

    trail = audit(server, tenant.name, log_id)
    assert [(r[1], r[2], r[3], r[4]) for r in trail] == [
        (log_id, "hold", f"tenant:{tenant.name}/key:admin", "litigation hold: case 42"),
        (log_id, "release", f"tenant:{tenant.name}/key:admin", "case closed"),
    ]  # the audit outlives the log


def test_hold_twice_is_recorded_twice(server, tenant):
    c = tenant.admin
    log_id = create_log(c)
    hold(c, log_id, True, "first")
    hold(c, log_id, True, "second")
    assert get_log(c, log_id).last_hold_change.reason == "second"
    assert [r[4] for r in audit(server, tenant.name, log_id)] == ["first", "second"]


def test_release_of_unheld_log_is_recorded(server, tenant):
    c = tenant.admin
    log_id = create_log(c)
    hold(c, log_id, False, "nothing to release")
    log = get_log(c, log_id)
    assert not log.legal_hold and log.HasField("last_hold_change")
    assert [r[2] for r in audit(server, tenant.name, log_id)] == ["release"]


# ------------------------------------------------------------------ bad input


def test_bad_retention_days(tenant):
    c = tenant.admin
    before = len(c.call(c.query.ListLogs, pb.ListLogsRequest(page_size=1000)).logs)
    for days in (-1, -2147483648, 36501, 2147483647):
        expect_invalid(create, c, days, field="retention_days")
    after = len(c.call(c.query.ListLogs, pb.ListLogsRequest(page_size=1000)).logs)
    assert after == before  # nothing created
    assert create(c, days=36500).retention_days == 36500


def test_bad_hold_requests_change_nothing(server, tenant):
    c = tenant.admin
    log_id = create_log(c)
    before = snapshot(c, log_id)
    expect_invalid(hold, c, log_id, True, "x" * 1025, field="reason")
    expect_invalid(hold, c, "not-a-uuid", True, "r", field="log_id")
    expect_invalid(hold, c, "", True, "r", field="log_id")
    bad_utf8 = pb.SetLegalHoldRequest(log_id=log_id, hold=True).SerializeToString() + \
        b"\x1a\x02\xc3\x28"  # reason = invalid UTF-8
    from helpers import raw_unary
    with pytest.raises(grpc.RpcError) as ei:
        raw_unary(c, "/annals.v1.LoggingCommandService/SetLegalHold", bad_utf8,
                  metadata=c.md)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reason" in ei.value.details()
    assert snapshot(c, log_id) == before
    log = get_log(c, log_id)
    assert not log.legal_hold and not log.HasField("last_hold_change")
    assert audit(server, tenant.name, log_id) == []
    hold(c, log_id, True, "x" * 1024)  # the bound itself is allowed
    assert get_log(c, log_id).legal_hold


# ------------------------------------------------------------------ isolation


def test_isolation(server, tenant):
    other = Tenant(server)
    try:
        mine = create_log(tenant.admin)
        missing = "00000000-0000-4000-8000-000000000000"
        e1 = expect_code(NOT_FOUND, hold, other.admin, mine, True, "x")
        e2 = expect_code(NOT_FOUND, hold, other.admin, missing, True, "x")
        assert e1.details().replace(mine, "ID") == e2.details().replace(missing, "ID")
        assert not get_log(tenant.admin, mine).legal_hold
        assert audit(server, other.name) == []
        assert audit(server, tenant.name, mine) == []
        # A foreign held log is as invisible as any other: DeleteLog says NOT_FOUND, not
        # FAILED_PRECONDITION.
        hold(tenant.admin, mine, True, "mine")
        e3 = expect_code(NOT_FOUND, other.admin.call, other.admin.cmd.DeleteLog,
                         pb.DeleteLogRequest(log_id=mine))
        e4 = expect_code(NOT_FOUND, other.admin.call, other.admin.cmd.DeleteLog,
                         pb.DeleteLogRequest(log_id=missing))
        assert e3.details().replace(mine, "ID") == e4.details().replace(missing, "ID")
    finally:
        other.close()


# ------------------------------------------------------------------ retention


def test_retention_deletes_exactly_the_expired_logs(fast):
    t = Tenant(fast)
    try:
        c = t.admin
        expired = create(c, days=1).id          # 1 s: goes
        forever = create(c, days=0).id          # the tenant's period: forever, by default
        held = create(c, days=1).id
        hold(c, held, True, "keep it")
        long = create(c, days=1000).id
        written = create(c, days=4).id          # kept alive by its writes
        # Writes every ~0.2 s for 6 "days" of 1 s: each one succeeds (a deleted log would
        # answer NOT_FOUND), so the log outlived its 4-day period because it was written.
        deadline = time.time() + 6 * DAY_MS / 1000
        n = 0
        while time.time() < deadline:
            write_and_wait(c, written, [entry("keep")])
            n += 1
            time.sleep(0.2)
        assert wait_until(lambda: gone(c, expired))
        for log_id in (forever, held, long):
            assert not gone(c, log_id), log_id
        # Its writes stopped: it goes four days after the last one.
        assert wait_until(lambda: gone(c, written))
        assert n > 5

        trail = audit(fast, t.name)
        deleted = [r for r in trail if r[2] == "retention"]
        assert sorted(r[1] for r in deleted) == sorted([expired, written])
        for r in deleted:
            assert r[3] == "annals:retention"
            assert "period" in r[4] and "last write" in r[4]
        # The held log stays however old; once released, it goes.
        time.sleep(2 * DAY_MS / 1000)
        assert not gone(c, held)
        hold(c, held, False, "released")
        assert wait_until(lambda: gone(c, held))
        assert not gone(c, forever) and not gone(c, long)
    finally:
        t.close()


def test_tenant_retention_applies_to_logs_without_their_own(fast):
    t = Tenant(fast)
    try:
        c = t.admin
        default = create(c, days=0).id
        own = create(c, days=1000).id
        held = create(c, days=0).id
        hold(c, held, True, "keep")
        time.sleep(1.5 * DAY_MS / 1000)
        assert not gone(c, default)  # forever until the tenant has a period
        r = fast.admin("tenant", "set-retention", t.name, "--days", "1")
        assert "1 day" in r.stdout
        assert wait_until(lambda: gone(c, default))
        assert not gone(c, own) and not gone(c, held)
        assert get_log(c, own).retention_days == 1000
        # Back to forever: nothing more goes.
        fast.admin("tenant", "set-retention", t.name, "--days", "0")
        later = create(c).id
        time.sleep(2 * DAY_MS / 1000)
        assert not gone(c, later)
    finally:
        t.close()


def test_set_retention_bad_input(fast):
    r = fast.admin("tenant", "set-retention", "no-such-tenant-" + uid()[:8], "--days", "3",
                   check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    t = Tenant(fast)
    try:
        for bad in ("-1", "x", "36501", "1.5", ""):
            r = fast.admin("tenant", "set-retention", t.name, "--days", bad, check=False)
            assert r.returncode == 2, (bad, r.stderr)
        log_id = create_log(t.admin)
        time.sleep(1.5 * DAY_MS / 1000)
        assert not gone(t.admin, log_id)  # the refused commands changed nothing
    finally:
        t.close()


def test_retention_isolated_between_tenants(fast):
    a, b = Tenant(fast), Tenant(fast)
    try:
        la = create_log(a.admin)
        lb = create_log(b.admin)
        fast.admin("tenant", "set-retention", a.name, "--days", "1")
        assert wait_until(lambda: gone(a.admin, la))
        time.sleep(DAY_MS / 1000)
        assert not gone(b.admin, lb)  # b's period is still forever
        assert audit(fast, b.name) == []
    finally:
        a.close()
        b.close()


def test_retention_survives_restart():
    with tempfile.TemporaryDirectory(prefix="annals-life-restart-") as d:
        s = Server(d, extra_args=FAST).start()
        try:
            t = Tenant(s)
            c = t.admin
            expires = create(c, days=3).id
            held = create(c, days=1).id
            hold(c, held, True, "keep across restarts")
            keeps = create(c, days=1000).id
            t.close()
            assert s.stop() == 0
            time.sleep(3.5 * DAY_MS / 1000)  # it expires while the server is down
            s.start()
            t2 = Client(s, c.key)
            assert wait_until(lambda: gone(t2, expires))
            assert not gone(t2, held) and get_log(t2, held).legal_hold
            assert get_log(t2, held).last_hold_change.reason == "keep across restarts"
            assert not gone(t2, keeps)
            assert get_log(t2, keeps).retention_days == 1000
            t2.close()
        finally:
            if s.proc is not None:
                assert s.stop() == 0


def test_list_logs_shows_hold_and_retention(tenant):
    c = tenant.admin
    mark = uid()
    held = create(c, days=9, labels={"mark": mark}).id
    plain = create(c, labels={"mark": mark}).id
    hold(c, held, True, "listed")
    logs = {l.id: l for l in c.call(c.query.ListLogs, pb.ListLogsRequest(
        label_filter={"mark": mark})).logs}
    assert logs[held].legal_hold and logs[held].retention_days == 9
    assert not logs[plain].legal_hold and logs[plain].retention_days == 0


def test_retention_ends_open_tails_like_delete(fast):
    """A log deleted by retention behaves as after DeleteLog: its tail ends with NOT_FOUND,
    every call on it is NOT_FOUND, and the audit says whose period it was."""
    t = Tenant(fast)
    try:
        c = t.admin
        log_id = create(c, days=5).id  # 5 s after its last write: the tail opens well before
        write_and_wait(c, log_id, [entry("a"), entry("b")])
        stream = c.query.TailLogEntries(pb.TailLogEntriesRequest(log_id=log_id,
                                                                 after_entry_id="0"),
                                        metadata=c.md, timeout=WAIT)
        got = []
        with pytest.raises(grpc.RpcError) as ei:
            for msg in stream:
                got += [e.entry_id for e in msg.entries]
        assert ei.value.code() == NOT_FOUND, ei.value.details()
        assert got == ["1", "2"]
        assert gone(c, log_id)
        expect_code(NOT_FOUND, c.call, c.cmd.WriteLogEntries,
                    pb.WriteLogEntriesRequest(log_id=log_id, entries=[entry("late")]))
        trail = audit(fast, t.name, log_id)
        assert len(trail) == 1 and trail[0][2] == "retention"
        assert "log's period of 5 days" in trail[0][4] and "deleted 2 entries" in trail[0][4]
    finally:
        t.close()
