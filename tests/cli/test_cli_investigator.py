"""The investigator's commands of `annals` (docs/cli.md): logs, read, search, search --revoke.

Like test_cli.py, each test drives the real binary ($ANNALS_BIN/annals) against a real annalsd
and checks what it prints against what the server holds, read back through grpcio. Tests that
list or search a tenant's whole archive get a brand-new tenant, so other tests' logs never show
up in their answers.
"""
import json
import os
import pty
import re
import select
import subprocess
import time
import uuid

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from conftest import Client
from annals.v1 import annals_pb2 as pb
from test_cli import (ANNALS, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_USAGE, UUID_RE, WAIT,
                      assert_terminal_safe, fmt_ts, list_all, ok, own_server, parse_lines, run,
                      write_direct)

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
LOG_LINE = re.compile(rb"^([0-9a-f-]{36}) (" + TIME.encode() + rb") (\d+)((?: [^ ]*=[^ ]*)*)$")
HIT = re.compile(rb"^([0-9a-f-]{36}) (\d+) (" + TIME.encode() + rb") ([A-Z]+|\d+) (.*)$")
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


class Tenant:
    """A fresh tenant: its key, a grpc client, and the `annals` command bound to its key."""

    def __init__(self, server, name):
        self.server = server
        self.name = name
        self.key = server.tenant(name)
        self.client = Client(server, self.key)

    def cli(self, *args, **kw):
        return run(self.server, self.key, *args, **kw)

    def ok(self, *args, **kw):
        return ok(self.cli(*args, **kw))

    def create_log(self, **labels):
        return self.client.call(self.client.cmd.CreateLog,
                                pb.CreateLogRequest(labels=labels)).log

    def write(self, log_id, entries):
        return write_direct(self.client, log_id, entries)

    def revoke(self, log_id, ids, reason):
        self.client.call(self.client.cmd.RevokeLogEntries,
                         pb.RevokeLogEntriesRequest(log_id=log_id, entry_ids=ids, reason=reason))

    def entries(self, log_id):
        return list_all(self.client, log_id)


@pytest.fixture
def tenant(server):
    t = Tenant(server, "inv-cli-" + uuid.uuid4().hex[:12])
    yield t
    t.client.close()


def at(sec, nanos=0):
    return timestamp_pb2.Timestamp(seconds=sec, nanos=nanos)


def text(s, t=None, **kw):
    return pb.LogEntry(text_payload=s, time=t, **kw)


def json_payload(obj, t=None, **kw):
    st = struct_pb2.Struct()
    st.update(obj)
    return pb.LogEntry(json_payload=st, time=t, **kw)


def log_lines(out):
    rows = []
    for raw in out.split(b"\n")[:-1]:
        m = LOG_LINE.match(raw)
        assert m, f"not a log line: {raw!r}"
        rows.append((m.group(1).decode(), m.group(2).decode(), int(m.group(3)),
                     m.group(4).decode().split()))
    assert out == b"" or out.endswith(b"\n")
    return rows


def hits(out):
    rows = []
    for raw in out.split(b"\n")[:-1]:
        m = HIT.match(raw)
        assert m, f"not a hit line: {raw!r}"
        rows.append((m.group(1).decode(), int(m.group(2)), m.group(3).decode(),
                     m.group(4).decode(), m.group(5)))
    assert out == b"" or out.endswith(b"\n")
    return rows


def json_lines(out):
    assert_terminal_safe(out)
    return [json.loads(line) for line in out.decode().splitlines()]


# ------------------------------------------------------------------ logs

