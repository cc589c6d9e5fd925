"""WriteLogEntries: dense ids, idempotency by insert_id, server-set fields, all or nothing."""
import time

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from helpers import (SEV, assert_dense, create_log, entry, eventually, expect_invalid, get_log,
                     list_all, pb, snapshot, texts, uid, write, write_and_wait)


def ts(seconds, nanos=0):
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def by_id(c, log_id):
    return {e.entry_id: e for e in list_all(c, log_id)}


def test_first_id_is_1_and_ids_are_dense_and_consecutive(client, log):
    assert write_and_wait(client, log, texts(1)) == ["1"]
    assert write_and_wait(client, log, texts(3)) == ["2", "3", "4"]
    assert write_and_wait(client, log, texts(5)) == ["5", "6", "7", "8", "9"]
    got = list_all(client, log)
    assert_dense(got, 9)


def test_ids_follow_request_order(client, log):
    batch = [entry(f"payload {i}", insert_id=f"iid-{i}") for i in range(50)]
    ids = write_and_wait(client, log, batch)
    assert ids == [str(i) for i in range(1, 51)]
    got = by_id(client, log)
    for i in range(50):
        e = got[str(i + 1)]
        assert e.text_payload == f"payload {i}" and e.insert_id == f"iid-{i}"


def test_retry_returns_existing_ids_and_stores_nothing_new(client, log):
    batch = texts(4)
    first = write_and_wait(client, log, batch)
    before = snapshot(client, log)
    again = write_and_wait(client, log, batch)
    assert again == first == ["1", "2", "3", "4"]
    # nothing changed: not the count, not a byte of the stored entries (insert_time included)
    assert snapshot(client, log) == before


def test_retry_with_mixed_old_and_new_entries(client, log):
    a = texts(3, "a")
    ids_a = write_and_wait(client, log, a)
    b = texts(2, "b")
    # old, new, old, new, old
    mixed = [a[2], b[0], a[0], b[1], a[1]]
    ids = write_and_wait(client, log, mixed)
    assert ids_a == ["1", "2", "3"]
    assert ids == ["3", "4", "1", "5", "2"]
    got = list_all(client, log)
    assert_dense(got, 5)
    assert sorted(e.insert_id for e in got) == sorted(e.insert_id for e in a + b)


def test_dedup_keeps_the_first_payload(client, log):
    iid = uid()
    write_and_wait(client, log, [entry("original", insert_id=iid)])
    ids = write_and_wait(client, log, [entry("different payload", insert_id=iid,
                                             severity=SEV.ERROR, labels={"x": "y"})])
    assert ids == ["1"]
    [e] = list_all(client, log)
    assert e.text_payload == "original" and dict(e.labels) == {} and e.severity == 0


def test_dedup_lasts_for_the_life_of_the_log(client, log):
    early = texts(2, "early")
    write_and_wait(client, log, early)
    for _ in range(20):
        write_and_wait(client, log, texts(50))
    assert write_and_wait(client, log, early) == ["1", "2"]
    eventually(lambda: _count(client, log, 1002))


def test_same_insert_id_in_another_log_is_a_new_entry(client):
    a, b = create_log(client), create_log(client)
    write_and_wait(client, a, texts(2))
    e = entry("shared", insert_id="shared-insert-id")
    assert write_and_wait(client, a, [e]) == ["3"]
    assert write_and_wait(client, b, [e]) == ["1"]


def test_duplicate_insert_id_within_one_request_is_stored_once(client, log):
    """Either the request is refused (nothing stored) or the entry is stored once and both
    positions report its id: never two entries with one insert_id."""
    iid = uid()
    req = [entry("one", insert_id=iid), entry("two", insert_id=uid()), entry("three", insert_id=iid)]
    try:
        ids = list(write(client, log, req).entry_ids)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert snapshot(client, log) == (0, [])
        return
    got = eventually(lambda: _listed(client, log, 2))
    assert sorted(e.insert_id for e in got) == sorted({iid, req[1].insert_id})
    assert_dense(got, 2)
    if ids:
        assert ids[0] == ids[2] and ids[0] != ids[1], ids


def _listed(c, log_id, n):
    got = list_all(c, log_id)
    assert len(got) == n, [(e.entry_id, e.insert_id) for e in got]
    return got


def _count(c, log_id, n):
    assert get_log(c, log_id).entry_count == n


def test_server_generates_distinct_insert_ids(client, log):
    write_and_wait(client, log, [entry(f"no iid {i}") for i in range(10)], auto_insert_id=False)
    got = eventually(lambda: _listed(client, log, 10))
    iids = [e.insert_id for e in got]
    assert all(iids), iids
    assert len(set(iids)) == 10, iids


def test_entries_without_insert_id_are_never_deduplicated(client, log):
    e = entry("same text, no insert id")
    write_and_wait(client, log, [e], auto_insert_id=False)
    write_and_wait(client, log, [e], auto_insert_id=False)
    eventually(lambda: _listed(client, log, 2))


def test_insert_time_is_set_by_the_server_on_receipt(client, log):
    before = time.time()
    # A client-sent insert_time must not be taken over.
    e = entry("t", insert_id=uid(), time=ts(1000), insert_time=ts(5, 7))
    write_and_wait(client, log, [e])
    after = time.time()
    [got] = list_all(client, log)
    it = got.insert_time.ToNanoseconds() / 1e9
    assert before - 2 <= it <= after + 2, (before, it, after)
    assert got.time == ts(1000)


