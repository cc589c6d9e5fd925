"""Traffic and invariants of the distributed mode, for tests/faults/test_distributed_faults.py
(the sibling of tests/invariants.py, which checks the embedded crash and power-loss suites).

Writers at WAIT_DURABLE, WAIT_SEQUENCED and WAIT_QUERYABLE record in a Book what the
service acknowledged: the ids when the reply carries them; for DURABLE the client-supplied
insert_ids, whose ids are read back once the deployment converged. A failed call
(UNAVAILABLE, a deadline, ...) is retried with the same insert_ids, which the contract allows;
a request no attempt of which was acknowledged stays unacknowledged (all or nothing, retried
at the end). A revoker revokes acknowledged ids; a follower per log tails it across failures.

`converge_and_check` waits until the read model has caught up and checks:
  - every acknowledged entry (DURABLE ones included) is there exactly once, with the
    acknowledged id when the reply had one, its payload unchanged unless revoked;
  - ids are dense 1..N per log, no insert_id twice, GetLog entry_count (Cassandra's count or
    the read model's, whichever is higher) == N == what is listed, on both API servers;
  - every request's ids are consecutive in request order; an unacknowledged one is all or
    nothing; requests one writer had acknowledged one after the other on a log have
    increasing ids (order kept, DURABLE included: the Command was in Kafka before the next
    request was sent);
  - acknowledged revocations hold;
  - a tail from "0" on each API server shows exactly the listing; what the followers saw
    during the faults is a prefix of it (ids 1, 2, 3, ... across reconnections);
  - retrying acknowledged requests (a sample) returns the same ids: the sequencer's dedup
    reads Cassandra, so Cassandra holds what the read model shows.
"""
import random
import threading
import time
import uuid

import grpc

from conftest import pb

W = pb.WriteLogEntriesRequest
WAITS = [W.WAIT_DURABLE, W.WAIT_SEQUENCED, W.WAIT_QUERYABLE]
WAIT_NAME = {W.WAIT_DURABLE: "DURABLE", W.WAIT_SEQUENCED: "SEQUENCED",
             W.WAIT_QUERYABLE: "QUERYABLE"}
BATCH_SIZES = [1, 1, 2, 3, 5, 10, 30]
# What a client may see while a role or an engine is down; it retries the same request.
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED,
             grpc.StatusCode.ABORTED}
CONVERGE_S = 120


class Request:
    def __init__(self, writer, seq, log_id, entries, wait):
        self.writer, self.seq = writer, seq  # the writer thread and its request number
        self.log_id = log_id
        self.entries = entries
        self.wait = wait
        self.ids = None       # the acknowledged ids, when the reply carried them
        self.acked = False
        self.retried = False  # acknowledged only by the final retry
        self.errors = []      # codes of failed attempts


class Book:
    def __init__(self, logs):
        self.lock = threading.Lock()
        self.logs = list(logs)
        self.requests = []        # every Request (acknowledged or not)
        self.revoked = set()      # (log_id, entry_id) acknowledged as revoked
        self.revokes_unacked = []  # (log_id, [entry_ids])
        self.errors = []          # failures the threads saw (not transient ones)
        self.transient = 0        # failed attempts (retried)

    def acked(self):
        with self.lock:
            return [r for r in self.requests if r.acked]

    def unacked(self):
        with self.lock:
            return [r for r in self.requests if not r.acked]


def new_entries(rnd, tag, n):
    out = []
    for _ in range(n):
        iid = uuid.uuid4().hex
        out.append(pb.LogEntry(insert_id=iid, text_payload=f"{tag} payload-{iid}",
                               severity=rnd.choice([0, 300, 600])))
    return out


def call(c, method, req, timeout=20):
    return method(req, metadata=c.md, timeout=timeout)


def attempt_write(c, book, req, stop=None, deadline=None):
    """Sends req until acknowledged, a non-transient error, stop, or the deadline.
    Returns True when acknowledged."""
    while True:
        try:
            r = call(c, c.cmd.WriteLogEntries,
                     W(log_id=req.log_id, entries=req.entries, wait=req.wait))
        except grpc.RpcError as e:
            req.errors.append(e.code())
            if e.code() not in TRANSIENT:
                with book.lock:
                    book.errors.append(f"write to {req.log_id} ({WAIT_NAME[req.wait]}): "
                                       f"{e.code()} {e.details()}")
                return False
            with book.lock:
                book.transient += 1
            if (stop is not None and stop.is_set()) or (deadline and time.time() > deadline):
                return False
            time.sleep(0.2)
            continue
        ids = list(r.entry_ids)
        if ids and len(ids) != len(req.entries):
            with book.lock:
                book.errors.append(f"write acknowledged with {len(ids)} ids for "
                                   f"{len(req.entries)} entries")
        if not ids and req.wait != W.WAIT_DURABLE:
            with book.lock:
                book.errors.append(f"{WAIT_NAME[req.wait]} write acknowledged without ids")
        with book.lock:
            req.ids = ids or None
            req.acked = True
        return True