def test_logs_newest_first_with_counts_and_labels(tenant):
    a = tenant.create_log(job="a", env="prod")
    time.sleep(0.002)
    b = tenant.create_log(job="b")
    time.sleep(0.002)
    c = tenant.create_log()
    tenant.write(b.id, [text(f"b{i}") for i in range(3)])
    rows = log_lines(tenant.ok("logs").stdout)
    assert [r[0] for r in rows] == [c.id, b.id, a.id]
    assert [r[2] for r in rows] == [0, 3, 0]
    assert rows[2][1] == fmt_ts(a.create_time)
    assert sorted(rows[2][3]) == ["env=prod", "job=a"] and rows[1][3] == ["job=b"]
    assert rows[0][3] == []

    objs = json_lines(tenant.ok("logs", "--json").stdout)
    assert [o["id"] for o in objs] == [c.id, b.id, a.id]
    assert objs[2] == {"id": a.id, "labels": {"job": "a", "env": "prod"},
                       "create_time": fmt_ts(a.create_time), "entry_count": 0}
    assert objs[1]["entry_count"] == 3

    # Every --label pair must be present with that value.
    assert [r[0] for r in log_lines(tenant.ok("logs", "--label", "job=a").stdout)] == [a.id]
    assert [r[0] for r in log_lines(tenant.ok("logs", "--label", "job=a", "--label",
                                              "env=prod").stdout)] == [a.id]
    assert tenant.ok("logs", "--label", "job=a", "--label", "env=dev").stdout == b""
    assert tenant.ok("logs", "--label", "job=zzz", "--json").stdout == b""


def test_logs_time_window_is_on_create_time(tenant):
    a = tenant.create_log(k="a")
    time.sleep(0.01)
    b = tenant.create_log(k="b")
    mid = fmt_ts(b.create_time)
    ids = lambda *args: [r[0] for r in log_lines(tenant.ok("logs", *args).stdout)]  # noqa: E731
    assert ids("--since", mid) == [b.id]  # inclusive
    assert ids("--until", mid) == [a.id]  # exclusive
    assert ids("--since", fmt_ts(a.create_time), "--until", mid) == [a.id]
    assert ids("--since", "-1h") == [b.id, a.id]
    assert ids("--until", "2020-01-01") == []
    assert ids("--since", "@%d" % (b.create_time.seconds + 3600)) == []
    p = tenant.cli("logs", "--since", "last tuesday")
    assert p.returncode == EXIT_USAGE and b"--since" in p.stderr and p.stdout == b""


def test_logs_walks_every_page(tenant):
    made = {}
    for i in range(250):
        lg = tenant.create_log(batch="big" if i % 2 == 0 else "odd", n=str(i))
        made[lg.id] = lg
    rows = log_lines(tenant.ok("logs").stdout)  # 3 pages of the server's 100
    assert len(rows) == 250 and {r[0] for r in rows} == set(made)
    created = [(made[r[0]].create_time.seconds, made[r[0]].create_time.nanos) for r in rows]
    assert created == sorted(created, reverse=True)  # newest first, across pages
    assert [r[1] for r in rows] == [fmt_ts(made[r[0]].create_time) for r in rows]
    big = log_lines(tenant.ok("logs", "--label", "batch=big").stdout)
    assert len(big) == 125 and all("batch=big" in r[3] for r in big)
    objs = json_lines(tenant.ok("logs", "--json").stdout)
    assert [o["id"] for o in objs] == [r[0] for r in rows]


def test_logs_usage_and_tenancy(server, tenant, other_client):
    for args in (["logs", "extra"], ["logs", "--label", "novalue"], ["logs", "--bogus"],
                 ["logs", "--label"], ["logs", "--until", "2026-13-01"]):
        p = tenant.cli(*args)
        assert p.returncode == EXIT_USAGE, (args, p.stderr)
        assert p.stdout == b""
    mine = tenant.create_log(who="me")
    other_client.call(other_client.cmd.CreateLog, pb.CreateLogRequest(labels={"who": "me"}))
    assert [r[0] for r in log_lines(tenant.ok("logs", "--label", "who=me").stdout)] == [mine.id]
    p = run(server, "annals_not-a-key", "logs")
    assert p.returncode == 4 and b"UNAUTHENTICATED" in p.stderr


