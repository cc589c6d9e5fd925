"""The `annals` command against a real annalsd (docs/cli.md is the contract).

Each test drives the real binary ($ANNALS_BIN/annals) and checks what it prints and
what the server stored (read back through grpcio, a client nobody here wrote).
Timeouts below are liveness bounds only, never performance assertions.
"""
import datetime
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from conftest import BIN, SANITIZED, Client, Server
from annals.v1 import annals_pb2 as pb

ANNALS = os.path.join(BIN, "annals")
WAIT = 120 if SANITIZED else 40
LINE = re.compile(rb"^(\d+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) ([A-Z]+|\d+) (.*)$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Exit codes (docs/cli.md)
EXIT_USAGE, EXIT_NOT_FOUND, EXIT_AUTH, EXIT_INVALID, EXIT_UNAVAILABLE = 2, 3, 4, 5, 6


def run(server, key, *args, input=b"", addr=None, timeout=WAIT, env_extra=None):
    env = dict(os.environ)
    env["ANNALS_ADDR"] = addr or server.addr
    if key is None:
        env.pop("ANNALS_TOKEN", None)
    else:
        env["ANNALS_TOKEN"] = key
    env.update(env_extra or {})
    return subprocess.run([ANNALS, *args], input=input, capture_output=True, env=env,
                          timeout=timeout)


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.decode(errors='replace')}"
    return p


def create_log(server, key, *labels):
    args = ["log", "create"]
    for lab in labels:
        args += ["--label", lab]
    p = ok(run(server, key, *args))
    log_id = p.stdout.decode().strip().splitlines()[-1]
    assert UUID_RE.match(log_id), p.stdout
    return log_id


def fmt_ts(ts):
    day = datetime.datetime.fromtimestamp(ts.seconds, datetime.timezone.utc)
    return day.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % ts.nanos


def parse_lines(out):
    rows = []
    for raw in out.split(b"\n")[:-1]:
        m = LINE.match(raw)
        assert m, f"not an entry line: {raw!r}"
        rows.append((int(m.group(1)), m.group(2).decode(), m.group(3).decode(), m.group(4)))
    assert out == b"" or out.endswith(b"\n")
    return rows


def list_all(client, log_id):
    entries, token = [], ""
    while True:
        r = client.call(client.query.ListLogEntries,
                        pb.ListLogEntriesRequest(log_id=log_id, page_size=1000, page_token=token))
        entries += r.entries
        token = r.next_page_token
        if not token:
            return entries


def assert_terminal_safe(data):
    """No byte that a terminal would interpret: C0 other than newline, DEL, C1, bidi."""
    for b in data:
        assert b == 0x0A or 0x20 <= b < 0x7F or b >= 0x80, f"raw control byte {b:#x} in output"
    text = data.decode("utf-8")  # also: the output is valid UTF-8
    for ch in text:
        cp = ord(ch)
        assert not 0x80 <= cp <= 0x9F, f"raw C1 control U+{cp:04X} in output"
        assert not (0x202A <= cp <= 0x202E or 0x2066 <= cp <= 0x2069), \
            f"raw bidi control U+{cp:04X} in output"


@pytest.fixture(scope="module")
def key(client):
    return client.key


# ------------------------------------------------------------------ logs

def test_log_create_prints_id_and_get_shows_it(server, key, client):
    log_id = create_log(server, key, "job=ci-42", "team=data eng")
    got = client.call(client.query.GetLog, pb.GetLogRequest(log_id=log_id)).log
    assert dict(got.labels) == {"job": "ci-42", "team": "data eng"}

    text = ok(run(server, key, "log", "get", log_id)).stdout.decode()
    assert f"id: {log_id}\n" in text
    assert "entry_count: 0\n" in text
    assert "label: job=ci-42\n" in text and "label: team=data eng\n" in text

    obj = json.loads(ok(run(server, key, "log", "get", log_id, "--json")).stdout)
    assert obj["id"] == log_id and obj["labels"] == {"job": "ci-42", "team": "data eng"}
    assert obj["entry_count"] == 0


