"""ListLogEntries: order, time window, page size, page tokens, snapshot, filters."""
import base64
import random

import grpc
import pytest
from google.protobuf import timestamp_pb2

from helpers import (SEV, create_log, entry, expect_invalid, ids_of, list_all, list_page, pb,
                     texts, uid, write_and_wait)


def ts(seconds, nanos=0):
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def key(e):
    return (e.time.seconds, e.time.nanos, int(e.entry_id))


def test_empty_log_lists_nothing(client, log):
    r = list_page(client, log)
    assert list(r.entries) == [] and r.next_page_token == ""


def test_order_is_time_then_entry_id(client, log):
    rnd = random.Random(7)
    times = [ts(rnd.choice([-5, 0, 1, 1, 2, 1700000000]), rnd.choice([0, 0, 1, 999999999]))
             for _ in range(120)]
    for i in range(0, 120, 17):  # several requests, entries of one request out of time order
        write_and_wait(client, log, [entry(f"e{j}", insert_id=uid(), time=times[j])
                                     for j in range(i, min(i + 17, 120))])
    for page_size in (0, 1, 7, 1000):
        got = list_all(client, log, page_size=page_size)
        assert len(got) == 120
        assert [key(e) for e in got] == sorted(key(e) for e in got), page_size
        assert sorted(int(i) for i in ids_of(got)) == list(range(1, 121))


@pytest.fixture(scope="module")
def window_log(client):
    """Entries at seconds 1000..1009 (two at each second), plus nanosecond neighbours."""
    log_id = create_log(client)
    es = []
    for s in range(1000, 1010):
        es.append(entry(f"{s}a", insert_id=uid(), time=ts(s)))
        es.append(entry(f"{s}b", insert_id=uid(), time=ts(s)))
    es.append(entry("1004+1ns", insert_id=uid(), time=ts(1004, 1)))
    es.append(entry("1004-1ns", insert_id=uid(), time=ts(1003, 999999999)))
    write_and_wait(client, log_id, es)
    return log_id


def payloads(entries):
    return [e.text_payload for e in entries]


def test_window_start_inclusive_end_exclusive(client, window_log):
    got = list_all(client, window_log, start_time=ts(1003), end_time=ts(1006))
    assert payloads(got) == ["1003a", "1003b", "1004-1ns", "1004a", "1004b", "1004+1ns",
                             "1005a", "1005b"]


def test_window_nanosecond_edges(client, window_log):
    assert payloads(list_all(client, window_log, start_time=ts(1004, 1), end_time=ts(1005))) \
        == ["1004+1ns"]
    assert payloads(list_all(client, window_log, start_time=ts(1004), end_time=ts(1004, 1))) \
        == ["1004a", "1004b"]
    assert payloads(list_all(client, window_log, start_time=ts(1003, 999999999),
                             end_time=ts(1004))) == ["1004-1ns"]


def test_window_either_end_unset(client, window_log):
    assert payloads(list_all(client, window_log, end_time=ts(1001))) == ["1000a", "1000b"]
    assert payloads(list_all(client, window_log, start_time=ts(1009))) == ["1009a", "1009b"]
    assert len(list_all(client, window_log)) == 22


def test_empty_window(client, window_log):
    assert list_all(client, window_log, start_time=ts(1005), end_time=ts(1005)) == []
    assert list_all(client, window_log, start_time=ts(2000)) == []
    assert list_all(client, window_log, end_time=ts(1000)) == []


def test_window_paged(client, window_log):
    got = list_all(client, window_log, page_size=3, start_time=ts(1002), end_time=ts(1008))
    assert payloads(got) == payloads(list_all(client, window_log, page_size=1000,
                                              start_time=ts(1002), end_time=ts(1008)))
    assert len(got) == 14


@pytest.fixture(scope="module")
def big_log(client):
    log_id = create_log(client)
    write_and_wait(client, log_id, texts(1200, "big"))
    return log_id


def test_page_size_0_means_100(client, big_log):
    r = list_page(client, big_log, page_size=0)
    assert len(r.entries) == 100 and r.next_page_token
    assert ids_of(r.entries) == [str(i) for i in range(1, 101)]


def test_page_size_is_an_upper_bound_and_1000_works(client, big_log):
    r = list_page(client, big_log, page_size=1000)
    assert 0 < len(r.entries) <= 1000 and r.next_page_token
    r = list_page(client, big_log, page_size=13)
    assert 0 < len(r.entries) <= 13


