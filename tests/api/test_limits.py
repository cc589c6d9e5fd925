"""Limits and malformed input: INVALID_ARGUMENT naming the field, nothing stored."""
import grpc
import pytest
from google.protobuf import struct_pb2

from helpers import (CMD, PLACEHOLDER, QRY, SEV, create_log, entry, expect_code, expect_invalid,
                     get_log, list_all, list_page, pb, raw_stream, raw_unary, snapshot, texts,
                     uid, with_invalid_utf8, write, write_and_wait)

KIB = 1024
EMOJI = "😀"  # 4 bytes in UTF-8


@pytest.fixture(scope="module")
def limits_log(client):
    """A log with a few entries; every rejected request must leave it as it is."""
    log_id = create_log(client, {"purpose": "limits"})
    write_and_wait(client, log_id, texts(3, "before"))
    return log_id


def rejected_write(c, log_id, entries, field):
    before = snapshot(c, log_id)
    err = expect_invalid(write, c, log_id, entries, field=field)
    assert snapshot(c, log_id) == before, "a rejected write changed the log"
    return err


def many_labels(n):
    return {f"k{i}": "v" for i in range(n)}


# name -> (entries, names the message may use for the field)
BAD_WRITES = {
    "no_entries": (lambda: [], "entries"),
    "10001_entries": (lambda: [entry("x", insert_id=uid()) for _ in range(10001)], "entries"),
    "entry_over_256KiB_text": (lambda: [entry("x" * (256 * KIB), insert_id=uid())],
                               ("entr", "text_payload", "size")),
    "entry_over_256KiB_json": (lambda: [pb.LogEntry(insert_id=uid(), json_payload=_big_struct())],
                               ("entr", "json_payload", "size")),
    "entry_over_256KiB_labels": (lambda: [entry("x", insert_id=uid(), labels={
        f"key{i:03d}": "v" * (4 * KIB) for i in range(64)})], ("entr", "label", "size")),
    "65_labels": (lambda: [entry("x", insert_id=uid(), labels=many_labels(65))], "label"),
    "label_key_129_bytes": (lambda: [entry("x", insert_id=uid(), labels={"k" * 129: "v"})],
                            "label"),
    "label_key_33_emoji": (lambda: [entry("x", insert_id=uid(), labels={EMOJI * 33: "v"})],
                           "label"),
    "label_value_4097_bytes": (lambda: [entry("x", insert_id=uid(),
                                              labels={"k": "v" * (4 * KIB + 1)})], "label"),
    "label_value_1025_emoji": (lambda: [entry("x", insert_id=uid(),
                                              labels={"k": EMOJI * 1025})], "label"),
    "insert_id_257_bytes": (lambda: [entry("x", insert_id="i" * 257)], "insert_id"),
    "insert_id_65_emoji": (lambda: [entry("x", insert_id=EMOJI * 65)], "insert_id"),
    "severity_150": (lambda: [entry("x", insert_id=uid(), severity=150)], "severity"),
    "severity_1000": (lambda: [entry("x", insert_id=uid(), severity=1000)], "severity"),
    "severity_minus_1": (lambda: [entry("x", insert_id=uid(), severity=-1)], "severity"),
    "severity_1": (lambda: [entry("x", insert_id=uid(), severity=1)], "severity"),
    "bad_in_last_of_many": (lambda: texts(500) + [entry("x", insert_id=uid(), severity=901)],
                            "severity"),
}


def _big_struct():
    s = struct_pb2.Struct()
    s.update({"blob": "y" * (256 * KIB)})
    return s


@pytest.mark.parametrize("case", list(BAD_WRITES))
def test_write_over_a_limit_is_invalid_and_stores_nothing(client, limits_log, case):
    make, field = BAD_WRITES[case]
    rejected_write(client, limits_log, make(), field)


GOOD_WRITES = {
    "10000_entries": lambda: [entry("x", insert_id=uid()) for _ in range(10000)],
    "entry_of_250KiB": lambda: [entry("x" * (250 * KIB), insert_id=uid())],
    "64_labels": lambda: [entry("x", insert_id=uid(), labels=many_labels(64))],
    "label_key_128_bytes": lambda: [entry("x", insert_id=uid(), labels={"k" * 128: "v"})],
    "label_key_32_emoji": lambda: [entry("x", insert_id=uid(), labels={EMOJI * 32: "v"})],
    "label_value_4096_bytes": lambda: [entry("x", insert_id=uid(), labels={"k": "v" * 4096})],
    "label_value_1024_emoji": lambda: [entry("x", insert_id=uid(), labels={"k": EMOJI * 1024})],
    "insert_id_256_bytes": lambda: [entry("x", insert_id=uid() + "i" * 224)],
    "insert_id_64_emoji": lambda: [entry("x", insert_id=EMOJI * 63 + uid()[:4])],
}


