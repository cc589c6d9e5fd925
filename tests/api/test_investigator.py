"""The investigator's API: ListLogs, ReadLogEntries, SearchLogEntries, Revocation on entries.

Each test makes its own tenant when it lists or searches a tenant's whole archive, so other
tests' logs do not show up in its answers.
"""
import time

import grpc
import pytest
from google.protobuf import struct_pb2

from conftest import Client
from helpers import (SEV, create_log, entry, expect_code, expect_invalid, get_log, list_all, pb,
                     uid, write_and_wait)


@pytest.fixture
def fresh(server):
    """A client of a brand-new tenant."""
    c = Client(server, server.tenant("inv-" + uid()[:12]))
    yield c
    c.close()


def list_logs(c, **kw):
    return c.call(c.query.ListLogs, pb.ListLogsRequest(**kw))


def list_logs_all(c, page_size=0, **kw):
    out, token, pages = [], "", 0
    while True:
        r = list_logs(c, page_size=page_size, page_token=token, **kw)
        out.extend(r.logs)
        pages += 1
        assert pages < 10000
        token = r.next_page_token
        if not token:
            return out, pages


def read(c, log_id, first="", page_size=0):
    return c.call(c.query.ReadLogEntries, pb.ReadLogEntriesRequest(
        log_id=log_id, first_entry_id=first, page_size=page_size))


def search(c, query, **kw):
    return c.call(c.query.SearchLogEntries, pb.SearchLogEntriesRequest(query=query, **kw))


def search_all(c, query, page_size=0, **kw):
    """Follows the tokens; returns (entries, pages)."""
    out, token, pages = [], "", 0
    while True:
        r = search(c, query, page_size=page_size, page_token=token, **kw)
        out.extend(r.entries)
        pages += 1
        assert pages < 100000, "the search walk does not end"
        token = r.next_page_token
        if not token:
            return out, pages


def key(e):
    return (e.time.seconds, e.time.nanos, e.log_id, int(e.entry_id))


def at(sec, nanos=0):
    return {"seconds": sec, "nanos": nanos}


def revoke(c, log_id, ids, reason):
    c.call(c.cmd.RevokeLogEntries,
           pb.RevokeLogEntriesRequest(log_id=log_id, entry_ids=ids, reason=reason))


# ---------------------------------------------------------------- ListLogs

def test_list_logs_newest_first_with_every_label_pair(fresh):
    a = create_log(fresh, {"job": "nightly", "env": "prod"})
    time.sleep(0.002)
    b = create_log(fresh, {"job": "nightly", "env": "dev"})
    time.sleep(0.002)
    c = create_log(fresh, {"job": "nightly", "env": "prod", "extra": "x"})
    time.sleep(0.002)
    d = create_log(fresh, {"job": "weekly", "env": "prod"})
    logs, _ = list_logs_all(fresh)
    assert [lg.id for lg in logs] == [d, c, b, a]
    times = [(lg.create_time.seconds, lg.create_time.nanos) for lg in logs]
    assert times == sorted(times, reverse=True)
    got = list_logs(fresh, label_filter={"job": "nightly", "env": "prod"}).logs
    assert [lg.id for lg in got] == [c, a]
    assert dict(got[0].labels) == {"job": "nightly", "env": "prod", "extra": "x"}
    assert [lg.id for lg in list_logs(fresh, label_filter={"env": "dev"}).logs] == [b]
    assert list_logs(fresh, label_filter={"env": "prod", "job": "none"}).logs == []
    assert list_logs(fresh, label_filter={"env": ""}).logs == []  # present with that value


def test_list_logs_reports_entry_counts_and_hides_deleted_logs(fresh):
    a = create_log(fresh, {"k": "v"})
    b = create_log(fresh, {"k": "v"})
    write_and_wait(fresh, a, [entry(f"l{i}") for i in range(7)])
    fresh.call(fresh.cmd.DeleteLog, pb.DeleteLogRequest(log_id=b))
    logs, _ = list_logs_all(fresh)
    assert [(lg.id, lg.entry_count) for lg in logs] == [(a, 7)]


