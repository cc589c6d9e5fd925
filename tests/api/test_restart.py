"""SIGTERM finishes in-flight writes and exits 0; everything survives a restart."""
import os
import tempfile
import threading

import grpc
import pytest

import diskscan

from conftest import Client, Server
from helpers import (TailReader, create_log, entry, expect_code, get_log, list_all, pb, texts,
                     uid, write, write_and_wait)


@pytest.fixture
def fresh():
    """A server of its own (this module restarts it)."""
    with tempfile.TemporaryDirectory(prefix="annals-restart-") as d:
        s = Server(d).start()
        try:
            yield s
        finally:
            if s.proc is not None:
                rc = s.stop()
                assert rc == 0, "annalsd did not exit cleanly on SIGTERM"


def restart(s):
    rc = s.stop()
    assert rc == 0, "annalsd did not exit 0 on SIGTERM: " + \
        open(s.log_path, errors="replace").read()[-3000:]
    s.start()


def state(c, log_id):
    log = get_log(c, log_id)
    return (log.id, dict(log.labels), log.create_time.SerializeToString(), log.entry_count,
            [e.SerializeToString(deterministic=True) for e in list_all(c, log_id)])


def test_data_survives_restart(fresh):
    key = fresh.tenant("restart-a")
    c = Client(fresh, key)
    a = create_log(c, {"job": "survivor"})
    j = pb.LogEntry(insert_id="json-1", severity=600)
    j.json_payload.update({"k": [1, None, {"x": "y"}]})
    # times out of order, so the restarted server must rebuild the (time, id) order
    batch = [entry(f"line {i}", insert_id=f"i{i}", labels={"n": str(i)}, severity=300,
                   time={"seconds": 1700000000 + (i * 37) % 100, "nanos": i})
             for i in range(100)] + [j]
    assert write_and_wait(c, a, batch)[-1] == "101"
    c.call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(log_id=a, entry_ids=["7", "50"]))
    gone = create_log(c)
    write_and_wait(c, gone, texts(3))
    c.call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=gone))
    before = state(c, a)
    c.close()

    restart(fresh)
    c = Client(fresh, key)
    try:
        assert state(c, a) == before
        got = {e.entry_id: e for e in list_all(c, a)}
        assert got["7"].redacted and got["50"].redacted and got["7"].text_payload == ""
        expect_code(grpc.StatusCode.NOT_FOUND, get_log, c, gone)
        # idempotency survives the restart, and the sequence continues
        assert write_and_wait(c, a, batch[:3]) == ["1", "2", "3"]
        assert write_and_wait(c, a, texts(2)) == ["102", "103"]
    finally:
        c.close()

    restart(fresh)  # and once more, after writes on the restarted server
    c = Client(fresh, key)
    try:
        assert get_log(c, a).entry_count == 103
        assert sorted(int(e.entry_id) for e in list_all(c, a)) == list(range(1, 104))
    finally:
        c.close()


def test_revoked_bytes_stay_gone_after_restart(fresh):
    key = fresh.tenant("restart-r")
    c = Client(fresh, key)
    log_id = create_log(c)
    secret = "RESTART-SECRET-" + uid()
    write_and_wait(c, log_id, texts(20) + [entry(secret, insert_id=uid())] + texts(20))
    c.call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(log_id=log_id, entry_ids=["21"]))
    c.close()
    restart(fresh)
    c = Client(fresh, key)
    try:
        [r] = [e for e in list_all(c, log_id) if e.entry_id == "21"]
        assert r.redacted and r.text_payload == ""
    finally:
        c.close()
    hits = diskscan.files_containing(fresh.data, [secret.encode()])
    assert not hits, f"revoked bytes back in {hits}"


def test_sigterm_finishes_in_flight_writes_and_exits_0(fresh):
    key = fresh.tenant("restart-w")
    setup = Client(fresh, key)
    logs = [create_log(setup) for _ in range(3)]
    setup.close()
    acked, failed, lock = [], [], threading.Lock()
    some_acked = threading.Event()
    stop = threading.Event()

    def writer(i):
        c = Client(fresh, key)
        r = 0
        try:
            while not stop.is_set():
                log_id = logs[(i + r) % 3]
                es = [entry(f"w{i} r{r} {k}", insert_id=uid()) for k in range(1 + (r * 7) % 40)]
                r += 1
                try:
                    ids = list(write(c, log_id, es, wait_for_ready=False).entry_ids)
                except grpc.RpcError as e:
                    with lock:
                        failed.append((log_id, es, e.code()))
                    stop.wait(0.05)
                    continue
                with lock:
                    acked.append((log_id, es, ids))
                    if len(acked) >= 20:
                        some_acked.set()
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        assert some_acked.wait(120), "no writes acknowledged"
        rc = fresh.stop()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert rc == 0, "annalsd did not exit 0 on SIGTERM during writes: " + \
        open(fresh.log_path, errors="replace").read()[-3000:]

    fresh.start()
    c = Client(fresh, key)
    try:
        for log_id, es, _ in failed:  # retry what was refused or cut off
            write_and_wait(c, log_id, es)
        for log_id in logs:
            got = list_all(c, log_id)
            by_iid = {e.insert_id: e.entry_id for e in got}
            assert len(by_iid) == len(got), "an insert_id is stored twice"
            assert sorted(int(e.entry_id) for e in got) == list(range(1, len(got) + 1))
            for lid, es, ids in acked:
                if lid == log_id:
                    assert [by_iid.get(e.insert_id) for e in es] == ids, \
                        "an acknowledged write is missing or changed its ids"
            for lid, es, _ in failed:
                if lid == log_id:
                    assert all(e.insert_id in by_iid for e in es)
    finally:
        c.close()


def test_sigterm_with_open_tails_exits_0(fresh):
    key = fresh.tenant("restart-t")
    c = Client(fresh, key)
    log_id = create_log(c)
    write_and_wait(c, log_id, texts(3))
    tails = [TailReader(c, log_id, "0") for _ in range(3)] + [TailReader(c, log_id, "")]
    for t in tails[:3]:
        t.take(3)
    rc = fresh.stop()
    assert rc == 0, "annalsd did not exit 0 on SIGTERM with open tails"
    for t in tails:
        err = t.finish()
        assert err is not None, "a tail ended with OK when the server shut down"
    c.close()


@pytest.mark.embedded_only("the data directory's lock")
def test_a_second_server_on_the_same_data_refuses_to_start(fresh):
    key = fresh.tenant("restart-l")
    c = Client(fresh, key)
    log_id = create_log(c)
    write_and_wait(c, log_id, texts(3))
    twin = Server(fresh.data)
    with pytest.raises(RuntimeError):
        twin.start(timeout=30)  # must exit rather than serve the same files
    assert twin.proc is None or twin.proc.poll() is not None
    twin.kill()
    assert write_and_wait(c, log_id, texts(1)) == ["4"]
    c.close()


def test_tail_resumes_across_a_restart(fresh):
    key = fresh.tenant("restart-tr")
    c = Client(fresh, key)
    log_id = create_log(c)
    write_and_wait(c, log_id, texts(10))
    t = TailReader(c, log_id, "0")
    seen = t.take(10)
    restart(fresh)
    err = t.finish()
    assert err is not None, "a tail ended with OK when its server stopped"
    c.close()
    c = Client(fresh, key)
    try:
        write_and_wait(c, log_id, texts(5))
        t = TailReader(c, log_id, seen[-1].entry_id)
        seen += t.take(5)
        t.cancel()
    finally:
        c.close()
    assert [e.entry_id for e in seen] == [str(i) for i in range(1, 16)]