# ------------------------------------------------------------------ read

def test_read_in_id_order_across_pages_from_and_count(tenant):
    lg = tenant.create_log().id
    # Times run backwards: read is in id order, not time order.
    ids = tenant.write(lg, [text(f"line {i}", at(T0 + 5000 - i), insert_id=f"i{i}")
                            for i in range(2500)])
    assert ids == [str(i) for i in range(1, 2501)]
    rows = parse_lines(tenant.ok("read", lg).stdout)  # 25 pages of the server's 100
    assert [r[0] for r in rows] == list(range(1, 2501))
    assert [r[3] for r in rows] == [b"line %d" % i for i in range(2500)]
    assert rows[0][1] == fmt_ts(at(T0 + 5000)) and {r[2] for r in rows} == {"UNSPECIFIED"}

    def read_ids(*args):
        return [r[0] for r in parse_lines(tenant.ok("read", lg, *args).stdout)]

    assert read_ids("--from", "2401") == list(range(2401, 2501))
    assert read_ids("--count", "7") == list(range(1, 8))
    assert read_ids("--from", "250", "--count", "301") == list(range(250, 551))  # over pages
    assert read_ids("--count", "1000") == list(range(1, 1001))
    assert read_ids("--from", "2499", "--count", "10") == [2499, 2500]
    assert read_ids("--from", "2500") == [2500]
    assert read_ids("--from", "2501") == []  # past the end: nothing, not an error
    assert read_ids("--from", "99999999999") == []
    assert read_ids("--count", "5000") == list(range(1, 2501))


def test_read_json_has_every_field(tenant):
    lg = tenant.create_log().id
    tenant.write(lg, [
        text("plain", at(T0, 5), insert_id="a", severity=pb.LogEntry.ERROR, labels={"k": "v"}),
        json_payload({"user": "mallory", "n": 1.5, "nested": {"l": [1, "two"]}}, at(T0 + 1),
                     insert_id="b"),
    ])
    objs = json_lines(tenant.ok("read", lg, "--json").stdout)
    assert len(objs) == 2
    a, b = objs
    assert a["log_id"] == lg and a["entry_id"] == "1" and a["insert_id"] == "a"
    assert a["time"] == "2023-11-14T22:13:20.000000005Z"
    assert re.match(TIME, a["insert_time"])
    assert a["severity"] == "ERROR" and a["labels"] == {"k": "v"}
    assert a["text_payload"] == "plain" and a["redacted"] is False
    assert "revocation" not in a and "json_payload" not in a
    assert b["json_payload"] == {"user": "mallory", "n": 1.5, "nested": {"l": [1, "two"]}}
    assert "text_payload" not in b
    assert [o["entry_id"] for o in json_lines(tenant.ok("read", lg, "--json", "--from", "2",
                                                        "--count", "1").stdout)] == ["2"]
    # In the text form a JSON payload is printed compactly.
    rows = parse_lines(tenant.ok("read", lg).stdout)
    assert json.loads(rows[1][3]) == b["json_payload"] and b" " not in rows[1][3]  # compact


def test_read_shows_redactions_with_their_revocation(tenant):
    lg = tenant.create_log().id
    tenant.write(lg, [text(f"entry {i}" if i % 2 else f"secret=hunter{i}", labels={"k": f"{i}"})
                      for i in range(6)])
    before = time.time()
    tenant.revoke(lg, ["1", "3", "5"], "leaked \"token\"\nin CI")
    after = time.time()
    out = tenant.ok("read", lg).stdout
    assert b"hunter" not in out
    rows = parse_lines(out)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]  # no gap: redacted entries included
    assert [r[3] for r in rows] == [b"[redacted]", b"entry 1", b"[redacted]", b"entry 3",
                                    b"[redacted]", b"entry 5"]
    objs = json_lines(tenant.ok("read", lg, "--json").stdout)
    for o in objs:
        if o["entry_id"] in ("1", "3", "5"):
            assert o["redacted"] is True and o["labels"] == {}
            assert "text_payload" not in o and "json_payload" not in o
            rev = o["revocation"]
            assert rev["actor"] == f"tenant:{tenant.name}/key:admin"
            assert rev["reason"] == "leaked \"token\"\nin CI"
            t = datetime_seconds(rev["time"])
            assert before - 1 <= t <= after + 1
        else:
            assert o["redacted"] is False and "revocation" not in o
    # list and tail print the same revocation (one JSON rendering for every command).
    listed = json_lines(tenant.ok("list", lg, "--json").stdout)
    assert [o.get("revocation") for o in listed] == [o.get("revocation") for o in objs]