@pytest.mark.parametrize("page_size", [1, 99, 100, 101, 999, 1000])
def test_walking_pages_yields_every_entry_once(client, big_log, page_size):
    if page_size == 1:
        # one-by-one over a 150-entry window keeps this quick
        got = _walk(client, big_log, 1, limit=150)
        assert ids_of(got) == [str(i) for i in range(1, 151)]
        return
    got = list_all(client, big_log, page_size=page_size)
    assert ids_of(got) == [str(i) for i in range(1, 1201)]


def _walk(c, log_id, page_size, limit):
    out, token = [], ""
    while len(out) < limit:
        r = list_page(c, log_id, page_size=page_size, page_token=token)
        out.extend(r.entries)
        token = r.next_page_token
        if not token:
            break
    return out[:limit]


def test_snapshot_at_first_page_while_writes_go_on(client, log):
    old = texts(250, "old")
    for i in range(0, 250, 50):
        for e in old[i:i + 50]:
            e.time.CopyFrom(ts(5000 + i))
        write_and_wait(client, log, old[i:i + 50])
    rounds = [0]

    def write_more():
        rounds[0] += 1
        # before everything, in the middle, after everything, and now
        write_and_wait(client, log, [
            entry("new-early", insert_id=uid(), time=ts(1)),
            entry("new-middle", insert_id=uid(), time=ts(5100)),
            entry("new-late", insert_id=uid(), time=ts(4102444800)),
            entry("new-now", insert_id=uid())])

    got = list_all(client, log, page_size=17, between_pages=write_more)
    assert rounds[0] >= 14
    assert sorted(e.insert_id for e in got) == sorted(e.insert_id for e in old), \
        "a walk begun before the writes must see exactly the entries of its first page's time"
    assert ids_of(got) == [str(i) for i in range(1, 251)]
    # and a new walk sees everything
    assert len(list_all(client, log)) == 250 + 4 * rounds[0]


def test_same_token_gives_the_same_page(client, log):
    write_and_wait(client, log, texts(30))
    r1 = list_page(client, log, page_size=10)
    p2 = list_page(client, log, page_size=10, page_token=r1.next_page_token)
    write_and_wait(client, log, texts(30, "later"))
    p2b = list_page(client, log, page_size=10, page_token=r1.next_page_token)
    assert list(p2.entries) == list(p2b.entries)
    assert ids_of(p2.entries) == [str(i) for i in range(11, 21)]


@pytest.fixture(scope="module")
def token_log(client):
    log_id = create_log(client)
    write_and_wait(client, log_id, [entry(f"tok {i}", insert_id=uid(), severity=SEV.INFO,
                                          time=ts(100 + i)) for i in range(30)])
    return log_id


def _token(c, log_id, **kw):
    t = list_page(c, log_id, page_size=5, **kw).next_page_token
    assert t
    return t