def test_log_create_rejects_bad_label(server, key):
    p = run(server, key, "log", "create", "--label", "novalue")
    assert p.returncode == EXIT_USAGE and b"key=value" in p.stderr


# ----------------------------------------------------------------- write

def test_write_then_list(server, key, client):
    log_id = create_log(server, key)
    p = ok(run(server, key, "write", log_id, "--source", "w1", "--severity", "warning",
               input=b"first line\nsecond  line \n\nlast without newline"))
    assert b"4 lines" in p.stderr
    rows = parse_lines(ok(run(server, key, "list", log_id)).stdout)
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert [r[3] for r in rows] == [b"first line", b"second  line ", b"", b"last without newline"]
    assert {r[2] for r in rows} == {"WARNING"}
    stored = list_all(client, log_id)
    assert [e.insert_id for e in stored] == ["w1:1", "w1:2", "w1:3", "w1:4"]
    assert all(e.severity == pb.LogEntry.WARNING for e in stored)
    # The printed time is the entry's time, in UTC with nanoseconds.
    for row, e in zip(rows, stored):
        assert row[1] == fmt_ts(e.time)


def test_write_same_source_adds_nothing_twice(server, key, client):
    log_id = create_log(server, key)
    lines = b"".join(b"line %d\n" % i for i in range(1, 51))
    # A first run that "crashed" after 20 lines, then the full re-run, then once more.
    ok(run(server, key, "write", log_id, "--source", "job-7", input=lines[:lines.index(b"line 21")]))
    ok(run(server, key, "write", log_id, "--source", "job-7", input=lines))
    ok(run(server, key, "write", log_id, "--source", "job-7", input=lines))
    stored = list_all(client, log_id)
    assert [e.text_payload for e in stored] == [f"line {i}" for i in range(1, 51)]
    assert [e.entry_id for e in stored] == [str(i) for i in range(1, 51)]
    # Without --source every run is new: a fresh random source.
    p = ok(run(server, key, "write", log_id, input=b"a\nb\n"))
    assert b"source" in p.stderr
    assert len(list_all(client, log_id)) == 52


def test_write_keeps_bytes_exact_except_newline(server, key, client):
    log_id = create_log(server, key)
    raw = [b"cr at end\r", b"\ttab and trailing space ", b"nul\x00inside", b"esc \x1b[31mred",
           b"caf\xc3\xa9 \xf0\x9f\x98\x80", b"back\\slash", b"\x7fdel"]
    ok(run(server, key, "write", log_id, "--source", "s", input=b"\n".join(raw) + b"\n"))
    stored = list_all(client, log_id)
    assert [e.text_payload.encode() for e in stored] == raw


def test_write_replaces_invalid_utf8(server, key, client):
    log_id = create_log(server, key)
    p = ok(run(server, key, "write", log_id, "--source", "s",
               input=b"ok\nbad \xff\xfe here\ntrunc \xe2\x82\n"))
    assert b"U+FFFD" in p.stderr
    stored = list_all(client, log_id)
    assert [e.text_payload for e in stored] == ["ok", "bad \ufffd\ufffd here", "trunc \ufffd"]


def test_write_splits_long_lines_and_reruns_cleanly(server, key, client):
    log_id = create_log(server, key)
    long_line = ("0123456789abcdef" * 40000).encode() + "€".encode() * 30000  # 730 KB
    data = b"short\n" + long_line + b"\nafter\n"
    ok(run(server, key, "write", log_id, "--source", "big", input=data))
    ok(run(server, key, "write", log_id, "--source", "big", input=data))
    stored = list_all(client, log_id)
    ids = [e.insert_id for e in stored]
    assert ids[0] == "big:1" and ids[-1] == "big:3"
    parts = stored[1:-1]
    assert len(parts) >= 3 and [e.insert_id for e in parts] == \
        [f"big:2.{i}" for i in range(1, len(parts) + 1)]
    assert "".join(e.text_payload for e in parts).encode() == long_line
    assert stored[-1].text_payload == "after"