def datetime_seconds(s):
    ts = timestamp_pb2.Timestamp()
    ts.FromJsonString(s)
    return ts.seconds + ts.nanos / 1e9


def test_read_errors(server, tenant, other_client):
    lg = tenant.create_log().id
    tenant.write(lg, [text("x")])
    for args in (["read"], ["read", lg, "extra"], ["read", lg, "--from", "0"],
                 ["read", lg, "--from", "x"], ["read", lg, "--from", "-1"],
                 ["read", lg, "--count", "0"], ["read", lg, "--count", "-3"],
                 ["read", lg, "--count", "ten"], ["read", lg, "--bogus"]):
        p = tenant.cli(*args)
        assert p.returncode == EXIT_USAGE, (args, p.stderr)
        assert p.stdout == b""
    p = tenant.cli("read", str(uuid.uuid4()))
    assert p.returncode == EXIT_NOT_FOUND and b"NOT_FOUND" in p.stderr
    theirs = other_client.call(other_client.cmd.CreateLog, pb.CreateLogRequest()).log.id
    p = tenant.cli("read", theirs)
    assert p.returncode == EXIT_NOT_FOUND and p.stdout == b""
    p = tenant.cli("read", "\x1b[31mnot-a-uuid")
    assert p.returncode == EXIT_INVALID and b"\x1b" not in p.stderr


# ---------------------------------------------------------------- search

def test_search_finds_text_json_and_label_hits_across_logs(tenant):
    a = tenant.create_log(job="a").id
    b = tenant.create_log(job="b").id
    tenant.write(a, [
        text("connecting with token=ghp_Secret123", at(T0 + 1), severity=pb.LogEntry.WARNING),
        text("nothing here", at(T0 + 2)),
        json_payload({"msg": "ok", "deep": {"list": [1, "x ghp_Secret123 y"]}}, at(T0 + 3)),
    ])
    tenant.write(b, [
        text("plain", at(T0 + 2), labels={"auth": "Bearer ghp_Secret123"}),
        text("ghp_Secret12 is one byte short", at(T0 + 5)),
    ])
    rows = hits(tenant.ok("search", "ghp_Secret123").stdout)
    assert [(r[0], r[1]) for r in rows] == [(a, 1), (b, 1), (a, 3)]  # by time, then log, then id
    assert rows[0][2] == fmt_ts(at(T0 + 1)) and rows[0][3] == "WARNING"
    assert rows[0][4] == b"connecting with token=ghp_Secret123"
    assert rows[1][4] == b"plain"
    assert json.loads(rows[2][4]) == {"msg": "ok", "deep": {"list": [1, "x ghp_Secret123 y"]}}
    assert b'": ' not in rows[2][4] and b", " not in rows[2][4]  # compact, as `list` prints it

    objs = json_lines(tenant.ok("search", "ghp_Secret123", "--json").stdout)
    assert [(o["log_id"], o["entry_id"]) for o in objs] == [(a, "1"), (b, "1"), (a, "3")]
    assert objs[1]["labels"] == {"auth": "Bearer ghp_Secret123"}
    assert objs[2]["json_payload"]["deep"]["list"][1] == "x ghp_Secret123 y"

    def found(*args):
        return [(r[0], r[1]) for r in hits(tenant.ok("search", *args).stdout)]

    assert found("ghp_Secret123", "--log", b) == [(b, 1)]
    assert found("ghp_Secret123", "--log", a, "--log", b) == [(a, 1), (b, 1), (a, 3)]
    assert found("ghp_Secret123", "--label", "job=a") == [(a, 1), (a, 3)]
    assert found("ghp_Secret123", "--label", "job=a", "--log", b) == []
    assert found("GHP_SECRET123") == []
    assert found("GHP_SECRET123", "--ignore-case") == [(a, 1), (b, 1), (a, 3)]
    # The window is on entry time: [since, until).
    assert found("ghp_Secret123", "--since", fmt_ts(at(T0 + 2))) == [(b, 1), (a, 3)]
    assert found("ghp_Secret123", "--until", fmt_ts(at(T0 + 2))) == [(a, 1)]
    assert found("ghp_Secret123", "--since", "2023-11-14T22:13:22Z",
                 "--until", "2023-11-14T23:13:23+01:00") == [(b, 1)]
    assert found("ghp_Secret123", "--since", "-1h") == []
    assert found("nothing-matches-this") == []
    # A query may start with a dash after "--".
    tenant.write(a, [text("flag --password=swordfish", at(T0 + 9))])
    assert found("--", "--password") == [(a, 4)]


