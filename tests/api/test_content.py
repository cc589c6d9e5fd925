"""Hostile but valid content is stored and returned byte for byte; JSON payloads round-trip."""
import math

import pytest
from google.protobuf import struct_pb2

from helpers import (TailReader, create_log, entry, get_log, list_all, pb, uid, write_and_wait)

HOSTILE = [
    "\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b[2J\x1b[H",
    "crlf\r\nlf\ncr\r\ttab\x0bvt\x0cff",
    "nul\x00in\x00the\x00middle\x00",
    "\x00",
    "'; DROP TABLE x; --",
    "\"; DROP KEYSPACE annals; --",
    "' OR '1'='1",
    "$$; SELECT pg_sleep(0); $$",
    "\\x00 \\n \\' \\\" \\\\",
    "%s%s%n%x%p %d",
    "<script>alert(1)</script>&amp;",
    "😀🚀👩‍👩‍👧‍👦",
    "𝄞 𠜎 𝕏 \U0010FFFF",
    "é vs e\u0301",
    "\u202eRTL override\u202c \ufeffBOM \u200bZW",
    "\x7f\x01\x02\x1f",
    " leading and trailing spaces ",
    "line\n" * 1000,
    "ü" * 30000,
]


def check_round_trip(client, log_id, sent):
    got = {e.insert_id: e for e in list_all(client, log_id)}
    assert len(got) == len(sent)
    for e in sent:
        g = got[e.insert_id]
        assert g.text_payload.encode() == e.text_payload.encode()
        assert g.WhichOneof("payload") == e.WhichOneof("payload")
        assert g.json_payload == e.json_payload
        assert dict(g.labels) == dict(e.labels)


@pytest.mark.parametrize("i", range(len(HOSTILE)))
def test_hostile_text_payload_round_trips(client, log, i):
    sent = [entry(HOSTILE[i], insert_id=uid())]
    write_and_wait(client, log, sent)
    check_round_trip(client, log, sent)


def test_hostile_labels_round_trip(client, log):
    sent = []
    for i, s in enumerate(HOSTILE):
        k = s.encode()[:128].decode("utf-8", "ignore")  # keys stay within 128 bytes
        v = s.encode()[:4096].decode("utf-8", "ignore")
        sent.append(entry(f"labels {i}", insert_id=uid(), labels={k: v, "plain": s[:50]}))
    write_and_wait(client, log, sent)
    check_round_trip(client, log, sent)


def test_hostile_insert_ids_round_trip_and_dedup_byte_exactly(client, log):
    iids = [s.encode()[:256].decode("utf-8", "ignore") for s in HOSTILE[:17]]
    iids = list(dict.fromkeys(iids))
    sent = [entry(f"iid {i}", insert_id=iid) for i, iid in enumerate(iids)]
    ids = write_and_wait(client, log, sent)
    assert ids == [str(i) for i in range(1, len(sent) + 1)]
    check_round_trip(client, log, sent)
    assert write_and_wait(client, log, sent) == ids


@pytest.mark.parametrize("pair", [
    ("x\x00a", "x\x00b"),
    ("x", "x\x00"),
    ("abc", "ABC"),
    ("abc", "abc "),
    ("é", "e\u0301"),
    ("a'b", "a''b"),
    ("a%", "ab"),
    ("a_", "ab"),
    ("1", "01"),
])
def test_insert_ids_that_differ_only_in_bytes_are_distinct(client, log, pair):
    a, b = pair
    assert write_and_wait(client, log, [entry("a", insert_id=a)]) == ["1"]
    assert write_and_wait(client, log, [entry("b", insert_id=b)]) == ["2"]
    got = list_all(client, log)
    assert [(e.insert_id, e.text_payload) for e in got] == [(a, "a"), (b, "b")]


def test_empty_text_payload_is_kept_as_text(client, log):
    sent = [entry("", insert_id=uid())]
    write_and_wait(client, log, sent)
    [g] = list_all(client, log)
    assert g.WhichOneof("payload") == "text_payload" and g.text_payload == ""


def test_hostile_content_in_tail(client, log):
    sent = [entry(s, insert_id=uid(), labels={"k": s[:64]}) for s in HOSTILE[:12]]
    write_and_wait(client, log, sent)
    t = TailReader(client, log, "0")
    try:
        got = t.take(len(sent))
    finally:
        t.cancel()
    assert [(e.text_payload, dict(e.labels)) for e in got] == \
        [(e.text_payload, dict(e.labels)) for e in sent]


def _struct(d):
    s = struct_pb2.Struct()
    s.update(d)
    return s


JSONS = [
    {},
    {"null": None, "t": True, "f": False, "zero": 0, "neg": -1.5, "big": 2.0 ** 53,
     "tiny": 5e-324, "huge": 1.7976931348623157e308, "third": 1 / 3, "negzero": -0.0},
    {"nested": {"a": {"b": {"c": {"d": [1, [2, [3, [4, {"e": None}]]]]}}}}},
    {"emptylist": [], "emptyobj": {}, "list_of_empty": [[], {}, "", None]},
    {"mixed": [1, "two", 3.5, True, None, {"k": "v"}, ["x"]]},
    {"'; DROP TABLE x; --": "\x00\x1b[31m\r\n", "😀": "𝄞", "": "empty key", "a.b": {"$ref": "#"}},
    {"unicode\u202e": "\ufeff", "quote\"": "back\\slash", "nul\x00key": 1},
    {f"k{i}": i for i in range(200)},
    {"deep": [[[[[[[[[[[[[[[[[[[["bottom"]]]]]]]]]]]]]]]]]]]]},
]


@pytest.mark.parametrize("i", range(len(JSONS)))
def test_json_payload_round_trips_exactly(client, log, i):
    e = pb.LogEntry(insert_id=uid(), json_payload=_struct(JSONS[i]))
    write_and_wait(client, log, [e])
    [g] = list_all(client, log)
    assert g.WhichOneof("payload") == "json_payload"
    assert g.json_payload == e.json_payload
    # byte-identical: same deterministic encoding
    assert g.json_payload.SerializeToString(deterministic=True) == \
        e.json_payload.SerializeToString(deterministic=True)
    # -0.0 keeps its sign, integers stay exact
    if "negzero" in JSONS[i]:
        assert math.copysign(1, g.json_payload["negzero"]) == -1
        assert g.json_payload["big"] == 2.0 ** 53


def test_many_hostile_entries_in_one_request(client):
    log_id = create_log(client)
    sent = [entry(HOSTILE[i % len(HOSTILE)][:500] + f" #{i}", insert_id=uid(),
                  labels={"i": str(i), HOSTILE[i % 8][:20] or "k": "v"}) for i in range(500)]
    ids = write_and_wait(client, log_id, sent)
    assert ids == [str(i) for i in range(1, 501)]
    check_round_trip(client, log_id, sent)
    assert get_log(client, log_id).entry_count == 500