def writer(make_client, book, stop, seed, tag):
    rnd = random.Random(seed)
    c = make_client()
    n = 0
    try:
        while not stop.is_set():
            n += 1
            req = Request(tag, n, rnd.choice(book.logs),
                          new_entries(rnd, tag, rnd.choice(BATCH_SIZES)), rnd.choice(WAITS))
            with book.lock:
                book.requests.append(req)
            attempt_write(c, book, req, stop=stop)
            stop.wait(rnd.uniform(0, 0.02))
    finally:
        c.close()


def revoker(make_client, book, stop, seed):
    rnd = random.Random(seed)
    c = make_client()
    try:
        while not stop.wait(rnd.uniform(0.1, 0.4)):
            with book.lock:
                known = [(r.log_id, i) for r in book.requests[-300:] if r.ids for i in r.ids]
            if not known:
                continue
            log_id = rnd.choice(known)[0]
            mine = [i for lid, i in known if lid == log_id]
            ids = sorted(set(rnd.sample(mine, min(len(mine), rnd.choice([1, 2, 3])))), key=int)
            try:
                call(c, c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
                    log_id=log_id, entry_ids=ids, reason="fault test"))
            except grpc.RpcError as e:
                with book.lock:
                    book.revokes_unacked.append((log_id, ids))
                    if e.code() not in TRANSIENT:
                        book.errors.append(f"revoke: {e.code()} {e.details()}")
                continue
            with book.lock:
                book.revoked.update((log_id, i) for i in ids)
    finally:
        c.close()


class Follower:
    """Follows one log's tail across failures; seen[i] is the insert_id of entry i+1."""

    def __init__(self, log_id):
        self.log_id = log_id
        self.seen = []
        self.call = None
        self.lock = threading.Lock()

    def run(self, make_client, book, stop):
        while not stop.is_set():
            c = make_client()
            try:
                with self.lock:
                    if stop.is_set():
                        return
                    self.call = c.query.TailLogEntries(pb.TailLogEntriesRequest(
                        log_id=self.log_id, after_entry_id=str(len(self.seen))), metadata=c.md)
                for resp in self.call:
                    for e in resp.entries:
                        want = len(self.seen) + 1
                        if int(e.entry_id) != want:
                            with book.lock:
                                book.errors.append(f"tail of {self.log_id} resumed after "
                                                   f"{want - 1} sent {e.entry_id}")
                            return
                        self.seen.append(e.insert_id)
            except grpc.RpcError:
                stop.wait(0.3)  # a server died or we were cancelled: resume
            finally:
                c.close()

    def cancel(self):
        with self.lock:
            if self.call is not None:
                self.call.cancel()


class Load:
    """Writers (one per wait level and one more), a revoker and a follower per log."""

    def __init__(self, make_client, book, seed, writers=4):
        self.make_client, self.book, self.seed, self.writers = make_client, book, seed, writers
        self.followers = [Follower(lid) for lid in book.logs]
        self.threads = []
        self.stop_ev = None
        self.round = 0

    def start(self):
        self.round += 1
        self.stop_ev = threading.Event()
        rnd = random.Random(f"{self.seed}-{self.round}")
        self.threads = [threading.Thread(target=writer, args=(
            self.make_client, self.book, self.stop_ev, rnd.random(), f"w{self.round}.{i}"))
            for i in range(self.writers)]
        self.threads.append(threading.Thread(target=revoker, args=(
            self.make_client, self.book, self.stop_ev, rnd.random())))
        for f in self.followers:
            self.threads.append(threading.Thread(target=f.run, args=(
                self.make_client, self.book, self.stop_ev)))
        for t in self.threads:
            t.daemon = True
            t.start()

    def stop(self):
        self.stop_ev.set()
        for f in self.followers:
            f.cancel()
        for t in self.threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a load thread did not stop"


def list_all(c, log_id):
    out, token = [], ""
    while True:
        r = call(c, c.query.ListLogEntries, pb.ListLogEntriesRequest(
            log_id=log_id, page_size=1000, page_token=token), timeout=60)
        out.extend(r.entries)
        token = r.next_page_token
        if not token:
            return out