def test_search_walks_every_page(tenant):
    logs = [tenant.create_log(n=str(k)).id for k in range(5)]
    want = set()
    for k, lg in enumerate(logs):
        tenant.write(lg, [text(f"req {i} session=deadbeef" if i % 2 == 0 else f"other {i}",
                               at(T0 + i * 5 + k)) for i in range(1000)])
        want |= {(lg, i + 1) for i in range(0, 1000, 2)}
    rows = hits(tenant.ok("search", "session=deadbeef").stdout)  # 2,500 hits: 25 pages
    assert len(rows) == 2500 and {(r[0], r[1]) for r in rows} == want
    times = [r[2] for r in rows]
    assert times == sorted(times)
    assert len(json_lines(tenant.ok("search", "deadbeef", "--json").stdout)) == 2500


def test_search_escapes_a_hostile_payload(tenant):
    lg = tenant.create_log(**{"k\x1b[1m": "v"}).id
    texts = ["TOKEN \x1b]0;owned\x07\x1b[31mred\x1b[0m", "TOKEN nul\x00byte", "TOKEN over\rwrite",
             "TOKEN two\nlines", "TOKEN c1 \u009b2J bidi \u202egnp.exe", "TOKEN del\x7f back\\"]
    tenant.write(lg, [text(t, at(T0 + i), labels={"l\x1b": "\x00"}) for i, t in enumerate(texts)])
    tenant.write(lg, [json_payload({"m": "TOKEN \x1b[2J\u0000"}, at(T0 + 10))])
    out = tenant.ok("search", "TOKEN").stdout
    assert_terminal_safe(out)
    rows = hits(out)
    assert len(rows) == len(texts) + 1  # one line per hit: newlines never pass through
    assert [r[4] for r in rows] == [
        rb"TOKEN \x1b]0;owned\x07\x1b[31mred\x1b[0m", rb"TOKEN nul\x00byte",
        rb"TOKEN over\rwrite", rb"TOKEN two\nlines", rb"TOKEN c1 \u009b2J bidi \u202egnp.exe",
        rb"TOKEN del\x7f back\\", rb'{"m":"TOKEN \u001b[2J\u0000"}']
    objs = json_lines(tenant.ok("search", "TOKEN", "--json").stdout)
    assert [o.get("text_payload") for o in objs[:-1]] == texts  # exact strings back
    assert objs[-1]["json_payload"] == {"m": "TOKEN \x1b[2J\x00"}
    assert objs[0]["labels"] == {"l\x1b": "\x00"}
    logs_out = tenant.ok("logs").stdout
    assert_terminal_safe(logs_out)
    assert rb"k\x1b[1m=v" in logs_out
    # A NUL byte in the query itself cannot be typed on a command line; an ESC can.
    assert len(hits(tenant.ok("search", "\x1b]0;owned").stdout)) == 1


