"""The JSON API and the SSE tail on the HTTP port (docs/http-api.md), driven by Python's own
http.client (a client nobody here wrote). The service behind it is the gRPC port's, so the
checks here are about the mapping: routes, canonical proto3 JSON (checked against
google.protobuf.json_format, the reference implementation), errors, auth, isolation, and
SSE resumption with Last-Event-ID under concurrent writes."""
import http.client
import json
import re
import tempfile
import threading
import time
import urllib.parse
import uuid
from datetime import datetime

import pytest
from google.protobuf import json_format

from annals.v1 import annals_pb2 as pb
from conftest import DISTRIBUTED, Client, Server, _keep_log
from helpers import WAIT, eventually

pytestmark = pytest.mark.timeout(600)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")


@pytest.fixture(scope="module")
def hs():
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = Server(d, http=True).start()
        try:
            yield s
            assert s.proc.poll() is None, "annalsd died during the tests"
            assert s.stop() == 0, "annalsd did not exit cleanly on SIGTERM: " + \
                open(s.log_path, errors="replace").read()[-3000:]
        finally:
            _keep_log(s)


@pytest.fixture(scope="module")
def keys(hs):
    a = hs.tenant("http-a")
    b = hs.tenant("http-b")
    reader, _ = hs.key("http-a", "reader", name="r")
    writer, _ = hs.key("http-a", "writer", name="w")
    return {"a": a, "b": b, "reader": reader, "writer": writer}


def call(s, method, path, key=None, body=None, headers=None, raw=None):
    """(status, headers, parsed JSON or None, raw bytes) of one request."""
    conn = http.client.HTTPConnection(s.http_addr, timeout=WAIT)
    try:
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        b = r.read()
        try:
            j = json.loads(b) if b else None
        except ValueError:
            j = None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, j, b
    finally:
        conn.close()


def ok(s, method, path, key, body=None):
    st, _, j, raw = call(s, method, path, key, body)
    assert st == 200, f"{method} {path}: {st} {raw[:500]!r}"
    return j


def q(**params):
    return "?" + urllib.parse.urlencode(params, doseq=True) if params else ""


def new_log(s, key, labels=None):
    return ok(s, "POST", "/v1/logs", key, {"labels": labels or {"t": "http"}})["log"]["id"]


def write(s, key, log, entries, **extra):
    return ok(s, "POST", f"/v1/logs/{log}/entries:write", key, {"entries": entries, **extra})


def assert_canonical(msg_type, j):
    """The JSON parses strictly as msg_type and is exactly what protobuf's reference
    implementation prints for the same message."""
    m = json_format.Parse(json.dumps(j), msg_type())
    want = json_format.MessageToDict(m)
    assert j == want, f"not canonical proto3 JSON:\n ours {j}\n want {want}"
    return m


def assert_error(st, j, status, code, *words):
    assert st == status, (st, j)
    assert set(j) == {"code", "status", "message"}, j
    assert j["code"] == code, j
    for w in words:
        assert w in j["message"], (w, j)


# ---------------------------------------------------------------- every endpoint