def _retrying(fn, deadline):
    while True:
        try:
            return fn()
        except grpc.RpcError as e:
            if e.code() not in TRANSIENT or time.time() > deadline:
                raise
            time.sleep(0.3)


def wait_converged(c, book, where, timeout=CONVERGE_S):
    """Waits until every log's listing is dense 1..entry_count and holds every acknowledged
    insert_id (DURABLE ones are sequenced asynchronously); returns {log: listing}."""
    deadline = time.time() + timeout
    want = {}
    for r in book.acked():
        want.setdefault(r.log_id, set()).update(e.insert_id for e in r.entries)
    out, why = {}, {}
    for log_id in book.logs:
        while True:
            got = _retrying(lambda: list_all(c, log_id), deadline)
            count = _retrying(lambda: call(c, c.query.GetLog, pb.GetLogRequest(
                log_id=log_id)).log.entry_count, deadline)
            have = {e.insert_id for e in got}
            missing = want.get(log_id, set()) - have
            top = max((int(e.entry_id) for e in got), default=0)
            if not missing and count == len(got) == top:
                out[log_id] = got
                break
            why[log_id] = (f"{len(missing)} acknowledged entries not listed, entry_count "
                           f"{count}, {len(got)} listed, highest id {top}")
            if time.time() > deadline:
                lost = [r for r in book.acked() if r.log_id == log_id and
                        any(e.insert_id in missing for e in r.entries)]
                raise AssertionError(
                    f"{where}: log {log_id} did not converge in {timeout} s: {why[log_id]}; "
                    "the requests: " + "; ".join(
                        f"{len(r.entries)} entries at {WAIT_NAME.get(r.wait)} by {r.writer} "
                        f"#{r.seq}, ids {r.ids[:3] if r.ids else None}, failed attempts "
                        f"{[str(x) for x in r.errors]}" for r in lost[:10]))
            time.sleep(0.5)
    return out


def _index(where, log_id, got):
    ids = sorted(int(e.entry_id) for e in got)
    assert ids == list(range(1, len(got) + 1)), \
        f"{where}: log {log_id} ids not dense 1..{len(got)}: first gap or duplicate near " \
        f"{next((i for i, v in enumerate(ids, 1) if i != v), None)}"
    by_iid = {}
    for e in got:
        assert e.insert_id not in by_iid, f"{where}: insert_id {e.insert_id} stored twice " \
            f"in {log_id} (ids {by_iid[e.insert_id].entry_id} and {e.entry_id})"
        by_iid[e.insert_id] = e
    return by_iid


def check_all_or_nothing(where, stored, book):
    for req in book.unacked():
        have = stored[req.log_id]
        present = [have[e.insert_id] for e in req.entries if e.insert_id in have]
        assert len(present) in (0, len(req.entries)), \
            f"{where}: an unacknowledged write of {len(req.entries)} entries is half " \
            f"stored ({len(present)}): a request must be all or nothing"
        if present:
            nums = [int(g.entry_id) for g in present]
            assert nums == list(range(nums[0], nums[0] + len(nums))), \
                f"{where}: an unacknowledged request's entries got non-consecutive ids {nums}"


def retry_unacked(c, book, where, timeout=CONVERGE_S):
    """Retries every unacknowledged request (same insert_ids) until it is acknowledged."""
    deadline = time.time() + timeout
    for req in book.unacked():
        req.wait = W.WAIT_QUERYABLE
        assert attempt_write(c, book, req, deadline=deadline), \
            f"{where}: the retry of an unacknowledged write failed: {req.errors[-3:]}"
        req.retried = True