def test_search_usage_and_server_errors(tenant):
    lg = tenant.create_log().id
    for args in (["search"], ["search", ""], ["search", "a", "b"], ["search", "x", "--revoke"],
                 ["search", "x", "--reason", "r"], ["search", "x", "--yes"],
                 ["search", "x", "--label", "novalue"], ["search", "x", "--since", "soon"],
                 ["search", "x", "--log"], ["search", "x", "--bogus"]):
        p = tenant.cli(*args)
        assert p.returncode == EXIT_USAGE, (args, p.stderr)
        assert p.stdout == b""
    p = tenant.cli("search", "x", "--revoke")
    assert b"--reason" in p.stderr
    p = tenant.cli("search", "x", "--log", str(uuid.uuid4()))
    assert p.returncode == EXIT_NOT_FOUND and b"NOT_FOUND" in p.stderr
    p = tenant.cli("search", "x", "--log", lg, "--log", "not-a-uuid")
    assert p.returncode == EXIT_INVALID and b"INVALID_ARGUMENT" in p.stderr
    p = tenant.cli("search", "q" * 1025)
    assert p.returncode == EXIT_INVALID and b"query" in p.stderr


# ------------------------------------------------------- search --revoke

def leak_fixture(tenant, token="ghp_LeakedToken42"):
    """Three logs with the token in text, JSON and label form, among entries without it."""
    a = tenant.create_log(job="a").id
    b = tenant.create_log(job="b").id
    c = tenant.create_log(job="c").id
    tenant.write(a, [text("boot"), text(f"export GH_TOKEN={token}"), text("step 2"),
                     text(f"retry with {token}"), text("done")])
    tenant.write(b, [json_payload({"env": {"GH_TOKEN": token}}), text("fine")])
    tenant.write(c, [text("clean", labels={"auth": f"Bearer {token}"}), text("also clean")])
    return token, {a: [2, 4], b: [1], c: [1]}


def revoked_lines(out):
    """`LOG revoked: ID...` lines and the total."""
    lines = out.decode().splitlines()
    assert lines and lines[-1].startswith("total: "), out
    per_log = {}
    for line in lines[:-1]:
        log_id, rest = line.split(" revoked:", 1)
        assert UUID_RE.match(log_id), line
        per_log[log_id] = [int(x) for x in rest.split()]
    return per_log, lines[-1]


def assert_revoked(tenant, expected, reason):
    for lg, ids in expected.items():
        entries = tenant.entries(lg)
        for e in entries:
            if int(e.entry_id) in ids:
                assert e.redacted and not e.text_payload and not e.HasField("json_payload")
                assert not e.labels and e.revocation.reason == reason
            else:
                assert not e.redacted


def assert_nothing_revoked(tenant, expected, token):
    assert len(hits(tenant.ok("search", token).stdout)) == sum(len(v) for v in expected.values())
    for lg in expected:
        assert not any(e.redacted for e in tenant.entries(lg))


