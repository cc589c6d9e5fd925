"""CreateLog, GetLog, DeleteLog; unknown and malformed log ids on every RPC."""
import time
import uuid

import grpc
import pytest

from helpers import (LOG_RPCS, create_log, eventually, expect_code, expect_invalid, get_log,
                     list_all, log_rpcs, pb, texts, write_and_wait)

NOT_FOUND = grpc.StatusCode.NOT_FOUND


def test_create_log_returns_uuid_labels_time_and_zero_count(client):
    before = time.time()
    labels = {"pipeline": "etl-7", "run": "2024-01-15-001", "empty": ""}
    r = client.call(client.cmd.CreateLog, pb.CreateLogRequest(labels=labels))
    after = time.time()
    log = r.log
    assert str(uuid.UUID(log.id)) == log.id.lower() and len(log.id) == 36, log.id
    assert dict(log.labels) == labels
    assert log.HasField("create_time")
    assert before - 2 <= log.create_time.ToMicroseconds() / 1e6 <= after + 2
    assert log.entry_count == 0


def test_log_ids_are_distinct(client):
    ids = {create_log(client) for _ in range(20)}
    assert len(ids) == 20


def test_get_log_returns_what_create_returned(client):
    r = client.call(client.cmd.CreateLog, pb.CreateLogRequest(labels={"a": "1", "b": "2"}))
    got = get_log(client, r.log.id)
    assert got.id == r.log.id
    assert dict(got.labels) == {"a": "1", "b": "2"}
    assert got.create_time == r.log.create_time
    assert got.entry_count == 0


def test_get_log_counts_entries(client, log):
    write_and_wait(client, log, texts(3))
    write_and_wait(client, log, texts(4))
    eventually(lambda: _assert_count(client, log, 7))


def _assert_count(c, log_id, n):
    assert get_log(c, log_id).entry_count == n


def test_delete_log_then_every_call_is_not_found(client):
    log = create_log(client)
    write_and_wait(client, log, texts(5))
    client.call(client.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log))
    for name, call in log_rpcs(client, log).items():
        err = expect_code(NOT_FOUND, call)
        assert err is not None, name


def test_delete_log_leaves_other_logs_alone(client):
    keep, drop = create_log(client), create_log(client)
    write_and_wait(client, keep, texts(3, "keep"))
    write_and_wait(client, drop, texts(3, "drop"))
    client.call(client.cmd.DeleteLog, pb.DeleteLogRequest(log_id=drop))
    got = list_all(client, keep)
    assert [e.text_payload for e in got] == ["keep 0", "keep 1", "keep 2"]
    assert get_log(client, keep).entry_count == 3


@pytest.mark.parametrize("rpc", LOG_RPCS)
def test_unknown_log_is_not_found(client, rpc):
    expect_code(NOT_FOUND, log_rpcs(client, str(uuid.uuid4()))[rpc])


BAD_LOG_IDS = ["", "not-a-uuid", "12345", "'; DROP TABLE logs; --",
               "00000000-0000-0000-0000-00000000000g", "{" + str(uuid.uuid4()) + "}x",
               str(uuid.uuid4()) + "0", "../" + str(uuid.uuid4())]


@pytest.mark.parametrize("rpc", LOG_RPCS)
@pytest.mark.parametrize("bad", BAD_LOG_IDS, ids=range(len(BAD_LOG_IDS)))
def test_log_id_not_a_uuid_is_invalid_argument(client, rpc, bad):
    expect_invalid(log_rpcs(client, bad)[rpc], field="log_id")


def test_entry_count_is_kept_per_log(client):
    a, b = create_log(client), create_log(client)
    write_and_wait(client, a, texts(2))
    write_and_wait(client, b, texts(5))
    ids = write_and_wait(client, a, texts(1))
    assert ids == ["3"]
    eventually(lambda: _assert_count(client, a, 3))
    eventually(lambda: _assert_count(client, b, 5))


def test_create_log_labels_hostile_round_trip(client):
    labels = {"k\x00nul": "v\x00nul", "'; DROP TABLE logs; --": "\x1b[2J\r\n",
              "emoji😀": "𝄞" * 10}
    r = client.call(client.cmd.CreateLog, pb.CreateLogRequest(labels=labels))
    assert dict(r.log.labels) == labels
    assert dict(get_log(client, r.log.id).labels) == labels


def test_many_logs_do_not_mix(client):
    logs = [create_log(client) for _ in range(5)]
    for i, log_id in enumerate(logs):
        write_and_wait(client, log_id, texts(i + 1, prefix=f"log{i}"))
    for i, log_id in enumerate(logs):
        got = list_all(client, log_id)
        assert [e.text_payload for e in got] == [f"log{i} {j}" for j in range(i + 1)]
        assert all(e.log_id == log_id for e in got)