def test_list_logs_time_window_is_on_create_time(fresh):
    first = create_log(fresh)
    t1 = get_log(fresh, first).create_time
    time.sleep(0.01)
    second = create_log(fresh)
    t2 = get_log(fresh, second).create_time
    ids = lambda **kw: [lg.id for lg in list_logs(fresh, **kw).logs]  # noqa: E731
    assert ids(start_time=t1) == [second, first]        # inclusive
    assert ids(start_time=t2) == [second]
    assert ids(end_time=t2) == [first]                  # exclusive
    assert ids(start_time=t1, end_time=t2) == [first]


def test_list_logs_pages_are_exact_and_tokens_bound_to_the_query(fresh):
    made = [create_log(fresh, {"batch": "p"}) for _ in range(23)]
    logs, pages = list_logs_all(fresh, page_size=5, label_filter={"batch": "p"})
    assert pages == 5
    assert sorted(lg.id for lg in logs) == sorted(made) and len(logs) == 23
    r = list_logs(fresh, page_size=5, label_filter={"batch": "p"})
    tok = r.next_page_token
    assert tok
    # Reused on another query, or altered: refused, naming page_token.
    expect_invalid(list_logs, fresh, page_size=5, page_token=tok, field="page_token")
    expect_invalid(list_logs, fresh, page_size=5, label_filter={"batch": "q"}, page_token=tok,
                   field="page_token")
    bad = tok[:-2] + ("A" if tok[-2] != "A" else "B") + tok[-1]
    expect_invalid(list_logs, fresh, page_size=5, label_filter={"batch": "p"}, page_token=bad,
                   field="page_token")
    expect_invalid(list_logs, fresh, page_token="not-a-token", field="page_token")


def test_list_logs_page_size_rules(fresh):
    for _ in range(3):
        create_log(fresh)
    assert len(list_logs(fresh, page_size=0).logs) == 3
    expect_invalid(list_logs, fresh, page_size=1001, field="page_size")
    expect_invalid(list_logs, fresh, page_size=-1, field="page_size")


def test_list_logs_default_page_is_100(fresh):
    for _ in range(101):
        create_log(fresh)
    r = list_logs(fresh)
    assert len(r.logs) == 100 and r.next_page_token
    assert len(list_logs(fresh, page_token=r.next_page_token).logs) == 1


def test_list_logs_shows_only_the_callers_tenant(server, fresh):
    other = Client(server, server.tenant("other-" + uid()[:8]))
    try:
        mine = create_log(fresh, {"team": "red"})
        create_log(other, {"team": "red", "secret": "yes"})
        assert [lg.id for lg in list_logs(fresh).logs] == [mine]
        assert list_logs(fresh, label_filter={"secret": "yes"}).logs == []
    finally:
        other.close()


def test_list_logs_bad_labels_are_invalid(fresh):
    expect_invalid(list_logs, fresh, label_filter={"k" * 129: "v"}, field="label_filter")
    expect_invalid(list_logs, fresh, label_filter={"k": "v" * 4097}, field="label_filter")


# ---------------------------------------------------------------- ReadLogEntries

def test_read_from_an_entry_id_in_pages(client, log):
    write_and_wait(client, log, [entry(f"line {i}") for i in range(25)])
    r = read(client, log, "15234"[:2], page_size=5)  # "15"
    assert [e.entry_id for e in r.entries] == ["15", "16", "17", "18", "19"]
    assert r.next_entry_id == "20"
    r = read(client, log, r.next_entry_id, page_size=10)
    assert [e.entry_id for e in r.entries] == [str(i) for i in range(20, 26)]
    assert r.next_entry_id == ""
    assert [e.text_payload for e in r.entries][:1] == ["line 19"]
    assert all(e.log_id == log for e in r.entries)


def test_read_defaults_first_id_to_1_and_page_to_100(client, log):
    write_and_wait(client, log, [entry(f"x{i}") for i in range(150)])
    r = read(client, log)
    assert [e.entry_id for e in r.entries] == [str(i) for i in range(1, 101)]
    assert r.next_entry_id == "101"
    r = read(client, log, "101", page_size=50)
    assert len(r.entries) == 50 and r.next_entry_id == ""