def test_search_revoke_yes_purges_every_hit(tenant):
    token, expected = leak_fixture(tenant)
    p = tenant.ok("search", token, "--revoke", "--reason", "leaked GH token", "--yes")
    per_log, total = revoked_lines(p.stdout)
    assert per_log == expected
    assert total == "total: 4 entries revoked in 3 logs"
    assert token.encode() not in p.stdout + p.stderr  # the drill never prints the secret
    # The bytes are gone: search finds nothing, read shows the entries redacted with the reason.
    assert tenant.ok("search", token).stdout == b""
    assert tenant.ok("search", token.lower(), "--ignore-case").stdout == b""
    a = next(lg for lg, ids in expected.items() if ids == [2, 4])
    rows = parse_lines(tenant.ok("read", a).stdout)
    assert [r[3] for r in rows] == [b"boot", b"[redacted]", b"step 2", b"[redacted]", b"done"]
    for lg, ids in expected.items():
        objs = json_lines(tenant.ok("read", lg, "--json").stdout)
        assert token not in json.dumps(objs)
        for o in objs:
            if int(o["entry_id"]) in ids:
                assert o["redacted"] and o["revocation"]["reason"] == "leaked GH token"
                assert o["revocation"]["actor"] == f"tenant:{tenant.name}/key:admin"
    assert_revoked(tenant, expected, "leaked GH token")
    # Again: nothing left to revoke.
    p = tenant.ok("search", token, "--revoke", "--reason", "again", "--yes")
    assert p.stdout == b"total: 0 entries revoked in 0 logs\n"


def test_search_revoke_narrowed_and_json(tenant):
    token, expected = leak_fixture(tenant)
    a, b, c = expected
    p = tenant.ok("search", token, "--log", b, "--label", "job=b", "--revoke", "--reason", "",
                  "--yes", "--json")
    assert json_lines(p.stdout) == [{"log_id": b, "revoked": ["1"]}, {"revoked": 1, "logs": 1}]
    assert_revoked(tenant, {b: [1], a: [], c: []}, "")
    p = tenant.ok("search", token, "--label", "job=a", "--revoke", "--reason", "r2", "--yes")
    assert revoked_lines(p.stdout) == ({a: [2, 4]}, "total: 2 entries revoked in 1 log")
    assert [(r[0], r[1]) for r in hits(tenant.ok("search", token).stdout)] == [(c, 1)]


def test_search_revoke_without_yes_refuses_when_stdin_is_not_a_terminal(tenant):
    token, expected = leak_fixture(tenant)
    for stdin in (subprocess.DEVNULL, b"y\n"):
        env = dict(os.environ, ANNALS_ADDR=tenant.server.addr, ANNALS_TOKEN=tenant.key)
        kw = {"input": stdin} if isinstance(stdin, bytes) else {"stdin": stdin}
        p = subprocess.run([ANNALS, "search", token, "--revoke", "--reason", "r"], env=env,
                           capture_output=True, timeout=WAIT, **kw)
        assert p.returncode != 0 and p.stdout == b""
        assert b"terminal" in p.stderr and b"--yes" in p.stderr
    assert_nothing_revoked(tenant, expected, token)