def check_converged(cl, book, load, where, sample=150, seed=0):
    """The whole check (module docstring). cl: the cluster (client factories per API server)."""
    c = cl.client()
    try:
        errors, book.errors = book.errors, []  # reported once
        assert not errors, f"{where}: clients saw: {errors[:5]}"
        lists = wait_converged(c, book, where)
        stored = {lid: _index(where, lid, got) for lid, got in lists.items()}
        check_all_or_nothing(where, stored, book)
        retry_unacked(c, book, where)
        lists = wait_converged(c, book, where)
        stored = {lid: _index(where, lid, got) for lid, got in lists.items()}
        by_id = {lid: {e.entry_id: e for e in v.values()} for lid, v in stored.items()}

        # every acknowledged entry once, ids consecutive in request order
        last = {}  # (writer, log) -> the highest id of its previous acknowledged request
        for req in sorted(book.acked(), key=lambda r: (r.writer, r.seq)):
            have = stored[req.log_id]
            got = []
            for e in req.entries:
                g = have.get(e.insert_id)
                assert g is not None, \
                    f"{where}: acknowledged entry {e.insert_id} of {req.log_id} is lost " \
                    f"(acknowledged at {WAIT_NAME.get(req.wait)}" \
                    f"{' by the final retry' if req.retried else ''}, failed attempts " \
                    f"{[str(x) for x in req.errors]})"
                got.append(g)
            nums = [int(g.entry_id) for g in got]
            assert nums == list(range(nums[0], nums[0] + len(nums))), \
                f"{where}: a request's ids are not consecutive in request order: {nums}"
            if req.ids is not None:
                assert [g.entry_id for g in got] == req.ids, \
                    f"{where}: acknowledged ids {req.ids[:5]}... became " \
                    f"{[g.entry_id for g in got][:5]}..."
            if not req.retried:
                k = (req.writer, req.log_id)
                assert nums[0] > last.get(k, 0), \
                    f"{where}: order lost: writer {req.writer}'s request {req.seq} on " \
                    f"{req.log_id} got ids from {nums[0]} after its earlier one ended at {last[k]}"
                last[k] = nums[-1]
            for e, g in zip(req.entries, got):
                if not g.redacted:
                    assert g.text_payload == e.text_payload and g.severity == e.severity, \
                        f"{where}: entry {g.entry_id} of {req.log_id} changed"
                elif (req.log_id, g.entry_id) not in book.revoked:
                    assert any(req.log_id == lid and g.entry_id in ids
                               for lid, ids in book.revokes_unacked), \
                        f"{where}: entry {g.entry_id} of {req.log_id} redacted though nobody " \
                        "revoked it"
        for lid, i in book.revoked:
            g = by_id[lid].get(i)
            assert g is not None and g.redacted and g.text_payload == "", \
                f"{where}: acknowledged revocation of {i} in {lid} does not hold"

        # both API servers: the same listing, entry_count, and a tail from "0" shows it
        for k in range(2):
            ck = cl.client(k)
            try:
                for lid, got in lists.items():
                    want = [(e.entry_id, e.insert_id) for e in got]
                    again = _retrying(lambda: list_all(ck, lid), time.time() + 60)
                    assert [(e.entry_id, e.insert_id) for e in again] == want, \
                        f"{where}: api-{k + 1} lists {lid} differently"
                    n = call(ck, ck.query.GetLog, pb.GetLogRequest(log_id=lid)).log.entry_count
                    assert n == len(got), f"{where}: api-{k + 1}: entry_count {n}, {len(got)} listed"
                    assert tail_from_zero(ck, lid, len(got)) == sorted(
                        want, key=lambda x: int(x[0])), f"{where}: api-{k + 1}: the tail of " \
                        f"{lid} does not show the listing"
            finally:
                ck.close()
        for f in load.followers:
            order = [e.insert_id for e in sorted(lists[f.log_id], key=lambda e: int(e.entry_id))]
            assert f.seen == order[:len(f.seen)], \
                f"{where}: a tail showed {f.log_id} otherwise than it is stored"

        # Cassandra through the sequencer's dedup: retries of acknowledged requests return
        # the stored ids and add nothing
        rnd = random.Random(seed)
        acked = book.acked()
        for req in rnd.sample(acked, min(sample, len(acked))):
            r = _retrying(lambda: call(c, c.cmd.WriteLogEntries, W(
                log_id=req.log_id, entries=req.entries, wait=W.WAIT_SEQUENCED)),
                time.time() + 60)
            want = [stored[req.log_id][e.insert_id].entry_id for e in req.entries]
            assert list(r.entry_ids) == want, \
                f"{where}: a retry of an acknowledged write got {list(r.entry_ids)[:5]}, " \
                f"the read model has {want[:5]}"
        for lid, got in lists.items():
            n = call(c, c.query.GetLog, pb.GetLogRequest(log_id=lid)).log.entry_count
            assert n == len(got), f"{where}: retries of acknowledged writes added entries to {lid}"
        return sum(len(v) for v in lists.values())
    finally:
        c.close()


def tail_from_zero(c, log_id, n, timeout=60):
    out = []
    if n == 0:
        return out
    it = c.query.TailLogEntries(pb.TailLogEntriesRequest(log_id=log_id, after_entry_id="0"),
                                metadata=c.md, timeout=timeout)
    try:
        for resp in it:
            out.extend((e.entry_id, e.insert_id) for e in resp.entries)
            if len(out) >= n:
                break
    finally:
        it.cancel()
    return out