def test_create_get_list_logs(hs, keys):
    k = keys["a"]
    j = ok(hs, "POST", "/v1/logs", k, {"labels": {"job": "build", "run": "1"}})
    m = assert_canonical(pb.CreateLogResponse, j)
    log = m.log.id
    uuid.UUID(log)
    assert RFC3339.match(j["log"]["createTime"]), j
    g = ok(hs, "GET", f"/v1/logs/{log}", k)
    assert_canonical(pb.GetLogResponse, g)
    assert g["log"]["labels"] == {"job": "build", "run": "1"}
    assert "entryCount" not in g["log"]  # proto3 JSON leaves out defaults (0)
    write(hs, k, log, [{"textPayload": "one"}, {"textPayload": "two"}])
    g = ok(hs, "GET", f"/v1/logs/{log}", k)
    assert g["log"]["entryCount"] == "2"  # int64 as a string
    lst = ok(hs, "GET", "/v1/logs" + q(**{"labelFilter[job]": "build", "labelFilter[run]": "1"}), k)
    assert_canonical(pb.ListLogsResponse, lst)
    assert [x["id"] for x in lst["logs"]] == [log]
    # proto names are accepted too, and page through with the token
    for i in range(3):
        new_log(hs, k, {"job": "paged"})
    seen, token = [], None
    while True:
        p = {"label_filter[job]": "paged", "page_size": "2"}
        if token:
            p["pageToken"] = token
        page = ok(hs, "GET", "/v1/logs" + q(**p), k)
        seen += [x["id"] for x in page.get("logs", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    assert len(seen) == 3 and len(set(seen)) == 3


def test_write_and_list_entries_canonical(hs, keys):
    k = keys["a"]
    log = new_log(hs, k)
    w = write(hs, k, log, [
        {"textPayload": "hello\u0000world \u00e9\u4e16 \"q\" \\ \n", "severity": "WARNING",
         "labels": {"a": "b"}, "insertId": "iid-1", "time": "2026-01-02T03:04:05.123456789Z"},
        {"jsonPayload": {"n": 1.5, "s": "x", "b": True, "z": None, "l": [1, "two", {"k": []}],
                         "o": {}},
         "time": "2026-01-02T04:04:05+01:00", "severity": 300},
    ])
    assert_canonical(pb.WriteLogEntriesResponse, w)
    assert w["entryIds"] == ["1", "2"]
    j = ok(hs, "GET", f"/v1/logs/{log}/entries" + q(pageSize=10), k)
    m = assert_canonical(pb.ListLogEntriesResponse, j)
    by_id = {e["entryId"]: e for e in j["entries"]}
    e1, e2 = by_id["1"], by_id["2"]
    assert e1["textPayload"] == "hello\u0000world \u00e9\u4e16 \"q\" \\ \n"
    assert e1["severity"] == "WARNING" and e1["insertId"] == "iid-1"
    assert e1["time"] == "2026-01-02T03:04:05.123456789Z"
    assert e2["time"] == "2026-01-02T03:04:05Z"  # the offset folded into UTC
    assert e2["severity"] == "INFO"
    assert e2["jsonPayload"] == {"n": 1.5, "s": "x", "b": True, "z": None,
                                 "l": [1, "two", {"k": []}], "o": {}}
    for e in j["entries"]:
        assert RFC3339.match(e["time"]) and RFC3339.match(e["insertTime"]), e
        datetime.fromisoformat(e["insertTime"][:26].rstrip("Z"))
        assert isinstance(e["entryId"], str)
    # the same entries over gRPC: the same JSON (one service layer, one mapping)
    c = Client(hs, k)
    try:
        g = c.call(c.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=log, page_size=10))
    finally:
        c.close()
    assert json_format.MessageToDict(g) == j
    assert m == g


def test_list_entries_query_fields(hs, keys):
    k = keys["a"]
    log = new_log(hs, k)
    write(hs, k, log, [
        {"textPayload": "alpha", "severity": "DEBUG", "time": "2026-03-01T00:00:00Z"},
        {"textPayload": "beta", "severity": "ERROR", "time": "2026-03-01T00:00:01Z"},
        {"textPayload": "gamma beta", "severity": "INFO", "time": "2026-03-01T00:00:02Z"},
    ])
    base = f"/v1/logs/{log}/entries"
    def texts(**p):
        return [e["textPayload"] for e in ok(hs, "GET", base + q(**p), k).get("entries", [])]
    assert texts() == ["alpha", "beta", "gamma beta"]
    assert texts(textContains="beta") == ["beta", "gamma beta"]
    assert texts(minSeverity="INFO") == ["beta", "gamma beta"]
    assert texts(min_severity="600") == ["beta"]
    assert texts(startTime="2026-03-01T00:00:01Z", endTime="2026-03-01T00:00:02Z") == ["beta"]
    p1 = ok(hs, "GET", base + q(pageSize=2), k)
    assert len(p1["entries"]) == 2 and p1["nextPageToken"]
    p2 = ok(hs, "GET", base + q(pageSize=2, pageToken=p1["nextPageToken"]), k)
    assert [e["textPayload"] for e in p2["entries"]] == ["gamma beta"]
    assert "nextPageToken" not in p2


def test_read_and_search(hs, keys):
    k = keys["a"]
    log = new_log(hs, k)
    needle = "needle-" + uuid.uuid4().hex
    write(hs, k, log, [{"textPayload": f"line {i}" + (f" {needle}" if i == 3 else "")}
                       for i in range(1, 6)])
    r = ok(hs, "GET", f"/v1/logs/{log}/entries:read" + q(firstEntryId="2", pageSize=2), k)
    assert_canonical(pb.ReadLogEntriesResponse, r)
    assert [e["entryId"] for e in r["entries"]] == ["2", "3"] and r["nextEntryId"] == "4"
    s = ok(hs, "GET", "/v1/search" + q(query=needle), k)
    assert_canonical(pb.SearchLogEntriesResponse, s)
    assert [(e["logId"], e["entryId"]) for e in s["entries"]] == [(log, "3")]
    s = ok(hs, "GET", "/v1/search" + q(query=needle.upper(), ignoreCase="true", logIds=[log]), k)
    assert len(s["entries"]) == 1
    # another tenant finds nothing
    s = ok(hs, "GET", "/v1/search" + q(query=needle), keys["b"])
    assert "entries" not in s


def test_revoke_and_delete(hs, keys):
    k = keys["a"]
    log = new_log(hs, k)
    write(hs, k, log, [{"textPayload": "secret"}, {"textPayload": "fine"}])
    ok(hs, "POST", f"/v1/logs/{log}/entries:revoke", k, {"entryIds": ["1"], "reason": "leak"})
    e = ok(hs, "GET", f"/v1/logs/{log}/entries:read", k)["entries"][0]
    assert e["redacted"] is True and "textPayload" not in e
    assert e["revocation"]["reason"] == "leak" and RFC3339.match(e["revocation"]["time"])
    assert ok(hs, "DELETE", f"/v1/logs/{log}", k) == {}
    st, _, j, _ = call(hs, "GET", f"/v1/logs/{log}", k)
    assert_error(st, j, 404, 5)


# ---------------------------------------------------------------- auth and isolation

def test_auth_missing_bad_key(hs, keys):
    for key in (None, "annals_" + "x" * 43, ""):
        st, h, j, _ = call(hs, "GET", "/v1/logs", key)
        assert_error(st, j, 401, 16)
        assert h.get("www-authenticate") == "Bearer"
    st, _, j, _ = call(hs, "GET", "/v1/logs", headers={"Authorization": "Basic abc"})
    assert_error(st, j, 401, 16)


def test_roles(hs, keys):
    log = new_log(hs, keys["a"])
    # a reader cannot write or create; a writer cannot list entries
    st, _, j, _ = call(hs, "POST", f"/v1/logs/{log}/entries:write", keys["reader"],
                       {"entries": [{"textPayload": "x"}]})
    assert_error(st, j, 403, 7, "WriteLogEntries", "writer")
    st, _, j, _ = call(hs, "POST", "/v1/logs", keys["reader"], {})
    assert_error(st, j, 403, 7, "CreateLog")
    st, _, j, _ = call(hs, "GET", f"/v1/logs/{log}/entries", keys["writer"])
    assert_error(st, j, 403, 7, "ListLogEntries", "reader")
    st, _, j, _ = call(hs, "GET", f"/v1/logs/{log}/entries:tail", keys["writer"])
    assert_error(st, j, 403, 7, "TailLogEntries")
    st, _, j, _ = call(hs, "DELETE", f"/v1/logs/{log}", keys["writer"])
    assert_error(st, j, 403, 7, "DeleteLog", "admin")
    # and what they may do, they do
    write(hs, keys["writer"], log, [{"textPayload": "w"}])
    assert ok(hs, "GET", f"/v1/logs/{log}/entries", keys["reader"])["entries"][0]["textPayload"] \
        == "w"


def test_refused_before_the_body_is_read(hs, keys):
    """A bad key with a large body: answered 401 at once, the body unread."""
    log = new_log(hs, keys["a"])
    conn = http.client.HTTPConnection(hs.http_addr, timeout=WAIT)
    try:
        conn.putrequest("POST", f"/v1/logs/{log}/entries:write")
        conn.putheader("Authorization", "Bearer nope")
        conn.putheader("Content-Length", str(8 * 1024 * 1024))
        conn.endheaders()
        r = conn.getresponse()  # no byte of the body was sent
        assert r.status == 401
        assert json.loads(r.read())["code"] == 16
    finally:
        conn.close()


def test_isolation_foreign_log_is_missing(hs, keys):
    log = new_log(hs, keys["a"])
    write(hs, keys["a"], log, [{"textPayload": "mine"}])
    missing = str(uuid.uuid4())
    for suffix, method, body in (("", "GET", None), ("/entries", "GET", None),
                                 ("/entries:read", "GET", None),
                                 ("/entries:write", "POST", {"entries": [{"textPayload": "x"}]}),
                                 ("/entries:tail", "GET", None), ("", "DELETE", None)):
        a = call(hs, method, f"/v1/logs/{log}{suffix}", keys["b"], body)
        b = call(hs, method, f"/v1/logs/{missing}{suffix}", keys["b"], body)
        assert a[0] == b[0] == 404, (suffix, a, b)
        assert a[2]["code"] == 5
        assert a[3] == b[3].replace(missing.encode(), log.encode()), (a[3], b[3])
    st, _, j, _ = call(hs, "GET", "/v1/search" + q(query="mine", logIds=[log]), keys["b"])
    assert_error(st, j, 404, 5)
    # still there for its owner
    assert ok(hs, "GET", f"/v1/logs/{log}/entries", keys["a"])["entries"][0]["textPayload"] == "mine"


# ---------------------------------------------------------------- bad input

def test_bad_input_names_the_field(hs, keys):
    k = keys["a"]
    log = new_log(hs, k)
    cases = [
        ("POST", f"/v1/logs/{log}/entries:write", {"entries": [{"textPayload": "a", "bogus": 1}]},
         "entries[0].bogus"),
        ("POST", f"/v1/logs/{log}/entries:write", {"entries": [{"textPayload": "a"}], "x": 1},
         "x: unknown field"),
        ("POST", f"/v1/logs/{log}/entries:write",
         {"entries": [{"textPayload": "a", "jsonPayload": {}}]}, "entries[0].jsonPayload"),
        ("POST", f"/v1/logs/{log}/entries:write", {"entries": [{"time": "yesterday"}]},
         "entries[0].time"),
        ("POST", f"/v1/logs/{log}/entries:write", {"entries": [{"severity": "LOUD"}]},
         "entries[0].severity"),
        ("POST", f"/v1/logs/{log}/entries:write", {"entries": [{"severity": 7}]},
         "entries[0].severity"),
        ("POST", f"/v1/logs/{log}/entries:write", {"entries": {"textPayload": "a"}}, "entries"),
        ("POST", f"/v1/logs/{log}/entries:write", {"entries": []}, "entries"),
        ("POST", f"/v1/logs/{log}/entries:write", {"entries": [{"labels": {"k": 1}}]},
         "entries[0].labels[k]"),
        ("POST", f"/v1/logs/{log}/entries:write",
         {"logId": str(uuid.uuid4()), "entries": [{"textPayload": "a"}]}, "logId"),
        ("POST", "/v1/logs", {"labels": "x"}, "labels"),
        ("GET", f"/v1/logs/{log}/entries?pageSize=abc", None, "pageSize"),
        ("GET", f"/v1/logs/{log}/entries?page_size=5000", None, "page_size"),
        ("GET", f"/v1/logs/{log}/entries?startTime=2026-13-01T00:00:00Z", None, "startTime"),
        ("GET", f"/v1/logs/{log}/entries?nope=1", None, "nope"),
        ("GET", f"/v1/logs/{log}/entries:read?firstEntryId=-1", None, "first_entry_id"),
        ("GET", f"/v1/logs/{log}/entries:tail?after_entry_id=x", None, "after_entry_id"),
        ("GET", "/v1/search", None, "query"),
        ("GET", "/v1/logs/not-a-uuid", None, "log_id"),
    ]
    for method, path, body, word in cases:
        st, _, j, raw = call(hs, method, path, k, body)
        assert st == 400, (path, body, st, raw)
        assert j["code"] == 3 and j["status"] == "INVALID_ARGUMENT", j
        assert word in j["message"], (word, j)
    for raw in (b"{", b"[1]", b"{\"entries\": [{\"textPayload\": \"a\"}], \"entries\": []}"):
        st, _, j, _ = call(hs, "POST", f"/v1/logs/{log}/entries:write", k, raw=raw)
        assert_error(st, j, 400, 3, "body")
    # nothing of a refused request was stored
    assert "entryCount" not in ok(hs, "GET", f"/v1/logs/{log}", k)["log"]


def test_http_level_errors(hs, keys):
    k = keys["a"]
    st, _, j, _ = call(hs, "GET", "/v1/nothing", k)
    assert_error(st, j, 404, 5)
    st, h, j, _ = call(hs, "PUT", "/v1/logs", k, {})
    assert_error(st, j, 405, 12)
    assert set(h["allow"].split(", ")) == {"GET", "POST"}
    conn = http.client.HTTPConnection(hs.http_addr, timeout=WAIT)
    try:  # refused on its Content-Length, before a byte of it is sent
        conn.putrequest("POST", "/v1/logs")
        conn.putheader("Authorization", f"Bearer {k}")
        conn.putheader("Content-Length", str(17 * 1024 * 1024))
        conn.endheaders()
        r = conn.getresponse()
        assert_error(r.status, json.loads(r.read()), 413, 8)
    finally:
        conn.close()
    st, _, j, _ = call(hs, "POST", "/v1/logs?labels=x", k, {})
    assert_error(st, j, 400, 3, "query")
    st, h, _, _ = call(hs, "GET", "/v1/logs", k)
    assert h["content-type"] == "application/json"
    assert h["x-content-type-options"] == "nosniff" and h["cache-control"] == "no-store"


def test_write_limits_as_grpc(hs, keys):
    """Validation is the service's: the gRPC limits answer the same over JSON."""
    k = keys["a"]
    log = new_log(hs, k)
    st, _, j, _ = call(hs, "POST", f"/v1/logs/{log}/entries:write", k,
                       {"entries": [{"textPayload": "x" * (300 * 1024)}]})
    assert_error(st, j, 400, 3, "entries[0]")
    # idempotent by insertId, as over gRPC
    a = write(hs, k, log, [{"textPayload": "once", "insertId": "same"}])
    b = write(hs, k, log, [{"textPayload": "once", "insertId": "same"}])
    assert a == b == {"entryIds": ["1"]}


# ---------------------------------------------------------------- SSE

class Sse:
    """A Server-Sent Events reader on http.client: (id, event, data) per event."""

    def __init__(self, s, path, key, last_event_id=None):
        self.conn = http.client.HTTPConnection(s.http_addr, timeout=WAIT)
        h = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            h["Last-Event-ID"] = last_event_id
        self.conn.request("GET", path, headers=h)
        self.r = self.conn.getresponse()
        self.status = self.r.status
        self.headers = {k.lower(): v for k, v in self.r.getheaders()}

    def next(self):
        """The next event, or None at the end of the stream. Comments are skipped."""
        ev = {"id": None, "event": "message", "data": []}
        got = False
        while True:
            line = self.r.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if got:
                    return ev["id"], ev["event"], "\n".join(ev["data"])
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field in ("id", "event"):
                ev[field] = value
                got = True
            elif field == "data":
                ev["data"].append(value)
                got = True

    def close(self):
        self.conn.close()


def test_sse_tail_basics(hs, keys):
    k = keys["a"]
    log = new_log(hs, k)
    write(hs, k, log, [{"textPayload": "a"}, {"textPayload": "b"}])
    t = Sse(hs, f"/v1/logs/{log}/entries:tail?after_entry_id=0", k)
    try:
        assert t.status == 200
        assert t.headers["content-type"].startswith("text/event-stream")
        got = [t.next(), t.next()]
        assert [g[0] for g in got] == ["1", "2"]
        e = json.loads(got[0][2])
        assert_canonical(pb.LogEntry, e)
        assert e["entryId"] == "1" and e["textPayload"] == "a" and e["logId"] == log
        write(hs, k, log, [{"textPayload": "live"}])
        i, ev, data = t.next()
        assert (i, ev, json.loads(data)["textPayload"]) == ("3", "message", "live")
    finally:
        t.close()
    # without a position: from the current end
    t = Sse(hs, f"/v1/logs/{log}/entries:tail", k)
    try:
        write(hs, k, log, [{"textPayload": "after"}])
        assert t.next()[0] == "4"
    finally:
        t.close()


def test_sse_resume_with_last_event_id_under_writes(hs, keys):
    """Writers keep writing while a reader drops its connection every few events and
    reconnects as a browser does, with Last-Event-ID: every entry exactly once, in order."""
    k = keys["a"]
    log = new_log(hs, k)
    batches, per = 40, 5
    total = batches * per
    stop = threading.Event()
    errors = []

    def writer(n0):
        try:
            for b in range(n0, batches, 2):
                write(hs, k, log, [{"textPayload": f"b{b}-{i}"} for i in range(per)])
                time.sleep(0.005)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for th in threads:
        th.start()
    seen, last, reconnects = [], "0", 0
    deadline = time.time() + WAIT
    try:
        while len(seen) < total and time.time() < deadline:
            # the URL keeps the first position; the header carries where we are, as
            # EventSource does on its automatic reconnect
            t = Sse(hs, f"/v1/logs/{log}/entries:tail?after_entry_id=0", k,
                    last_event_id=last if reconnects else None)
            reconnects += 1
            try:
                assert t.status == 200
                for _ in range(7):
                    ev = t.next()
                    assert ev is not None and ev[1] == "message", ev
                    seen.append(int(ev[0]))
                    assert json.loads(ev[2])["entryId"] == ev[0]
                    last = ev[0]
                    if len(seen) == total:
                        break
            finally:
                t.close()
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors
    assert seen == list(range(1, total + 1)), f"gaps or duplicates: {seen[:50]}..."
    assert reconnects >= total // 7


def test_sse_ends_on_delete_and_on_key_revocation(hs, keys):
    k = keys["a"]
    log = new_log(hs, k)
    t = Sse(hs, f"/v1/logs/{log}/entries:tail?after_entry_id=0", k)
    try:
        ok(hs, "DELETE", f"/v1/logs/{log}", k)
        i, ev, data = t.next()
        assert ev == "end" and json.loads(data)["code"] == 5, (ev, data)
        assert t.next() is None
    finally:
        t.close()
    key, key_id = hs.key("http-a", "reader", name="short-lived")
    log = new_log(hs, k)
    t = Sse(hs, f"/v1/logs/{log}/entries:tail", key)
    try:
        assert t.status == 200
        hs.revoke_key(key_id)
        t0 = time.time()
        i, ev, data = t.next()
        assert ev == "end" and json.loads(data)["code"] == 16, (ev, data)
        assert time.time() - t0 < (10 if DISTRIBUTED else 5)
    finally:
        t.close()


def test_sse_ends_on_shutdown(keys):
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = Server(d, http=True).start()
        try:
            k = s.tenant("sse-stop")
            log = new_log(s, k)
            t = Sse(s, f"/v1/logs/{log}/entries:tail?after_entry_id=0", k)
            write(s, k, log, [{"textPayload": "x"}])
            assert t.next()[0] == "1"
            rcs = []
            stopper = threading.Thread(target=lambda: rcs.append(s.stop()))
            stopper.start()
            i, ev, data = t.next()
            assert ev == "end" and json.loads(data)["code"] == 14, (ev, data)
            assert t.next() is None
            t.close()
            stopper.join()
            assert rcs == [0], "annalsd did not exit cleanly: " + \
                open(s.log_path, errors="replace").read()[-3000:]
        finally:
            if s.proc:
                s.kill()
            _keep_log(s)


def test_sse_refuses_like_the_api(hs, keys):
    st, _, j, _ = call(hs, "GET", f"/v1/logs/{uuid.uuid4()}/entries:tail", keys["a"])
    assert_error(st, j, 404, 5)
    st, _, j, _ = call(hs, "GET", f"/v1/logs/{uuid.uuid4()}/entries:tail", None)
    assert_error(st, j, 401, 16)
    log = new_log(hs, keys["a"])
    st, _, j, _ = call(hs, "GET", f"/v1/logs/{log}/entries:tail", keys["a"],
                       headers={"Last-Event-ID": "abc"})
    assert_error(st, j, 400, 3, "after_entry_id")


def test_sse_streams_are_bounded(hs, keys):
    """At most 64 SSE tails at once (429 beyond); a client that went away gives its place
    back (noticed at the latest by the next heartbeat)."""
    k = keys["a"]
    log = new_log(hs, k)
    open_ = []
    try:
        for _ in range(64):
            t = Sse(hs, f"/v1/logs/{log}/entries:tail", k)
            if t.status != 200:  # another test's stream may still hold a place
                t.close()
                break
            open_.append(t)
        st, _, j, _ = call(hs, "GET", f"/v1/logs/{log}/entries:tail", k)
        assert_error(st, j, 429, 8, "64")
    finally:
        for t in open_:
            t.close()
    deadline = time.time() + 40
    while True:
        t = Sse(hs, f"/v1/logs/{log}/entries:tail", k)
        try:
            if t.status == 200:
                break
            assert time.time() < deadline, "closed streams never gave their places back"
        finally:
            t.close()
        time.sleep(0.5)


def test_chunked_body(hs, keys):
    k = keys["a"]
    log = new_log(hs, k)
    conn = http.client.HTTPConnection(hs.http_addr, timeout=WAIT)
    try:
        body = json.dumps({"entries": [{"textPayload": "chunked"}]}).encode()
        conn.request("POST", f"/v1/logs/{log}/entries:write", body=iter([body[:10], body[10:]]),
                     headers={"Authorization": f"Bearer {k}"}, encode_chunked=True)
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"entryIds": ["1"]}
    finally:
        conn.close()


