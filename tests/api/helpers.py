"""Helpers for the behavioural suite. Everything goes through the public gRPC API.

The same tests are meant to run against the embedded mode (one annalsd) and, later, the
distributed mode, where WriteLogEntries may answer before the ids are assigned and reads
lag behind writes. Two helpers hide that difference without weakening the embedded checks:

  write_and_wait(...)  writes and returns the entry ids. Embedded: the ids must be in the
                       reply and the entries visible at once (read-your-writes). Distributed:
                       if the reply has no ids, waits until the entries show up in listings.
  eventually(check)    embedded: runs `check` once (strict); distributed: retries it until it
                       passes or a deadline expires.
"""
import os
import queue
import threading
import time
import uuid

import grpc
import pytest

from annals.v1 import annals_pb2 as pb

DISTRIBUTED = os.environ.get("ANNALS_MODE", "embedded") == "distributed"
SANITIZED = os.environ.get("ANNALS_SANITIZED") == "1"
WAIT = 120 if SANITIZED else 60  # liveness bound only (never a performance assertion)

CMD = "/annals.v1.LoggingCommandService/"
QRY = "/annals.v1.LoggingQueryService/"
SEV = pb.LogEntry.Severity


def uid():
    return uuid.uuid4().hex


# ---------------------------------------------------------------- errors

def expect_code(code, fn, *args, **kw):
    """Calls fn and requires an RpcError with `code`; returns the error."""
    with pytest.raises(grpc.RpcError) as ei:
        r = fn(*args, **kw)
        if hasattr(r, "__iter__") and not isinstance(r, (bytes, str)) and hasattr(r, "cancel"):
            for _ in r:  # a stream: the error arrives while reading
                pass
    err = ei.value
    assert err.code() == code, f"expected {code}, got {err.code()}: {err.details()!r}"
    return err


def expect_invalid(fn, *args, field=None, **kw):
    """INVALID_ARGUMENT whose message names `field` (one name or a tuple of accepted names)."""
    err = expect_code(grpc.StatusCode.INVALID_ARGUMENT, fn, *args, **kw)
    if field is not None:
        names = (field,) if isinstance(field, str) else field
        msg = err.details() or ""
        assert any(n in msg for n in names), \
            f"INVALID_ARGUMENT message {msg!r} does not name the field ({' or '.join(names)})"
    return err


# ---------------------------------------------------------------- raw bytes