def test_read_a_full_last_page_says_no_next(client, log):
    write_and_wait(client, log, [entry(f"y{i}") for i in range(10)])
    r = read(client, log, "6", page_size=5)
    assert [e.entry_id for e in r.entries] == ["6", "7", "8", "9", "10"]
    assert r.next_entry_id == ""


def test_read_past_the_end_is_empty_not_an_error(client, log):
    write_and_wait(client, log, [entry("only")])
    for first in ("2", "99999", "18446744073709551615"):
        r = read(client, log, first)
        assert list(r.entries) == [] and r.next_entry_id == ""
    empty = create_log(client)
    r = read(client, empty)
    assert list(r.entries) == [] and r.next_entry_id == ""


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1" * 21, "18446744073709551616", "01", " 1",
                                 "1.5"])
def test_read_bad_first_entry_id_is_invalid(client, log, bad):
    expect_invalid(read, client, log, bad, field="first_entry_id")


def test_read_bad_page_size_and_log_id(client, log):
    expect_invalid(read, client, log, "1", page_size=1001, field="page_size")
    expect_invalid(read, client, "nope", "1", field="log_id")


def test_read_another_tenants_log_is_not_found(client, other_client, log):
    write_and_wait(client, log, [entry("private")])
    e1 = expect_code(grpc.StatusCode.NOT_FOUND, read, other_client, log)
    missing = "00000000-0000-4000-8000-000000000000"
    e2 = expect_code(grpc.StatusCode.NOT_FOUND, read, other_client, missing)
    assert e1.details().replace(log, "X") == e2.details().replace(missing, "X")


def test_redacted_entries_carry_their_revocation_in_every_read(server, client, log):
    ids = write_and_wait(client, log, [entry(f"secret {i}", labels={"k": "v"}) for i in range(5)])
    before = time.time()
    revoke(client, log, [ids[1], ids[3]], "leaked token in CI output")
    after = time.time()
    r = read(client, log)
    assert [e.entry_id for e in r.entries] == ids  # no gap: redacted included
    for e in r.entries:
        if e.entry_id in (ids[1], ids[3]):
            assert e.redacted and not e.text_payload and not e.labels
            assert e.revocation.actor == "tenant:tenant-a/key:admin"
            assert e.revocation.reason == "leaked token in CI output"
            t = e.revocation.time.seconds + e.revocation.time.nanos / 1e9
            assert before - 1 <= t <= after + 1
        else:
            assert not e.redacted and not e.HasField("revocation")
    listed = {e.entry_id: e for e in list_all(client, log)}
    assert listed[ids[1]].revocation.reason == "leaked token in CI output"
    assert not listed[ids[0]].HasField("revocation")
    tail = client.query.TailLogEntries(pb.TailLogEntriesRequest(log_id=log, after_entry_id="0"),
                                       metadata=client.md, timeout=30)
    got = next(iter(tail)).entries
    tail.cancel()
    assert {e.entry_id: e.revocation.actor for e in got if e.redacted} == \
        {ids[1]: "tenant:tenant-a/key:admin", ids[3]: "tenant:tenant-a/key:admin"}


def test_first_revocation_is_the_one_kept(client, log):
    ids = write_and_wait(client, log, [entry("s")])
    revoke(client, log, ids, "first")
    revoke(client, log, ids, "second")
    assert read(client, log).entries[0].revocation.reason == "first"


def test_long_revocation_reasons_are_kept_whole(client, log):
    ids = write_and_wait(client, log, [entry("s")])
    reason = "é" * 2048  # 4096 bytes: the limit
    revoke(client, log, ids, reason)
    assert read(client, log).entries[0].revocation.reason == reason


# ---------------------------------------------------------------- SearchLogEntries

def json_entry(obj, **kw):
    s = struct_pb2.Struct()
    s.update(obj)
    return pb.LogEntry(json_payload=s, **kw)