def test_write_flushes_a_slow_pipe(server, key, client):
    log_id = create_log(server, key)
    env = dict(os.environ, ANNALS_ADDR=server.addr, ANNALS_TOKEN=key)
    proc = subprocess.Popen([ANNALS, "write", log_id, "--source", "slow"], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(b"early line\n")
        proc.stdin.flush()
        deadline = time.time() + WAIT
        while not list_all(client, log_id):  # visible while stdin is still open
            assert time.time() < deadline, "a line from a slow pipe was never sent"
            time.sleep(0.1)
        assert proc.poll() is None
        proc.stdin.write(b"late line\n")
        proc.stdin.close()
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [e.text_payload for e in list_all(client, log_id)] == ["early line", "late line"]


# ------------------------------------------------------------------ list

def write_direct(client, log_id, entries):
    r = client.call(client.cmd.WriteLogEntries,
                    pb.WriteLogEntriesRequest(log_id=log_id, entries=entries))
    return list(r.entry_ids)


def test_list_walks_every_page(server, key, client):
    log_id = create_log(server, key)
    ok(run(server, key, "write", log_id, "--source", "p",
           input=b"".join(b"n%d\n" % i for i in range(250))))
    rows = parse_lines(ok(run(server, key, "list", log_id, "--page-size", "7")).stdout)
    assert [r[0] for r in rows] == list(range(1, 251))
    assert [r[3] for r in rows] == [b"n%d" % i for i in range(250)]
    p = run(server, key, "list", log_id, "--page-size", "0")
    assert p.returncode == EXIT_USAGE


def test_list_time_window(server, key, client):
    log_id = create_log(server, key)
    base = timestamp_pb2.Timestamp()
    base.FromJsonString("2020-01-01T00:00:00Z")
    entries = []
    for i in range(30):
        t = timestamp_pb2.Timestamp(seconds=base.seconds + 60 * i, nanos=i)
        entries.append(pb.LogEntry(insert_id=f"t{i}", text_payload=f"minute {i}", time=t))
    write_direct(client, log_id, entries)
    rows = parse_lines(ok(run(server, key, "list", log_id, "--since", "2020-01-01T00:10:00Z",
                              "--until", "2020-01-01T01:20:00+01:00")).stdout)
    assert [r[3] for r in rows] == [b"minute %d" % i for i in range(10, 20)]
    assert rows[0][1] == "2020-01-01T00:10:00.000000010Z"
    # relative times: everything above is years old
    assert ok(run(server, key, "list", log_id, "--since", "-1h")).stdout == b""
    assert len(parse_lines(ok(run(server, key, "list", log_id, "--until", "now")).stdout)) == 30
    p = run(server, key, "list", log_id, "--since", "yesterday-ish")
    assert p.returncode == EXIT_USAGE and b"--since" in p.stderr


def test_list_json_has_every_field(server, key, client):
    log_id = create_log(server, key)
    st = struct_pb2.Struct()
    st.update({"user": "\x1b[2Jmallory", "n": 1.5, "ok": True, "none": None,
               "nested": {"list": [1, "two", {"three": 3}]}})
    hostile = "esc\x1b[31m cr\r nl\n nul\x00 del\x7f c1\u009b bidi\u202e quote\" back\\"
    ids = write_direct(client, log_id, [
        pb.LogEntry(insert_id="a", text_payload=hostile, severity=pb.LogEntry.ERROR,
                    labels={"k\x1b": "v\r\n"}),
        pb.LogEntry(insert_id="b", json_payload=st),
    ])
    out = ok(run(server, key, "list", log_id, "--json")).stdout
    assert_terminal_safe(out)
    objs = [json.loads(line) for line in out.decode().splitlines()]
    assert len(objs) == 2
    a, b = objs
    assert a["log_id"] == log_id and a["entry_id"] == ids[0] and a["insert_id"] == "a"
    assert a["text_payload"] == hostile
    assert a["severity"] == "ERROR" and a["labels"] == {"k\x1b": "v\r\n"}
    assert a["redacted"] is False
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", a["time"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", a["insert_time"])
    assert b["json_payload"] == {"user": "\x1b[2Jmallory", "n": 1.5, "ok": True, "none": None,
                                 "nested": {"list": [1, "two", {"three": 3}]}}
    assert "text_payload" not in b


