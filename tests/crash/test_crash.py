"""kill -9 during concurrent writes, many times over; then check the invariants.

Each round: start annalsd on the same data directory, check everything acknowledged so far,
retry what was not acknowledged, then run several writer threads (several logs, unique
insert_ids, batches of various sizes) plus a revocation and a log creation, and kill -9 the
server at a random moment. After every restart:
  - every acknowledged entry is there exactly once, with its acknowledged id and payload;
  - every log's ids are dense 1..N and entry_count is N; no insert_id appears twice;
  - an unacknowledged request is all or nothing (all its entries, with consecutive ids,
    or none of them);
  - acknowledged logs exist; acknowledged revocations hold and their bytes are gone;
  - retrying the unacknowledged requests stores each entry exactly once and returns ids.

ANNALS_CRASH_ROUNDS overrides the number of rounds (default 20, 5 under ANNALS_SANITIZED=1).
ANNALS_CRASH_SEED fixes the random choices (the seed is printed on failure).
"""
import os
import random
import signal
import tempfile
import threading
import time
import uuid

import grpc
import pytest

from conftest import SANITIZED, Client, Server, pb

ROUNDS = int(os.environ.get("ANNALS_CRASH_ROUNDS", "5" if SANITIZED else "20"))
SEED = int(os.environ.get("ANNALS_CRASH_SEED", str(int(time.time()))))
WRITERS = 4
BATCH_SIZES = [1, 1, 2, 3, 7, 20, 50, 100]


class Request:
    def __init__(self, log_id, entries):
        self.log_id = log_id
        self.entries = entries
        self.ids = None  # set when acknowledged


class Book:
    """What the clients know: acknowledged and unacknowledged requests, logs, revocations."""

    def __init__(self):
        self.lock = threading.Lock()
        self.logs = []            # acknowledged log ids
        self.acked = []           # Requests with ids
        self.unacked = []         # Requests without an answer
        self.revoked = {}         # (log_id, entry_id) -> revoked payload bytes
        self.errors = []          # writer thread failures

    def ack(self, req, ids):
        with self.lock:
            req.ids = ids
            self.acked.append(req)

    def lose(self, req):
        with self.lock:
            self.unacked.append(req)


def list_all(c, log_id):
    out, token = [], ""
    while True:
        r = c.call(c.query.ListLogEntries, pb.ListLogEntriesRequest(
            log_id=log_id, page_size=1000, page_token=token))
        out.extend(r.entries)
        token = r.next_page_token
        if not token:
            return out


def new_entries(rnd, tag, n):
    out = []
    for _ in range(n):
        iid = uuid.uuid4().hex
        out.append(pb.LogEntry(insert_id=iid, text_payload=f"{tag} payload-{iid}",
                               severity=rnd.choice([0, 300, 600])))
    return out


def writer(server, key, book, stop, seed, tag):
    rnd = random.Random(seed)
    c = Client(server, key)
    try:
        while not stop.is_set():
            with book.lock:
                log_id = rnd.choice(book.logs)
            req = Request(log_id, new_entries(rnd, tag, rnd.choice(BATCH_SIZES)))
            try:
                r = c.call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(
                    log_id=log_id, entries=req.entries), timeout=60)
            except grpc.RpcError:
                book.lose(req)
                stop.wait(0.02)
                continue
            ids = list(r.entry_ids)
            if len(ids) != len(req.entries):
                book.errors.append(f"write acknowledged with {len(ids)} ids for "
                                   f"{len(req.entries)} entries (embedded mode returns them)")
            book.ack(req, ids)
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        book.errors.append(repr(e))
    finally:
        c.close()


def check(c, book, where):
    """The invariants, after a restart. Returns {log_id: {insert_id: entry}}."""
    stored = {}
    for log_id in book.logs:
        try:
            got = list_all(c, log_id)
        except grpc.RpcError as e:
            raise AssertionError(f"{where}: acknowledged log {log_id} unreadable: "
                                 f"{e.code()} {e.details()}") from None
        ids = sorted(int(e.entry_id) for e in got)
        assert ids == list(range(1, len(got) + 1)), \
            f"{where}: log {log_id} ids not dense 1..{len(got)}: first gap near " \
            f"{next((i for i, v in enumerate(ids, 1) if i != v), None)}"
        by_iid = {}
        for e in got:
            assert e.insert_id not in by_iid, f"{where}: insert_id {e.insert_id} stored twice"
            by_iid[e.insert_id] = e
        count = c.call(c.query.GetLog, pb.GetLogRequest(log_id=log_id)).log.entry_count
        assert count == len(got), f"{where}: entry_count {count} but {len(got)} listed"
        stored[log_id] = by_iid
    for req in book.acked:
        have = stored[req.log_id]
        for e, i in zip(req.entries, req.ids):
            g = have.get(e.insert_id)
            assert g is not None, f"{where}: acknowledged entry {i} of {req.log_id} is lost"
            assert g.entry_id == i, f"{where}: acknowledged id {i} became {g.entry_id}"
            if (req.log_id, i) not in book.revoked:
                assert g.text_payload == e.text_payload and g.severity == e.severity, \
                    f"{where}: entry {i} changed"
    for req in book.unacked:
        have = stored[req.log_id]
        present = [have[e.insert_id] for e in req.entries if e.insert_id in have]
        assert len(present) in (0, len(req.entries)), \
            f"{where}: an unacknowledged request of {len(req.entries)} entries is " \
            f"half stored ({len(present)}): a request must be all or nothing"
        if present:
            nums = [int(g.entry_id) for g in present]
            assert nums == list(range(nums[0], nums[0] + len(nums))), \
                f"{where}: a request's entries got non-consecutive ids"
    for (log_id, i), payload in book.revoked.items():
        [g] = [e for e in stored[log_id].values() if e.entry_id == i]
        assert g.redacted and g.text_payload == "", f"{where}: revocation of {i} undone"
    return stored