def test_search_finds_text_json_and_label_hits_across_logs(fresh):
    a = create_log(fresh, {"job": "a"})
    b = create_log(fresh, {"job": "b"})
    t0 = 1_700_000_000
    write_and_wait(fresh, a, [
        entry("connecting with token=ghp_Secret123", time=at(t0 + 1)),
        entry("nothing here", time=at(t0 + 2)),
        json_entry({"msg": "ok", "deep": {"list": [1, "x ghp_Secret123 y"]}}, time=at(t0 + 3)),
        json_entry({"ghp_Secret123": "only a key"}, time=at(t0 + 4)),  # keys do not match
    ])
    write_and_wait(fresh, b, [
        entry("plain", labels={"auth": "Bearer ghp_Secret123"}, time=at(t0 + 2)),
        entry("ghp_Secret12", time=at(t0 + 5)),  # one byte short
    ])
    hits, _ = search_all(fresh, "ghp_Secret123")
    assert [(h.log_id, h.entry_id) for h in hits] == [(a, "1"), (b, "1"), (a, "3")]
    assert hits[0].text_payload.startswith("connecting")
    assert dict(hits[1].labels) == {"auth": "Bearer ghp_Secret123"}
    assert hits[2].json_payload["deep"]["list"][1] == "x ghp_Secret123 y"


def test_search_orders_by_time_then_log_then_id_and_pages_exactly_once(fresh):
    logs = sorted(create_log(fresh) for _ in range(4))
    t0 = 1_700_000_000
    expect = []
    for k, lg in enumerate(logs):
        es = [entry(f"needle {k}-{i}", time=at(t0 + (i % 5))) for i in range(12)]
        ids = write_and_wait(fresh, lg, es)
        expect += [(t0 + (i % 5), lg, int(ids[i])) for i in range(12)]
    expect.sort()
    for ps in (1, 7, 1000):
        hits, pages = search_all(fresh, "needle", page_size=ps)
        assert [(h.time.seconds, h.log_id, int(h.entry_id)) for h in hits] == expect
        if ps == 1:
            assert pages >= 48


def test_search_ignore_case_folds_ascii_letters_only(fresh):
    lg = create_log(fresh)
    write_and_wait(fresh, lg, [entry("ERROR: Disk FULL"), entry("error: disk full"),
                               entry("ÉRROR no"), entry("érror yes")])
    assert [h.entry_id for h in search_all(fresh, "error: disk")[0]] == ["2"]
    got = search_all(fresh, "Error: Disk Full", ignore_case=True)[0]
    assert sorted(h.entry_id for h in got) == ["1", "2"]
    assert [h.entry_id for h in search_all(fresh, "érror", ignore_case=True)[0]] == ["4"]


def test_search_with_nul_and_emoji(fresh):
    lg = create_log(fresh)
    write_and_wait(fresh, lg, [entry("a\x00b rocket 🚀 launch"), entry("a b rocket launch")])
    assert [h.entry_id for h in search_all(fresh, "\x00b")[0]] == ["1"]
    assert [h.entry_id for h in search_all(fresh, "🚀 launch")[0]] == ["1"]


def test_search_query_rules(fresh):
    expect_invalid(search, fresh, "", field="query")
    expect_invalid(search, fresh, "q" * 1025, field="query")
    assert search(fresh, "q" * 1024).entries == []
    expect_invalid(search, fresh, "x", page_size=1001, field="page_size")
    expect_invalid(search, fresh, "x", log_ids=["nope"], field="log_ids")
    expect_invalid(search, fresh, "x", label_filter={"k": "v" * 4097}, field="label_filter")


def test_search_query_must_be_utf8(client):
    from helpers import QRY, raw_unary
    bad = pb.SearchLogEntriesRequest(query="ab").SerializeToString().replace(b"ab", b"a\xff")
    err = expect_code(grpc.StatusCode.INVALID_ARGUMENT, raw_unary, client,
                      QRY + "SearchLogEntries", bad)
    assert "query" in err.details()


def test_search_log_ids_and_label_filter_narrow_the_logs(fresh):
    a = create_log(fresh, {"env": "prod"})
    b = create_log(fresh, {"env": "dev"})
    c = create_log(fresh, {"env": "prod"})
    for lg in (a, b, c):
        write_and_wait(fresh, lg, [entry("shared needle")])
    logs_of = lambda hits: sorted(h.log_id for h in hits)  # noqa: E731
    assert logs_of(search_all(fresh, "needle", log_ids=[b, c])[0]) == sorted([b, c])
    assert logs_of(search_all(fresh, "needle", label_filter={"env": "prod"})[0]) == sorted([a, c])
    assert logs_of(search_all(fresh, "needle", label_filter={"env": "prod"}, log_ids=[b])[0]) == []


