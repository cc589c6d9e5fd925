"""What the distributed mode does its own way (docs/distributed.md, "Retention and legal
hold"): holds in the catalog, its audit rows read by `annalsd audit --distributed`.
tests/api/test_lifecycle.py runs the whole contract in both modes."""
import grpc
import pytest

from helpers import DISTRIBUTED, create_log, expect_code, get_log, pb

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
