"""The distributed mode has no retention or legal holds yet (docs/distributed.md,
"Retention and legal hold"): it says so with FAILED_PRECONDITION and changes nothing,
rather than ignoring the request. Runs only in the distributed mode."""
import grpc
import pytest

from helpers import DISTRIBUTED, create_log, expect_code, get_log, pb

pytestmark = pytest.mark.skipif(not DISTRIBUTED, reason="the distributed mode's answer")
PRECOND = grpc.StatusCode.FAILED_PRECONDITION


def test_set_legal_hold_is_failed_precondition(client):
    log_id = create_log(client)
    for hold in (True, False):
        err = expect_code(PRECOND, client.call, client.cmd.SetLegalHold,
                          pb.SetLegalHoldRequest(log_id=log_id, hold=hold, reason="r"))
        assert "legal hold" in err.details(), err.details()
    log = get_log(client, log_id)
    assert not log.legal_hold and not log.HasField("last_hold_change")
    client.call(client.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id))  # not held


def test_create_with_retention_is_failed_precondition(client):
    before = len(client.call(client.query.ListLogs, pb.ListLogsRequest(page_size=1000)).logs)
    err = expect_code(PRECOND, client.call, client.cmd.CreateLog,
                      pb.CreateLogRequest(retention_days=3))
    assert "retention_days" in err.details(), err.details()
    after = len(client.call(client.query.ListLogs, pb.ListLogsRequest(page_size=1000)).logs)
    assert after == before
    log = client.call(client.cmd.CreateLog, pb.CreateLogRequest(retention_days=0)).log
    assert log.retention_days == 0


def test_bad_retention_is_still_invalid_argument(client):
    err = expect_code(grpc.StatusCode.INVALID_ARGUMENT, client.call, client.cmd.CreateLog,
                      pb.CreateLogRequest(retention_days=-1))
    assert "retention_days" in err.details()