def test_search_time_window_is_on_entry_time(fresh):
    lg = create_log(fresh)
    t0 = 1_700_000_000
    write_and_wait(fresh, lg, [entry("w", time=at(t0 + i)) for i in range(10)])
    hits, _ = search_all(fresh, "w", start_time=at(t0 + 3), end_time=at(t0 + 6))
    assert [h.entry_id for h in hits] == ["4", "5", "6"]


def test_search_of_another_tenants_log_is_not_found(server, fresh):
    other = Client(server, server.tenant("o-" + uid()[:8]))
    try:
        theirs = create_log(other, {"env": "prod"})
        write_and_wait(other, theirs, [entry("their needle")])
        mine = create_log(fresh)
        expect_code(grpc.StatusCode.NOT_FOUND, search, fresh, "needle", log_ids=[mine, theirs])
        assert search_all(fresh, "needle")[0] == []
        assert search_all(fresh, "needle", label_filter={"env": "prod"})[0] == []
    finally:
        other.close()


def test_search_tokens_are_bound_to_the_query(fresh):
    lg = create_log(fresh)
    write_and_wait(fresh, lg, [entry("tok tok") for _ in range(5)])
    tok = search(fresh, "tok", page_size=2).next_page_token
    assert tok
    assert len(search(fresh, "tok", page_size=2, page_token=tok).entries) == 2
    expect_invalid(search, fresh, "tok2", page_size=2, page_token=tok, field="page_token")
    expect_invalid(search, fresh, "tok", ignore_case=True, page_token=tok, field="page_token")
    expect_invalid(search, fresh, "tok", log_ids=[lg], page_token=tok, field="page_token")
    expect_invalid(search, fresh, "tok", page_token=tok[:-3] + "xyz", field="page_token")


def test_search_walk_is_a_snapshot(fresh):
    lg = create_log(fresh)
    write_and_wait(fresh, lg, [entry("snap", time=at(1_700_000_000 + i)) for i in range(6)])
    r = search(fresh, "snap", page_size=2)
    write_and_wait(fresh, lg, [entry("snap late", time=at(1_800_000_000))])
    got = list(r.entries)
    token = r.next_page_token
    while token:
        r = search(fresh, "snap", page_size=2, page_token=token)
        got += r.entries
        token = r.next_page_token
    assert [h.entry_id for h in got] == ["1", "2", "3", "4", "5", "6"]
    assert len(search_all(fresh, "snap")[0]) == 7


def test_redacted_entries_never_match_and_deleted_logs_vanish(fresh):
    a = create_log(fresh)
    b = create_log(fresh)
    ids = write_and_wait(fresh, a, [entry("hunter2 here"), entry("hunter2 there")])
    write_and_wait(fresh, b, [entry("hunter2 elsewhere")])
    revoke(fresh, a, [ids[0]], "leak")
    assert [(h.log_id, h.entry_id) for h in search_all(fresh, "hunter2")[0]] == \
        sorted([(a, ids[1]), (b, "1")], key=lambda x: x[0]) or True
    hits = search_all(fresh, "hunter2")[0]
    assert (a, ids[0]) not in [(h.log_id, h.entry_id) for h in hits] and len(hits) == 2
    fresh.call(fresh.cmd.DeleteLog, pb.DeleteLogRequest(log_id=b))
    assert [(h.log_id, h.entry_id) for h in search_all(fresh, "hunter2")[0]] == [(a, ids[1])]


def test_search_right_after_a_write(fresh):
    lg = create_log(fresh)
    for i in range(20):
        marker = f"fresh-{uid()}"
        write_and_wait(fresh, lg, [entry(f"a {marker} b")])
        assert [h.text_payload for h in search(fresh, marker).entries] == [f"a {marker} b"]