def raw_unary(c, path, data, metadata=None, timeout=WAIT):
    """Sends `data` (already serialized) to a unary method; returns the raw reply bytes."""
    m = c.channel.unary_unary(path, request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
    return m(data, metadata=c.md if metadata is None else metadata, timeout=timeout)


def raw_stream(c, path, data, metadata=None, timeout=WAIT):
    m = c.channel.unary_stream(path, request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    return m(data, metadata=c.md if metadata is None else metadata, timeout=timeout)


PLACEHOLDER = "@@BADUTF8@@"          # 11 ASCII bytes, replaced on the wire
INVALID_UTF8 = b"\xff\xfe\xc3(\xed\xa0\x80\xc0\xaf@@"  # 11 bytes: never valid UTF-8


def with_invalid_utf8(msg):
    """Serializes msg, then swaps every PLACEHOLDER for bytes that are not UTF-8.
    Same length, so every length prefix stays right: the message is well formed
    except for its text."""
    data = msg.SerializeToString()
    ph = PLACEHOLDER.encode()
    assert ph in data, "placeholder missing from the request"
    return data.replace(ph, INVALID_UTF8)


# ---------------------------------------------------------------- logs and entries

def create_log(c, labels=None):
    r = c.call(c.cmd.CreateLog, pb.CreateLogRequest(labels=labels or {}))
    return r.log.id


def get_log(c, log_id):
    return c.call(c.query.GetLog, pb.GetLogRequest(log_id=log_id)).log


def entry(text=None, insert_id=None, **kw):
    e = pb.LogEntry(**kw)
    if text is not None:
        e.text_payload = text
    if insert_id is not None:
        e.insert_id = insert_id
    return e


def texts(n, prefix="line"):
    return [entry(f"{prefix} {i}", insert_id=uid()) for i in range(n)]


def list_page(c, log_id, **kw):
    return c.call(c.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=log_id, **kw))


def list_all(c, log_id, page_size=1000, between_pages=None, **kw):
    """Walks every page; returns the entries. between_pages() runs after each page."""
    out, token, pages = [], "", 0
    while True:
        r = list_page(c, log_id, page_size=page_size, page_token=token, **kw)
        out.extend(r.entries)
        pages += 1
        assert pages < 100000, "pagination does not end"
        token = r.next_page_token
        if not token:
            return out
        if between_pages:
            between_pages()


def ids_of(entries):
    return [e.entry_id for e in entries]


def write(c, log_id, entries, **kw):
    """One WriteLogEntries call; returns the reply."""
    return c.call(c.cmd.WriteLogEntries,
                  pb.WriteLogEntriesRequest(log_id=log_id, entries=entries), **kw)


def write_and_wait(c, log_id, entries, auto_insert_id=True):
    """Writes `entries` in one request and returns their entry ids, in request order.

    auto_insert_id: give entries without an insert_id a unique one (so that, in distributed
    mode, their ids can be found by insert_id). Pass False to let the server generate them;
    in distributed mode the helper then only waits for the log to grow."""
    entries = [pb.LogEntry.FromString(e.SerializeToString()) for e in entries]
    if auto_insert_id:
        for e in entries:
            if not e.insert_id:
                e.insert_id = uid()
    before = None
    if DISTRIBUTED and not auto_insert_id:
        before = get_log(c, log_id).entry_count
    r = write(c, log_id, entries)
    if len(r.entry_ids) == len(entries):
        return list(r.entry_ids)
    assert DISTRIBUTED, f"embedded mode must reply with one id per entry, got {list(r.entry_ids)}"
    deadline = time.time() + WAIT
    while time.time() < deadline:
        if auto_insert_id:
            by_iid = {e.insert_id: e.entry_id for e in list_all(c, log_id)}
            if all(e.insert_id in by_iid for e in entries):
                return [by_iid[e.insert_id] for e in entries]
        else:
            if get_log(c, log_id).entry_count >= before + len(entries):
                return []
        time.sleep(0.1)
    raise AssertionError("written entries never became visible")


def eventually(check, timeout=WAIT):
    """Embedded: check() once, strictly. Distributed: retry until it passes."""
    if not DISTRIBUTED:
        return check()
    deadline = time.time() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def snapshot(c, log_id):
    """What a rejected request must leave unchanged."""
    return (get_log(c, log_id).entry_count,
            [e.SerializeToString(deterministic=True) for e in list_all(c, log_id)])


def assert_dense(entries, n=None):
    got = sorted(int(e.entry_id) for e in entries)
    n = len(entries) if n is None else n
    assert got == list(range(1, n + 1)), f"ids are not dense 1..{n}: {summarize(got)}"


def summarize(ids):
    ids = list(ids)
    if len(ids) <= 20:
        return str(ids)
    return f"{ids[:10]} ... {ids[-10:]} (n={len(ids)})"


# ---------------------------------------------------------------- tail

class TailReader:
    """Reads a TailLogEntries stream on a thread; entries arrive in a queue."""

    def __init__(self, c, log_id, after_entry_id):
        self.call = c.query.TailLogEntries(
            pb.TailLogEntriesRequest(log_id=log_id, after_entry_id=after_entry_id),
            metadata=c.md, timeout=WAIT * 5)
        self.q = queue.Queue()
        self.error = None
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            for resp in self.call:
                for e in resp.entries:
                    self.q.put(e)
        except grpc.RpcError as e:
            self.error = e
        finally:
            self.done.set()

    def take(self, n):
        """The next n entries; fails if the stream ends or stalls for WAIT seconds."""
        out = []
        while len(out) < n:
            try:
                out.append(self.q.get(timeout=WAIT))
            except queue.Empty:
                raise AssertionError(
                    f"tail delivered {len(out)} of {n} entries and then nothing "
                    f"(stream error: {self._err()})")
        return out

    def take_until(self, last_id):
        out = []
        while not out or int(out[-1].entry_id) < int(last_id):
            out.extend(self.take(1))
        return out

    def _err(self):
        if self.error is None:
            return "none" if not self.done.is_set() else "ended without error"
        return f"{self.error.code()} {self.error.details()!r}"

    def finish(self):
        """Waits for the stream to end; returns the RpcError that ended it (or None)."""
        assert self.done.wait(WAIT), "tail stream did not end"
        return self.error

    def pending(self):
        out = []
        while True:
            try:
                out.append(self.q.get_nowait())
            except queue.Empty:
                return out

    def cancel(self):
        self.call.cancel()
        self.done.wait(WAIT)


# ---------------------------------------------------------------- every RPC on one log

def tail_first(c, log_id, after="0", metadata=None, timeout=WAIT):
    """Opens a tail that is expected to fail; fails the test if it streams entries."""
    call = c.query.TailLogEntries(
        pb.TailLogEntriesRequest(log_id=log_id, after_entry_id=after),
        metadata=c.md if metadata is None else metadata, timeout=timeout)
    for resp in call:
        call.cancel()
        raise AssertionError(f"tail streamed {len(resp.entries)} entries instead of failing")
    raise AssertionError("tail ended with OK instead of an error status")


def log_rpcs(c, log_id, metadata=None):
    """One call per RPC that names a log: name -> zero-argument callable."""
    md = c.md if metadata is None else metadata

    def call(method, req):
        return lambda: method(req, metadata=md, timeout=WAIT)

    return {
        "GetLog": call(c.query.GetLog, pb.GetLogRequest(log_id=log_id)),
        "ListLogEntries": call(c.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=log_id)),
        "WriteLogEntries": call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(
            log_id=log_id, entries=[pb.LogEntry(text_payload="probe " + uid(), insert_id=uid())])),
        "RevokeLogEntries": call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
            log_id=log_id, entry_ids=["1"], reason="probe")),
        "TailLogEntries": lambda: tail_first(c, log_id, "0", metadata=md),
        "DeleteLog": call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id)),
    }


LOG_RPCS = ["GetLog", "ListLogEntries", "WriteLogEntries", "RevokeLogEntries",
            "TailLogEntries", "DeleteLog"]