def test_hostile_content_is_escaped(server, key, client):
    log_id = create_log(server, key)
    texts = ["\x1b]0;owned\x07\x1b[31mred\x1b[0m", "over\rwrite", "two\nlines", "nul\x00byte",
             "c1 csi \u009b2J", "bidi \u202egnp.exe", "del\x7f", "back\\slash", "tab\there"]
    write_direct(client, log_id, [pb.LogEntry(insert_id=f"h{i}", text_payload=t)
                                  for i, t in enumerate(texts)])
    out = ok(run(server, key, "list", log_id)).stdout
    assert_terminal_safe(out)
    rows = parse_lines(out)
    assert len(rows) == len(texts)  # one line per entry: newlines never pass through
    shown = [r[3] for r in rows]
    assert shown == [rb"\x1b]0;owned\x07\x1b[31mred\x1b[0m", rb"over\rwrite", rb"two\nlines",
                     rb"nul\x00byte", rb"c1 csi \u009b2J", rb"bidi \u202egnp.exe", rb"del\x7f",
                     rb"back\\slash", rb"tab\there"]
    # tail shows the same escaping
    tail = Tail(server, key, log_id, "--after", "0")
    try:
        tailed = [tail.line() for _ in texts]
    finally:
        rc, _ = tail.stop()
    assert rc == 0
    assert b"\n".join(tailed) + b"\n" == out


def test_hostile_labels_and_errors_are_escaped(server, key, client):
    r = client.call(client.cmd.CreateLog, pb.CreateLogRequest(labels={"evil\x1b[1m": "x\r\n\u009b"}))
    out = ok(run(server, key, "log", "get", r.log.id)).stdout
    assert_terminal_safe(out)
    assert rb"label: evil\x1b[1m=x\r\n\u009b" in out
    # A log id full of escapes comes back in the server's error message: escaped too.
    p = run(server, key, "list", "\x1b[31mnot-a-uuid")
    assert p.returncode == EXIT_INVALID
    assert b"\x1b" not in p.stderr


# ------------------------------------------------------------------ tail