def scan(root, needles):
    hits = []
    for d, _, files in os.walk(root):
        for f in files:
            try:
                with open(os.path.join(d, f), "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            hits += [(f, n[:40]) for n in needles if n in data]
    return hits


def retry_unacked(c, book, where):
    """Retries every unacknowledged request; each entry must end up stored exactly once."""
    before = {lid: {e.insert_id: e.entry_id for e in list_all(c, lid)} for lid in book.logs}
    pending, book.unacked = book.unacked, []
    for req in pending:
        r = c.call(c.cmd.WriteLogEntries,
                   pb.WriteLogEntriesRequest(log_id=req.log_id, entries=req.entries))
        ids = list(r.entry_ids)
        assert len(ids) == len(req.entries), f"{where}: retry returned {len(ids)} ids"
        for e, i in zip(req.entries, ids):
            old = before[req.log_id].get(e.insert_id)
            assert old is None or old == i, \
                f"{where}: retry of a stored entry returned {i}, it is stored as {old}"
        req.ids = ids
        book.acked.append(req)
    return len(pending)


@pytest.mark.timeout(600)
def test_kill9_during_concurrent_writes():
    rnd = random.Random(SEED)
    print(f"crash test: seed {SEED}, {ROUNDS} rounds")
    book = Book()
    totals = {"acked_requests": 0, "retried": 0}
    with tempfile.TemporaryDirectory(prefix="annals-crash-") as d:
        s = Server(d)
        key = s.tenant("crash")
        s.start()
        try:
            c = Client(s, key)
            for _ in range(3):
                book.logs.append(c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id)
            c.close()
            for rnd_no in range(ROUNDS):
                where = f"round {rnd_no} (seed {SEED})"
                c = Client(s, key)
                try:
                    check(c, book, where + " after restart")
                    totals["retried"] += retry_unacked(c, book, where)
                    stored = check(c, book, where + " after retries")
                    if book.revoked:
                        needles = list(book.revoked.values())
                        assert scan(d, needles) == [], f"{where}: revoked bytes on disk"
                    # a new log this round (acknowledged -> it must survive)
                    book.logs.append(c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id)
                    stop = threading.Event()
                    ts = [threading.Thread(target=writer, args=(
                        s, key, book, stop, rnd.random(), f"r{rnd_no}w{i}"))
                        for i in range(WRITERS)]
                    for t in ts:
                        t.start()
                    time.sleep(rnd.uniform(0.05, 0.4))
                    # an acknowledged revocation while writes go on
                    lid = rnd.choice(book.logs[:3])
                    victims = [e for e in stored[lid].values() if not e.redacted]
                    if victims:
                        v = rnd.choice(victims)
                        c.call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
                            log_id=lid, entry_ids=[v.entry_id], reason="crash test"))
                        book.revoked[(lid, v.entry_id)] = v.text_payload.encode()
                    time.sleep(rnd.uniform(0.05, 0.8))
                    s.kill(signal.SIGKILL)
                    stop.set()
                    for t in ts:
                        t.join()
                    assert not book.errors, f"{where}: {book.errors}"
                finally:
                    c.close()
                s.start()
            c = Client(s, key)
            try:
                check(c, book, "final")
                totals["retried"] += retry_unacked(c, book, "final")
                check(c, book, "final after retries")
            finally:
                c.close()
            totals["acked_requests"] = len(book.acked)
            print(f"crash test: {totals}, entries "
                  f"{sum(len(r.entries) for r in book.acked)}, logs {len(book.logs)}")
        finally:
            if s.proc is not None:
                rc = s.stop()
                assert rc == 0, "annalsd did not exit 0 on SIGTERM after the crash rounds"