def test_unset_time_becomes_insert_time(client, log):
    write_and_wait(client, log, texts(3))
    for e in list_all(client, log):
        assert e.HasField("time") and e.HasField("insert_time")
        assert e.time == e.insert_time, (e.time, e.insert_time)


def test_time_is_kept_to_the_nanosecond(client, log):
    times = [ts(1700000000, 123456789), ts(0, 1), ts(-1, 999999999), ts(-86400 * 365 * 50, 5),
             ts(4102444800, 999999999)]
    write_and_wait(client, log, [entry(f"t{i}", insert_id=uid(), time=t)
                                 for i, t in enumerate(times)])
    got = by_id(client, log)
    for i, t in enumerate(times):
        assert got[str(i + 1)].time == t, (i, got[str(i + 1)].time, t)


def test_extreme_times_are_kept_or_refused_whole(client, log):
    """The contract leaves the time range open; a time is either kept exactly or the
    request is refused with INVALID_ARGUMENT naming `time`, storing nothing."""
    for t in (ts(253402300799, 999999999), ts(-62135596800, 0), ts(1, -1), ts(1, 10**9)):
        before = snapshot(client, log)
        try:
            ids = write_and_wait(client, log, [entry("x", insert_id=uid()),
                                               entry("edge", insert_id=uid(), time=t)])
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
            assert "time" in err.details(), err.details()
            assert snapshot(client, log) == before
            continue
        assert by_id(client, log)[ids[1]].time == t


def test_entry_log_id_may_be_empty_or_equal(client, log):
    ids = write_and_wait(client, log, [entry("empty", insert_id=uid()),
                                       entry("equal", insert_id=uid(), log_id=log)])
    assert ids == ["1", "2"]
    for e in list_all(client, log):
        assert e.log_id == log


def test_entry_log_id_of_another_log_is_invalid_and_stores_nothing(client, log):
    other = create_log(client)
    write_and_wait(client, log, texts(2))
    before = snapshot(client, log)
    bad = [entry("ok", insert_id=uid()), entry("wrong log", insert_id=uid(), log_id=other)]
    expect_invalid(write, client, log, bad, field="log_id")
    assert snapshot(client, log) == before
    assert snapshot(client, other) == (0, [])


def test_fields_round_trip(client, log):
    s = struct_pb2.Struct()
    s.update({"k": "v", "n": 1.5, "list": [1, "two", None, True]})
    sent = [entry("text", insert_id="i-1", labels={"a": "b", "c": ""}, severity=SEV.WARNING,
                  time=ts(1600000000, 5)),
            pb.LogEntry(insert_id="i-2", json_payload=s, severity=SEV.EMERGENCY),
            entry("", insert_id="i-3", severity=SEV.TRACE)]
    write_and_wait(client, log, sent)
    got = list_all(client, log)
    by_iid = {e.insert_id: e for e in got}
    for e in sent:
        g = by_iid[e.insert_id]
        assert g.WhichOneof("payload") == e.WhichOneof("payload")
        assert g.text_payload == e.text_payload
        assert g.json_payload == e.json_payload
        assert dict(g.labels) == dict(e.labels)
        assert g.severity == e.severity
        assert g.redacted is False
        assert g.log_id == log
    assert by_iid["i-1"].time == ts(1600000000, 5)


def test_every_severity_in_the_enum_is_accepted(client, log):
    values = [v.number for v in pb.LogEntry.Severity.DESCRIPTOR.values]
    write_and_wait(client, log, [entry(str(v), insert_id=uid(), severity=v) for v in values])
    got = list_all(client, log)
    assert sorted(e.severity for e in got) == sorted(values)


def test_a_bad_entry_rejects_the_whole_request(client, log):
    write_and_wait(client, log, texts(3))
    before = snapshot(client, log)
    good = texts(5)
    bad = good[:2] + [entry("bad", insert_id="x" * 300)] + good[2:]
    expect_invalid(write, client, log, bad, field="insert_id")
    assert snapshot(client, log) == before
    # The good entries were not half-stored: writing them now gives fresh ids 4..8.
    assert write_and_wait(client, log, good) == ["4", "5", "6", "7", "8"]


def test_read_your_writes_list_and_count(client, log):
    for i in range(20):
        ids = write_and_wait(client, log, [entry(f"ryw {i}", insert_id=uid())])
        assert ids == [str(i + 1)]
        got = eventually(lambda: _listed(client, log, i + 1))
        assert got[-1].text_payload == f"ryw {i}"
        eventually(lambda: _count(client, log, i + 1))


def test_request_of_almost_16_mib_is_accepted(client, log):
    """Well under 16 MiB in total, entries under 256 KiB each: gRPC's default 4 MiB
    receive limit must have been raised."""
    big = [entry(chr(ord("a") + i % 26) * (250 * 1024), insert_id=uid()) for i in range(60)]
    assert write_and_wait(client, log, big) == [str(i) for i in range(1, 61)]
    eventually(lambda: _count(client, log, 60))
    # read back in small pages (a default client refuses replies over 4 MiB)
    got = list_all(client, log, page_size=10)
    assert [e.text_payload for e in got] == [e.text_payload for e in big]
