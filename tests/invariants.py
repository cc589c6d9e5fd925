"""Traffic and invariants shared by the crash test (tests/crash) and the power-loss test
(tests/faults): concurrent writers, tail followers, a revoker and a create/write/delete
cycler that record what the server acknowledged in a Book, and `check`, which verifies
after a restart everything the Book says must hold (docs/testing.md lists the rules).
"""
import collections
import os
import random
import re
import threading
import time
import uuid

import grpc

import diskscan
from conftest import Client, pb

WRITERS = 4
LONG_LOGS = 3
BATCH_SIZES = [1, 1, 2, 3, 7, 20, 50, 100]
MARK = re.compile(rb"payload-[0-9a-f]{32}")


class Request:
    def __init__(self, log_id, entries):
        self.log_id = log_id
        self.entries = entries
        self.ids = None  # set when acknowledged
        self.retried = False  # acknowledged by retry_unacked


class Book:
    """What the clients know."""

    def __init__(self):
        self.lock = threading.Lock()
        self.logs = []            # acknowledged, never deleted
        self.acked = []           # Requests with ids
        self.unacked = []         # Requests without an answer
        self.revoked = set()      # (log_id, entry_id) acknowledged as revoked
        self.revokes_unacked = []  # (log_id, [entry_ids])
        self.doomed = {}          # log_id -> {"entries": [...], "delete": None|True|False}
        self.errors = []          # thread failures


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


def guarded(book, fn):
    def run(*a):
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            book.errors.append(f"{fn.__name__}: {e!r}")
    return run


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
                with book.lock:
                    book.unacked.append(req)
                stop.wait(0.02)
                continue
            ids = list(r.entry_ids)
            if len(ids) != len(req.entries):
                book.errors.append(f"write acknowledged with {len(ids)} ids for "
                                   f"{len(req.entries)} entries")
            with book.lock:
                req.ids = ids
                book.acked.append(req)
    finally:
        c.close()


class Follower:
    """Follows one log's tail across server restarts; remembers every (id, insert_id)."""

    def __init__(self, log_id):
        self.log_id = log_id
        self.seen = []  # insert_ids; seen[i] is entry id i+1
        self.call = None

    def run(self, server, key, book, stop):
        c = Client(server, key)
        try:
            self.call = c.query.TailLogEntries(
                pb.TailLogEntriesRequest(log_id=self.log_id, after_entry_id=str(len(self.seen))),
                metadata=c.md)
            if stop.is_set():
                self.call.cancel()
            for resp in self.call:
                for e in resp.entries:
                    want = len(self.seen) + 1
                    if int(e.entry_id) != want:
                        book.errors.append(f"tail of {self.log_id} resumed after "
                                           f"{want - 1} sent {e.entry_id}")
                        self.call.cancel()
                        return
                    self.seen.append(e.insert_id)
        except grpc.RpcError:
            pass  # killed or cancelled: the next round resumes from len(self.seen)
        finally:
            c.close()

    def cancel(self):
        if self.call is not None:
            self.call.cancel()


def revoker(server, key, book, stop, seed):
    rnd = random.Random(seed)
    c = Client(server, key)
    try:
        while not stop.wait(rnd.uniform(0.02, 0.1)):
            with book.lock:
                log_id = rnd.choice(book.logs[:LONG_LOGS])
                known = [i for r in book.acked[-2000:] if r.log_id == log_id for i in r.ids]
            if not known:
                continue
            k = min(len(known), rnd.choice([1, 1, 2, 3, 50, 500]))
            ids = sorted(set(rnd.sample(known, k)), key=int)
            try:
                c.call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
                    log_id=log_id, entry_ids=ids, reason="crash test"), timeout=60)
            except grpc.RpcError:
                with book.lock:
                    book.revokes_unacked.append((log_id, ids))
                continue
            with book.lock:
                book.revoked.update((log_id, i) for i in ids)
    finally:
        c.close()


def cycler(server, key, book, stop, seed):
    """Creates a log, writes to it, deletes it; again and again."""
    rnd = random.Random(seed)
    c = Client(server, key)
    try:
        while not stop.is_set():
            try:
                log_id = c.call(c.cmd.CreateLog, pb.CreateLogRequest(), timeout=60).log.id
            except grpc.RpcError:
                stop.wait(0.02)
                continue
            doom = {"entries": [], "delete": None}
            with book.lock:
                book.doomed[log_id] = doom
            try:
                for _ in range(rnd.randint(1, 3)):
                    es = new_entries(rnd, "doomed", rnd.choice([1, 5, 50]))
                    c.call(c.cmd.WriteLogEntries,
                           pb.WriteLogEntriesRequest(log_id=log_id, entries=es), timeout=60)
                    doom["entries"] += es
                doom["delete"] = False  # asked, not yet acknowledged
                c.call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id), timeout=60)
                doom["delete"] = True
            except grpc.RpcError:
                stop.wait(0.02)
    finally:
        c.close()


CHECK_SECONDS = [0.0]