def test_integrity_endpoints(hs, keys):
    """The integrity RPCs (docs/integrity.md) over the JSON API: bytes are base64 in JSON."""
    import base64
    key = keys["a"]
    log = new_log(hs, key)
    ok(hs, "POST", f"/v1/logs/{log}/entries:write", key,
       {"entries": [{"textPayload": f"l{i}"} for i in range(3)]})
    ck = base64.b64decode(ok(hs, "GET", f"/v1/logs/{log}/checkpoint", key)["checkpoint"])
    assert ck.startswith(f"annals/{log}\n3\n".encode())
    p = ok(hs, "GET", f"/v1/logs/{log}/proofs:inclusion" + q(entryId="2", treeSize=3), key)
    assert len(p["hashes"]) == 2
    p = ok(hs, "GET", f"/v1/logs/{log}/proofs:consistency" + q(firstSize=1, secondSize=3), key)
    assert len(p["hashes"]) == 2
    st, _, j, _ = call(hs, "GET", f"/v1/logs/{log}/proofs:inclusion" + q(entryId="2",
                                                                          treeSize=9), key)
    assert st == 400 and "tree_size" in j["message"]
    sealed = ok(hs, "POST", f"/v1/logs/{log}/seal", key, {})
    assert base64.b64decode(sealed["checkpoint"]) == ck
    st, _, j, _ = call(hs, "POST", f"/v1/logs/{log}/entries:write", key,
                       {"entries": [{"textPayload": "late"}]})
    assert st == 400 and j["status"] == "FAILED_PRECONDITION" and "sealed" in j["message"]
    assert ok(hs, "GET", f"/v1/logs/{log}", key)["log"]["sealed"] is True