class Pty:
    """`annals` with its stdin and stderr on a pseudo-terminal (stdout a pipe)."""

    def __init__(self, tenant, *args):
        self.master, slave = pty.openpty()
        env = dict(os.environ, ANNALS_ADDR=tenant.server.addr, ANNALS_TOKEN=tenant.key)
        self.proc = subprocess.Popen([ANNALS, *args], stdin=slave, stdout=subprocess.PIPE,
                                     stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.seen = b""

    def expect(self, what, timeout=WAIT):
        deadline = time.time() + timeout
        while what not in self.seen:
            left = deadline - time.time()
            assert left > 0, f"never saw {what!r} on the terminal; saw {self.seen!r}"
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the process closed the terminal
                    chunk = b""
                assert chunk, f"terminal closed before {what!r}; saw {self.seen!r}"
                self.seen += chunk

    def answer(self, line):
        os.write(self.master, line)

    def finish(self):
        out = self.proc.stdout.read()
        rc = self.proc.wait(timeout=WAIT)
        self.proc.stdout.close()
        try:
            while True:
                r, _, _ = select.select([self.master], [], [], 0.2)
                if not r:
                    break
                chunk = os.read(self.master, 4096)
                if not chunk:
                    break
                self.seen += chunk
        except OSError:
            pass
        os.close(self.master)
        return rc, out


@pytest.mark.parametrize("answer", [b"n\n", b"\n", b"whatever\n"])
def test_search_revoke_on_a_terminal_answering_no_revokes_nothing(tenant, answer):
    token, expected = leak_fixture(tenant)
    t = Pty(tenant, "search", token, "--revoke", "--reason", "leak")
    try:
        t.expect(b"[y/N]")
        assert b"4 hits in 3 logs" in t.seen
        t.answer(answer)
    finally:
        rc, out = t.finish()
    assert rc != 0 and out == b""
    assert b"nothing was revoked" in t.seen
    assert_nothing_revoked(tenant, expected, token)


def test_search_revoke_on_a_terminal_answering_yes(tenant):
    token, expected = leak_fixture(tenant)
    t = Pty(tenant, "search", token, "--revoke", "--reason", "leak drill")
    try:
        t.expect(b"[y/N]")
        assert b"4 hits in 3 logs" in t.seen
        t.answer(b"y\n")
    finally:
        rc, out = t.finish()
    assert rc == 0, t.seen
    per_log, total = revoked_lines(out)
    assert per_log == expected and total == "total: 4 entries revoked in 3 logs"
    assert tenant.ok("search", token).stdout == b""
    assert_revoked(tenant, expected, "leak drill")


def test_search_revoke_batches_more_than_10000_ids_in_one_log(tenant):
    """RevokeLogEntries takes at most 10,000 ids: 10,050 hits in one log take two calls."""
    big = tenant.create_log(job="big").id
    small = tenant.create_log(job="small").id
    n = 10_050
    for start in range(0, n, 5000):
        tenant.write(big, [text(f"{i} AKIA-LEAK" if i % 1000 != 7 else f"{i} clean",
                                at(T0 + i)) for i in range(start, min(n, start + 5000))])
    tenant.write(small, [text("AKIA-LEAK once")])
    want = [i + 1 for i in range(n) if i % 1000 != 7]
    p = tenant.ok("search", "AKIA-LEAK", "--revoke", "--reason", "aws key", "--yes",
                  timeout=WAIT * 3)
    per_log, total = revoked_lines(p.stdout)
    assert per_log == {big: want, small: [1]}
    assert total == f"total: {len(want) + 1} entries revoked in 2 logs"
    assert tenant.ok("search", "AKIA-LEAK").stdout == b""
    stored = tenant.entries(big)
    assert [int(e.entry_id) for e in stored if e.redacted] == want
    assert [e.text_payload for e in stored if not e.redacted] == \
        [f"{i} clean" for i in range(n) if i % 1000 == 7]


def test_help_lists_the_investigator_commands(server, tenant):
    out = tenant.ok("--help").stdout
    for word in (b"logs [--label k=v]", b"read LOG [--from ID] [--count N]", b"search QUERY",
                 b"--ignore-case", b"--revoke --reason R [--yes]"):
        assert word in out


# ------------------------------------------------- a server that goes away

def test_queries_retry_while_the_server_restarts(own_server):  # noqa: F811 (a fixture)
    s = own_server
    key = s.tenant("restart-inv")
    c = Client(s, key)
    try:
        lg = c.call(c.cmd.CreateLog, pb.CreateLogRequest(labels={"r": "1"})).log.id
        write_direct(c, lg, [text(f"needle {i}") for i in range(3)])
    finally:
        c.close()
    s.kill()  # kill -9
    env = dict(os.environ, ANNALS_ADDR=s.addr, ANNALS_TOKEN=key)
    procs = [subprocess.Popen([ANNALS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env)
             for args in (["logs"], ["read", lg], ["search", "needle"])]
    try:
        time.sleep(0.5)
        s.start()
        outs = [p.communicate(timeout=WAIT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert [r[0] for r in log_lines(outs[0][0])] == [lg]
    assert [r[3] for r in parse_lines(outs[1][0])] == [b"needle 0", b"needle 1", b"needle 2"]
    assert [(r[0], r[1]) for r in hits(outs[2][0])] == [(lg, 1), (lg, 2), (lg, 3)]