@pytest.mark.parametrize("case", list(GOOD_WRITES))
def test_write_at_a_limit_is_accepted(client, case):
    log_id = create_log(client)
    batch = GOOD_WRITES[case]()
    ids = write_and_wait(client, log_id, batch)
    assert ids == [str(i) for i in range(1, len(batch) + 1)]
    assert get_log(client, log_id).entry_count == len(batch)
    got = list_all(client, log_id, page_size=1000)
    assert [(e.insert_id, dict(e.labels), e.text_payload) for e in got] == \
        [(e.insert_id, dict(e.labels), e.text_payload) for e in batch]


# ---------------------------------------------------------------- invalid UTF-8

def _utf8_write(log_id, where):
    e = entry("fine", insert_id=uid())
    if where == "text_payload":
        e.text_payload = "a" + PLACEHOLDER + "b"
    elif where == "label_key":
        e.labels[PLACEHOLDER] = "v"
    elif where == "label_value":
        e.labels["k"] = PLACEHOLDER
    elif where == "insert_id":
        e.insert_id = PLACEHOLDER
    elif where == "json_string":
        e.json_payload.update({"k": ["ok", {"deep": PLACEHOLDER}]})
    elif where == "json_key":
        e.json_payload.update({PLACEHOLDER: 1})
    elif where == "entry_log_id":
        e.log_id = PLACEHOLDER
    return pb.WriteLogEntriesRequest(log_id=log_id, entries=texts(2) + [e])


UTF8_FIELDS = {"text_payload": "text_payload", "label_key": "label", "label_value": "label",
               "insert_id": "insert_id", "json_string": "json_payload",
               "json_key": "json_payload", "entry_log_id": "log_id"}


@pytest.mark.parametrize("where", list(UTF8_FIELDS))
def test_write_with_invalid_utf8_is_invalid_and_stores_nothing(client, limits_log, where):
    before = snapshot(client, limits_log)
    data = with_invalid_utf8(_utf8_write(limits_log, where))
    expect_invalid(raw_unary, client, CMD + "WriteLogEntries", data, field=UTF8_FIELDS[where])
    assert snapshot(client, limits_log) == before


def test_invalid_utf8_in_request_log_id(client, limits_log):
    before = snapshot(client, limits_log)
    req = pb.WriteLogEntriesRequest(log_id=limits_log[:-len(PLACEHOLDER)] + PLACEHOLDER,
                                    entries=texts(1))
    expect_invalid(raw_unary, client, CMD + "WriteLogEntries", with_invalid_utf8(req),
                   field="log_id")
    assert snapshot(client, limits_log) == before


def test_invalid_utf8_in_create_log_labels(client):
    for labels, in [({PLACEHOLDER: "v"},), ({"k": PLACEHOLDER},)]:
        data = with_invalid_utf8(pb.CreateLogRequest(labels=labels))
        expect_invalid(raw_unary, client, CMD + "CreateLog", data, field="label")


def test_invalid_utf8_in_revoke_reason_revokes_nothing(client, limits_log):
    before = snapshot(client, limits_log)
    req = pb.RevokeLogEntriesRequest(log_id=limits_log, entry_ids=["1"], reason=PLACEHOLDER)
    expect_invalid(raw_unary, client, CMD + "RevokeLogEntries", with_invalid_utf8(req),
                   field="reason")
    assert snapshot(client, limits_log) == before


def test_invalid_utf8_in_text_contains(client, limits_log):
    req = pb.ListLogEntriesRequest(log_id=limits_log, text_contains=PLACEHOLDER)
    expect_invalid(raw_unary, client, QRY + "ListLogEntries", with_invalid_utf8(req),
                   field="text_contains")


def test_invalid_utf8_in_page_token(client, limits_log):
    req = pb.ListLogEntriesRequest(log_id=limits_log, page_token=PLACEHOLDER)
    expect_invalid(raw_unary, client, QRY + "ListLogEntries", with_invalid_utf8(req),
                   field="page_token")


# ---------------------------------------------------------------- other fields

@pytest.mark.parametrize("size", [-1, 1001, -2147483648, 2147483647])
def test_page_size_out_of_range(client, limits_log, size):
    expect_invalid(list_page, client, limits_log, page_size=size, field="page_size")


def test_page_size_1000_and_0_are_fine(client, limits_log):
    assert len(list_page(client, limits_log, page_size=1000).entries) == 3
    assert len(list_page(client, limits_log, page_size=0).entries) == 3


@pytest.mark.parametrize("sev", [150, 1000, -1, 901])
def test_min_severity_outside_the_enum(client, limits_log, sev):
    expect_invalid(list_page, client, limits_log, min_severity=sev, field="severity")