def _garbles(t):
    mid = len(t) // 2
    flip = "A" if t[mid] != "A" else "B"
    out = [t[:-1], t[:mid], t + "x", t + "A", t[:mid] + flip + t[mid + 1:],
           t[::-1], t * 2, "\x00" + t]
    for i in range(len(t)):  # every single-character change of a few positions
        if i % max(1, len(t) // 8) == 0:
            c = "0" if t[i] != "0" else "1"
            out.append(t[:i] + c + t[i + 1:])
    return [g for g in out if g != t]


def test_garbled_tokens_are_invalid(client, token_log):
    t = _token(client, token_log)
    for g in _garbles(t):
        expect_invalid(list_page, client, token_log, page_size=5, page_token=g,
                       field="page_token")


@pytest.mark.parametrize("forged", [
    "abc", "0", "1", "5", "-1", "99999999999999999999", "null", "{}", "%00", "' OR 1=1 --",
    base64.b64encode(b'{"after":"5"}').decode(), base64.urlsafe_b64encode(b"\x00" * 32).decode(),
    "A" * 4096])
def test_forged_tokens_are_invalid(client, token_log, forged):
    expect_invalid(list_page, client, token_log, page_size=5, page_token=forged,
                   field="page_token")


def test_token_from_another_log_is_invalid(client, token_log):
    other = create_log(client)
    write_and_wait(client, other, texts(30))
    t = _token(client, other)
    expect_invalid(list_page, client, token_log, page_size=5, page_token=t, field="page_token")


@pytest.mark.parametrize("changed", ["start_time", "end_time", "text_contains", "min_severity"])
def test_token_from_another_query_is_invalid(client, token_log, changed):
    base = dict(start_time=ts(101), end_time=ts(125), text_contains="tok",
                min_severity=SEV.DEBUG)
    t = _token(client, token_log, **base)
    other = dict(base)
    other[changed] = {"start_time": ts(102), "end_time": ts(126), "text_contains": "to",
                      "min_severity": SEV.INFO}[changed]
    expect_invalid(list_page, client, token_log, page_size=5, page_token=t, field="page_token",
                   **other)
    # and the original query still accepts it
    assert len(list_page(client, token_log, page_size=5, page_token=t, **base).entries) == 5


def test_token_from_an_unfiltered_query_on_a_filtered_one(client, token_log):
    t = _token(client, token_log)
    expect_invalid(list_page, client, token_log, page_size=5, page_token=t,
                   text_contains="tok 1", field="page_token")


def test_token_from_another_tenant_reveals_nothing(client, other_client, token_log):
    t = _token(client, token_log)
    mine = create_log(other_client)
    write_and_wait(other_client, mine, texts(10))
    with pytest.raises(grpc.RpcError) as ei:
        list_page(other_client, mine, page_size=5, page_token=t)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---------------------------------------------------------------- filters

@pytest.fixture(scope="module")
def filter_log(client):
    log_id = create_log(client)
    es = [entry("ERROR: disk full", severity=SEV.ERROR),
          entry("error: lowercase", severity=SEV.WARNING),
          entry("100% done", severity=SEV.INFO),
          entry("a_b underscore", severity=SEV.DEBUG),
          entry("axb no underscore", severity=SEV.DEBUG),
          entry("it's quoted", severity=SEV.NOTICE),
          entry("glob * ? [x]", severity=SEV.TRACE),
          entry("unspecified severity ERROR"),
          entry("emoji 😀 here", severity=SEV.CRITICAL),
          entry("nul\x00byte", severity=SEV.ALERT),
          entry("back\\slash", severity=SEV.EMERGENCY),
          pb.LogEntry(severity=SEV.EMERGENCY)]
    es[-1].json_payload.update({"msg": "ERROR in json"})
    write_and_wait(client, log_id, es)
    return log_id


@pytest.mark.parametrize("needle,expect", [
    ("ERROR", ["ERROR: disk full", "unspecified severity ERROR"]),
    ("error", ["error: lowercase"]),
    ("%", ["100% done"]),
    ("_", ["a_b underscore"]),
    ("a_b", ["a_b underscore"]),
    ("'", ["it's quoted"]),
    ("*", ["glob * ? [x]"]),
    ("?", ["glob * ? [x]"]),
    ("[x]", ["glob * ? [x]"]),
    ("[", ["glob * ? [x]"]),
    ("😀", ["emoji 😀 here"]),
    ("\x00", ["nul\x00byte"]),
    ("\\", ["back\\slash"]),
    ("\\s", ["back\\slash"]),
    ("disk full", ["ERROR: disk full"]),
    ("ERROR in json", []),
    ("no such text", []),
    ("%%", []),
    ("\"", []),
    ("OR 1=1", []),
])
def test_text_contains_is_byte_exact(client, filter_log, needle, expect):
    assert payloads(list_all(client, filter_log, text_contains=needle)) == expect


def test_min_severity(client, filter_log):
    got = list_all(client, filter_log, min_severity=SEV.CRITICAL)
    assert sorted(e.severity for e in got) == [SEV.CRITICAL, SEV.ALERT, SEV.EMERGENCY,
                                               SEV.EMERGENCY]
    assert len(list_all(client, filter_log, min_severity=SEV.TRACE)) == 11
    assert len(list_all(client, filter_log)) == 12


def test_filters_combine_and_page(client, filter_log):
    got = list_all(client, filter_log, text_contains="r", min_severity=SEV.WARNING, page_size=1)
    assert payloads(got) == ["error: lowercase", "emoji 😀 here"]


def test_filtered_walk_over_many_pages(client, log):
    es = [entry(f"{'match' if i % 3 == 0 else 'other'} {i}", insert_id=uid(),
                severity=SEV.ERROR if i % 2 == 0 else SEV.INFO) for i in range(600)]
    write_and_wait(client, log, es)
    got = list_all(client, log, text_contains="match", min_severity=SEV.ERROR, page_size=7)
    assert payloads(got) == [f"match {i}" for i in range(600) if i % 6 == 0]