def test_calls_are_counted_per_rpc_and_code(hs, keys):
    """annals_http_api_requests_total and _request_seconds move exactly as the calls do,
    read with the Prometheus client library's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    def scrape():
        st, _, _, raw = call(hs, "GET", "/metrics")
        assert st == 200
        out = {}
        for fam in text_string_to_metric_families(raw.decode()):
            for smp in fam.samples:
                if smp.name == "annals_http_api_requests_total":
                    out[(smp.labels["rpc"], smp.labels["code"])] = smp.value
                elif smp.name == "annals_http_api_request_seconds_count":
                    out[(smp.labels["rpc"], "count")] = smp.value
        return out

    log = new_log(hs, keys["a"])
    before = scrape()
    for _ in range(3):
        ok(hs, "GET", f"/v1/logs/{log}", keys["a"])
    missing = str(uuid.uuid4())
    assert call(hs, "GET", f"/v1/logs/{missing}", keys["a"])[0] == 404
    assert call(hs, "GET", f"/v1/logs/{log}", "annals_nope")[0] == 401
    assert call(hs, "DELETE", f"/v1/logs/{log}", keys["reader"])[0] == 403
    after = scrape()

    def moved(k):
        return after.get(k, 0) - before.get(k, 0)

    assert moved(("GetLog", "OK")) == 3
    assert moved(("GetLog", "NOT_FOUND")) == 1
    assert moved(("GetLog", "UNAUTHENTICATED")) == 1
    assert moved(("DeleteLog", "PERMISSION_DENIED")) == 1
    assert moved(("GetLog", "count")) == 5