class Tail:
    """A running `annals tail` whose stdout is read line by line with a deadline."""

    def __init__(self, server, key, *args):
        env = dict(os.environ, ANNALS_ADDR=server.addr, ANNALS_TOKEN=key)
        self.proc = subprocess.Popen([ANNALS, "tail", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.buf = b""

    def line(self, timeout=WAIT):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=WAIT)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc, err


def test_tail_from_the_end_then_sigint(server, key, client):
    log_id = create_log(server, key)
    write_direct(client, log_id, [pb.LogEntry(insert_id=f"old{i}", text_payload="old")
                                  for i in range(5)])
    tail = Tail(server, key, log_id)
    try:
        # The tail starts "from the current end": keep writing probes until one shows.
        first = None
        for k in range(int(WAIT / 0.2)):
            write_direct(client, log_id, [pb.LogEntry(insert_id=f"probe{k}",
                                                      text_payload=f"probe {k}")])
            first = tail.line(timeout=0.2)
            if first:
                break
        assert first, "tail showed nothing"
        m = LINE.match(first)
        assert m and int(m.group(1)) > 5 and m.group(4).startswith(b"probe")
        last = int(m.group(1))
        write_direct(client, log_id, [pb.LogEntry(insert_id=f"new{i}", text_payload=f"new\x1b{i}")
                                      for i in range(3)])
        seen = []
        while len(seen) < 3:
            line = tail.line()
            assert line is not None, "tail stopped delivering"
            m = LINE.match(line)
            assert m and int(m.group(1)) == last + 1, line  # consecutive, no repeats
            last += 1
            if m.group(4).startswith(b"new"):
                seen.append(m.group(4))
        assert seen == [rb"new\x1b0", rb"new\x1b1", rb"new\x1b2"]
    finally:
        rc, err = tail.stop()
    assert rc == 0, err


def test_tail_after_id_json(server, key, client):
    log_id = create_log(server, key)
    write_direct(client, log_id, [pb.LogEntry(insert_id=f"e{i}", text_payload=f"e{i}")
                                  for i in range(5)])
    tail = Tail(server, key, log_id, "--after", "2", "--json")
    try:
        objs = [json.loads(tail.line()) for _ in range(3)]
    finally:
        rc, _ = tail.stop()
    assert rc == 0
    assert [o["entry_id"] for o in objs] == ["3", "4", "5"]
    assert [o["text_payload"] for o in objs] == ["e2", "e3", "e4"]


def test_tail_unknown_log_fails(server, key):
    p = run(server, key, "tail", str(uuid.uuid4()))
    assert p.returncode == EXIT_NOT_FOUND and b"NOT_FOUND" in p.stderr


# ---------------------------------------------------------- revoke, delete

def test_revoke_then_delete(server, key, client):
    log_id = create_log(server, key)
    ok(run(server, key, "write", log_id, "--source", "r",
           input=b"keep\nsecret=hunter2\nkeep too\napi_key=xyz\n"))
    p = run(server, key, "revoke", log_id, "2", "4")
    assert p.returncode == EXIT_USAGE and b"--reason" in p.stderr
    ok(run(server, key, "revoke", log_id, "2", "4", "--reason", "leaked secrets"))
    out = ok(run(server, key, "list", log_id)).stdout
    assert b"hunter2" not in out and b"xyz" not in out
    assert [r[3] for r in parse_lines(out)] == [b"keep", b"[redacted]", b"keep too", b"[redacted]"]
    objs = [json.loads(x) for x in ok(run(server, key, "list", log_id, "--json")).stdout.splitlines()]
    assert [o["redacted"] for o in objs] == [False, True, False, True]
    assert "text_payload" not in objs[1] and objs[1]["entry_id"] == "2"

    ok(run(server, key, "delete", log_id))
    p = run(server, key, "list", log_id)
    assert p.returncode == EXIT_NOT_FOUND and b"NOT_FOUND" in p.stderr
    p = run(server, key, "delete", log_id)
    assert p.returncode == EXIT_NOT_FOUND


# ---------------------------------------------------------------- errors

def test_error_statuses_and_exit_codes(server, key):
    missing = str(uuid.uuid4())
    p = run(server, key, "list", missing)
    assert p.returncode == EXIT_NOT_FOUND and b"NOT_FOUND" in p.stderr and p.stdout == b""
    p = run(server, "not-a-key", "log", "create")
    assert p.returncode == EXIT_AUTH and b"UNAUTHENTICATED" in p.stderr
    p = run(server, None, "log", "get", missing)
    assert p.returncode == EXIT_AUTH and b"ANNALS_TOKEN" in p.stderr
    p = run(server, key, "log", "get", "not-a-uuid")
    assert p.returncode == EXIT_INVALID and b"INVALID_ARGUMENT" in p.stderr
    p = run(server, key, "frobnicate")
    assert p.returncode == EXIT_USAGE
    p = run(server, key, "list")
    assert p.returncode == EXIT_USAGE
    p = run(server, key, "write", missing, "--severity", "loud", input=b"x\n")
    assert p.returncode == EXIT_USAGE
    p = run(server, key, "write", missing, "--source", "s", input=b"x\n")
    assert p.returncode == EXIT_NOT_FOUND and b"NOT_FOUND" in p.stderr
    # Nothing listens on port 1.
    p = run(server, key, "log", "create", addr="127.0.0.1:1")
    assert p.returncode == EXIT_UNAVAILABLE and b"UNAVAILABLE" in p.stderr


def test_a_key_without_the_role_is_refused(server, key):
    """`annals` with a key made by `annalsd key create`: its roles decide (exit 4, the
    message names the role the command needs); nothing is done."""
    name = "cli-" + uuid.uuid4().hex[:10]
    server.tenant(name)
    reader, _ = server.key(name, "reader", name="ro")
    writer, _ = server.key(name, "writer", name="ci")
    log_id = ok(run(server, writer, "log", "create")).stdout.decode().strip()
    ok(run(server, writer, "write", log_id, input=b"one\ntwo\n"))
    p = run(server, reader, "log", "create")
    assert p.returncode == EXIT_AUTH
    assert b"PERMISSION_DENIED" in p.stderr and b"writer" in p.stderr
    p = run(server, writer, "delete", log_id)
    assert p.returncode == EXIT_AUTH and b"admin" in p.stderr
    p = run(server, writer, "revoke", log_id, "1", "--reason", "x")
    assert p.returncode == EXIT_AUTH and b"redactor" in p.stderr
    rows = parse_lines(ok(run(server, reader, "list", log_id)).stdout)
    assert [r[3] for r in rows] == [b"one", b"two"]  # nothing revoked, nothing deleted


def test_help(server, key):
    p = ok(run(server, key, "--help"))
    for word in (b"log create", b"write", b"list", b"tail", b"revoke", b"delete"):
        assert word in p.stdout


# ------------------------------------------------- a server that goes away

@pytest.fixture
def own_server():
    with tempfile.TemporaryDirectory(prefix="annals-cli-") as d:
        s = Server(d).start()
        yield s
        s.stop()


def test_tail_and_write_survive_a_server_restart(own_server):
    s = own_server
    key = s.tenant("restart")
    log_id = create_log(s, key)
    ok(run(s, key, "write", log_id, "--source", "a", input=b"one\ntwo\nthree\n"))
    tail = Tail(s, key, log_id, "--after", "0")
    env = dict(os.environ, ANNALS_ADDR=s.addr, ANNALS_TOKEN=key)
    writer = None
    try:
        assert [LINE.match(tail.line()).group(4) for _ in range(3)] == [b"one", b"two", b"three"]
        s.kill()  # kill -9
        # A write that starts while the server is down retries until it is back.
        writer = subprocess.Popen([ANNALS, "write", log_id, "--source", "b"],
                                  stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        writer.stdin.write(b"four\nfive\n")
        writer.stdin.close()
        time.sleep(1.0)
        s.start()
        assert writer.wait(timeout=WAIT) == 0, writer.stderr.read()
        lines = [tail.line() for _ in range(2)]
        assert all(lines), "tail did not resume after the restart"
        rows = [LINE.match(x) for x in lines]
        assert [int(m.group(1)) for m in rows] == [4, 5]  # no gap, no repeat
        assert [m.group(4) for m in rows] == [b"four", b"five"]
    finally:
        if writer and writer.poll() is None:
            writer.kill()
        rc, err = tail.stop()
        if writer:
            writer.stderr.close()
    assert rc == 0
    assert b"reconnecting after entry 3" in err
    c = Client(s, key)
    try:
        assert [e.text_payload for e in list_all(c, log_id)] == ["one", "two", "three", "four",
                                                                 "five"]
    finally:
        c.close()


def test_tls_with_ca_file(tmp_path):
    crt, tls_key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(tls_key), "-out", str(crt), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    s = Server(str(tmp_path / "data"), extra_args=["--tls-cert", str(crt), "--tls-key", str(tls_key)])
    s.start()
    try:
        key = s.tenant("tls")
        p = ok(run(s, key, "log", "create", env_extra={"ANNALS_CA_FILE": str(crt)}))
        log_id = p.stdout.decode().strip()
        ok(run(s, key, "write", log_id, "--source", "t", input=b"over tls\n",
               env_extra={"ANNALS_CA_FILE": str(crt)}))
        rows = parse_lines(ok(run(s, key, "list", log_id,
                                  env_extra={"ANNALS_CA_FILE": str(crt)})).stdout)
        assert [r[3] for r in rows] == [b"over tls"]
        # Plaintext against a TLS server, and TLS without the right root: no connection.
        assert run(s, key, "log", "get", log_id).returncode == EXIT_UNAVAILABLE
        assert run(s, key, "log", "get", log_id,
                   env_extra={"ANNALS_TLS": "1"}).returncode == EXIT_UNAVAILABLE
        p = run(s, key, "log", "get", log_id, env_extra={"ANNALS_CA_FILE": str(tmp_path / "none")})
        assert p.returncode == EXIT_USAGE and b"ANNALS_CA_FILE" in p.stderr
    finally:
        s.stop()