def check(c, book, followers, where, data_dir=None):
    """The invariants, after a restart. Returns {log_id: {insert_id: entry}}."""
    t0 = time.time()
    try:
        return _check(c, book, followers, where, data_dir)
    finally:
        CHECK_SECONDS[0] += time.time() - t0


def _check(c, book, followers, where, data_dir):
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
    by_id = {lid: {e.entry_id: e for e in v.values()} for lid, v in stored.items()}

    for req in book.acked:
        have = stored[req.log_id]
        for e, i in zip(req.entries, req.ids):
            g = have.get(e.insert_id)
            assert g is not None, \
                f"{where}: acknowledged entry {i} of {req.log_id} is lost (written by " \
                f"{e.text_payload.split(' ')[0]}, acknowledged by " \
                f"{'a retry' if req.retried else 'its first attempt'})"
            assert g.entry_id == i, f"{where}: acknowledged id {i} became {g.entry_id}"
            if not g.redacted:
                assert g.text_payload == e.text_payload and g.severity == e.severity, \
                    f"{where}: entry {i} changed"
            elif (req.log_id, i) not in book.revoked:
                assert any(req.log_id == lid and i in ids for lid, ids in book.revokes_unacked), \
                    f"{where}: entry {i} of {req.log_id} redacted though nobody revoked it"
    for req in book.unacked:
        have = stored[req.log_id]
        present = [have[e.insert_id] for e in req.entries if e.insert_id in have]
        assert len(present) in (0, len(req.entries)), \
            f"{where}: an unacknowledged write of {len(req.entries)} entries is half " \
            f"stored ({len(present)}): a request must be all or nothing"
        if present:
            nums = [int(g.entry_id) for g in present]
            assert nums == list(range(nums[0], nums[0] + len(nums))), \
                f"{where}: a request's entries got non-consecutive ids"

    for f in followers:
        for i, iid in enumerate(f.seen, 1):
            g = by_id[f.log_id].get(str(i))
            assert g is not None and g.insert_id == iid, \
                f"{where}: a tail showed entry {i} of {f.log_id} as {iid}, now it is " \
                f"{g.insert_id if g else 'gone'}: visible before durable"

    for lid, i in book.revoked:
        g = by_id[lid][i]
        assert g.redacted and g.text_payload == "", f"{where}: revocation of {i} undone"
    asked = collections.Counter((lid, i) for lid, ids in book.revokes_unacked for i in set(ids))
    for lid, ids in book.revokes_unacked:
        mine = [i for i in set(ids) if (lid, i) not in book.revoked]
        if all(by_id[lid][i].redacted for i in mine):
            continue
        # Not applied (an entry of it is not redacted), so it applied nothing: its redacted
        # entries must be another revocation's (revocations overlap; an unacknowledged one
        # may have been applied while this one was lost before its audit record).
        half = sorted((i for i in mine if by_id[lid][i].redacted and asked[(lid, i)] < 2),
                      key=int)
        assert not half, \
            f"{where}: an unacknowledged revocation of {len(ids)} entries in {lid} is half " \
            f"applied: {len(half)} redacted (first {half[:5]}), " \
            f"{sum(not by_id[lid][i].redacted for i in mine)} not"

    for lid, doom in list(book.doomed.items()):
        try:
            got = list_all(c, lid)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, f"{where}: {e}"
            del book.doomed[lid]
            continue
        assert doom["delete"] is not True, f"{where}: acknowledged deletion of {lid} undone"
        have = {e.insert_id for e in got}
        assert {e.insert_id for e in doom["entries"]} <= have, \
            f"{where}: a half-deleted log lost acknowledged entries"
        ids = sorted(int(e.entry_id) for e in got)
        assert ids == list(range(1, len(got) + 1)), f"{where}: half-deleted log not dense"
        c.call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=lid))  # finish the job
        del book.doomed[lid]

    if data_dir is None:
        return stored
    redacted = {e.insert_id for v in stored.values() for e in v.values() if e.redacted}
    on_disk = set()
    for _, blob in diskscan.walk(data_dir):  # raw bytes and compressed blocks
        on_disk.update(m[8:].decode() for m in MARK.findall(blob))
    left = redacted & on_disk
    assert not left, f"{where}: payloads of {len(left)} redacted entries still on disk"
    return stored


def retry_unacked(c, book, where):
    """Retries every unacknowledged write; each entry must end up stored exactly once."""
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
        req.retried = True
        book.acked.append(req)
    return len(pending)


def catch_up(s, key, book, followers, where):
    """Runs the followers until each has seen its whole log, then checks them."""
    c = Client(s, key)
    try:
        for f in followers:
            n = c.call(c.query.GetLog, pb.GetLogRequest(log_id=f.log_id)).log.entry_count
            stop = threading.Event()
            t = threading.Thread(target=f.run, args=(s, key, book, stop))
            t.start()
            deadline = time.time() + 120
            while len(f.seen) < n and time.time() < deadline and t.is_alive():
                time.sleep(0.05)
            stop.set()
            f.cancel()
            t.join()
            assert len(f.seen) == n, f"{where}: tail of {f.log_id} stopped at {len(f.seen)}/{n}"
    finally:
        c.close()