def test_create_log_label_limits(client):
    for labels in [many_labels(65), {"k" * 129: "v"}, {"k": "v" * (4 * KIB + 1)}]:
        expect_invalid(client.call, client.cmd.CreateLog, pb.CreateLogRequest(labels=labels),
                       field="label")
    ok = pb.CreateLogRequest(labels={**many_labels(63), "k" * 128: "v" * 4096})
    assert len(client.call(client.cmd.CreateLog, ok).log.labels) == 64


GARBAGE = [b"\x0a\xff\x01", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
           b"\x12\x05ab", b"\x07"]
UNARY = [CMD + "CreateLog", CMD + "DeleteLog", CMD + "WriteLogEntries",
         CMD + "RevokeLogEntries", QRY + "ListLogEntries", QRY + "GetLog"]


@pytest.mark.parametrize("path", UNARY)
@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_undecodable_request_is_invalid_argument(client, path, garbage):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, raw_unary, client, path, garbage)


@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_undecodable_tail_request_is_invalid_argument(client, garbage):
    def read():
        for _ in raw_stream(client, QRY + "TailLogEntries", garbage):
            raise AssertionError("tail streamed on garbage")
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, read)


def test_garbage_after_a_valid_prefix_stores_nothing(client, limits_log):
    before = snapshot(client, limits_log)
    good = pb.WriteLogEntriesRequest(log_id=limits_log, entries=texts(2)).SerializeToString()
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, raw_unary, client, CMD + "WriteLogEntries",
                good + b"\x12\x40" + b"\x0a\x02" * 4)
    assert snapshot(client, limits_log) == before


def test_request_over_16_mib_is_refused_by_the_transport(client, limits_log):
    before = snapshot(client, limits_log)
    big = [entry(chr(97 + i % 26) * (250 * KIB), insert_id=uid()) for i in range(70)]
    assert pb.WriteLogEntriesRequest(log_id=limits_log, entries=big).ByteSize() > 16 * KIB * KIB
    expect_code(grpc.StatusCode.RESOURCE_EXHAUSTED, write, client, limits_log, big)
    assert snapshot(client, limits_log) == before
    # the server is still fine afterwards
    assert len(list_page(client, limits_log).entries) == 3


def test_min_severity_unspecified_means_no_filter(client, limits_log):
    assert len(list_page(client, limits_log, min_severity=SEV.UNSPECIFIED).entries) == 3


def _entry_of_size(n, with_insert_id):
    e = entry("", insert_id=uid() if with_insert_id else None, labels={"k": "v"},
              severity=SEV.INFO, time={"seconds": 1700000000, "nanos": 1})
    e.text_payload = "x" * (n - e.ByteSize() - 4)
    while e.ByteSize() < n:
        e.text_payload += "x"
    while e.ByteSize() > n:
        e.text_payload = e.text_payload[:-1]
    assert e.ByteSize() == n
    return e


@pytest.mark.parametrize("with_insert_id", [True, False])
def test_entry_size_limit_is_exactly_256_KiB_as_sent(client, with_insert_id):
    log_id = create_log(client)
    ok = _entry_of_size(256 * KIB, with_insert_id)
    write_and_wait(client, log_id, [ok], auto_insert_id=False)
    assert get_log(client, log_id).entry_count == 1
    before = snapshot(client, log_id)
    rejected_write(client, log_id, [_entry_of_size(256 * KIB + 1, with_insert_id)],
                   ("entr", "size"))
    assert snapshot(client, log_id) == before


def _request_of_size(log_id, n):
    """A WriteLogEntriesRequest of exactly n bytes, every entry within 256 KiB."""
    r = pb.WriteLogEntriesRequest(log_id=log_id, entries=[
        entry("x" * 262101, insert_id=uid()) for _ in range(63)])
    r.entries.append(entry("", insert_id=uid()))
    r.entries[-1].text_payload = "y" * max(0, n - r.ByteSize() - 4)
    while r.ByteSize() < n:
        r.entries[-1].text_payload += "y"
    while r.ByteSize() > n:
        r.entries[-1].text_payload = r.entries[-1].text_payload[:-1]
    assert r.ByteSize() == n and all(e.ByteSize() <= 256 * KIB for e in r.entries)
    return r


def test_request_size_limit_is_exactly_16_MiB(client):
    log_id = create_log(client)
    over = _request_of_size(log_id, 16 * KIB * KIB + 1)
    expect_code(grpc.StatusCode.RESOURCE_EXHAUSTED, client.call, client.cmd.WriteLogEntries,
                over)
    assert snapshot(client, log_id) == (0, [])
    at = _request_of_size(log_id, 16 * KIB * KIB)
    assert write_and_wait(client, log_id, list(at.entries)) == [str(i) for i in range(1, 65)]