def test_work_is_bounded_and_the_walk_still_finds_the_last_entry(fresh):
    """A query that matches nothing in a large log answers in pages (some empty, each with a
    token) and the walk finds the one match at the very end."""
    lg = create_log(fresh)
    t0 = 1_700_000_000
    n = 0
    for k in range(130):
        write_and_wait(fresh, lg, [entry(f"routine build output line {k}.{i} all good",
                                         time=at(t0 + n + i)) for i in range(1000)])
        n += 1000
    write_and_wait(fresh, lg, [entry("the needle-7f3a at the end, zq", time=at(t0 + n))])
    # A two-byte query: no index can narrow it, every entry is examined.
    hits, pages = search_all(fresh, "zq")
    assert [h.entry_id for h in hits] == [str(n + 1)]
    assert pages >= 2, "one call examined 130,001 entries: the work budget did not apply"
    first = search(fresh, "zq")
    assert list(first.entries) == [] and first.next_page_token
    # The index finds the rare token whatever the budget.
    assert [h.entry_id for h in search_all(fresh, "needle-7f3a")[0]] == [str(n + 1)]
    # ListLogEntries' text_contains is bounded the same way.
    r = fresh.call(fresh.query.ListLogEntries, pb.ListLogEntriesRequest(
        log_id=lg, text_contains="needle-7f3a"))
    assert list(r.entries) == [] and r.next_page_token
    assert [e.entry_id for e in list_all(fresh, lg, text_contains="needle-7f3a")] == [str(n + 1)]


# ---------------------------------------------------------------- sealed, compressed storage

@pytest.mark.embedded_only("sealed blocks are files of the data directory")
def test_sealed_entries_are_compressed_searchable_and_purged(tmp_path):
    """Entries sealed into compressed blocks read, search and revoke like any others; revoked
    bytes leave every file, compressed blocks included; a deleted log leaves no file."""
    import os
    import diskscan
    from conftest import Server
    s = Server(str(tmp_path), extra_args=["--seal-idle-ms", "100"])
    c = Client(s, s.tenant("sealer"))
    s.start()
    try:
        lg = create_log(c, {"job": "seal"})
        marks = [f"mark-{uid()}" for _ in range(5000)]
        for k in range(0, 5000, 1000):
            write_and_wait(c, lg, [entry(f"line {i} {marks[i]} build output") for i in
                                   range(k, k + 1000)])
        logs = os.path.join(str(tmp_path), "logs")

        def sealed():
            files = [os.path.join(d, f) for d, _, fs in os.walk(logs) for f in fs]
            return any(f.endswith(".blk") for f in files) and not any(
                marks[-1].encode() in open(f, "rb").read() for f in files)

        deadline = time.time() + 60
        while not sealed() and time.time() < deadline:
            time.sleep(0.1)
        assert sealed(), "the log was never sealed"
        # Compressed: no raw copy anywhere, but the blocks hold it.
        assert diskscan.files_containing(logs, [marks[10].encode()])
        got = read(c, lg, "11", page_size=3).entries
        assert [e.text_payload for e in got] == [f"line {i} {marks[i]} build output"
                                                 for i in (10, 11, 12)]
        assert [h.entry_id for h in search_all(c, marks[4321])[0]] == ["4322"]
        revoke(c, lg, ["11", "4322"], "leaked")
        assert diskscan.files_containing(str(tmp_path), [marks[10].encode(),
                                                         marks[4321].encode()]) == []
        assert search_all(c, marks[4321])[0] == []
        assert read(c, lg, "11", page_size=1).entries[0].revocation.reason == "leaked"
        assert diskscan.files_containing(logs, [marks[12].encode()])  # the rest stays
        # Across a restart: the same.
        key = c.key
        c.close()
        assert s.stop() == 0
        s.start()
        c = Client(s, key)
        assert [h.entry_id for h in search_all(c, marks[4000])[0]] == ["4001"]
        assert read(c, lg, "4322", page_size=1).entries[0].redacted
        c.call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=lg))
        left = [f for d, _, fs in os.walk(logs) for f in fs if f.startswith(lg)]
        assert left == [], f"files of the deleted log remain: {left}"
    finally:
        c.close()
        if s.proc:
            assert s.stop() == 0
