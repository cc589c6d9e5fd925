"""WriteLogEntriesRequest.wait (docs/api.md, "Waiting"): every level answers, an unknown one
is INVALID_ARGUMENT naming `wait` with nothing stored, and `annalsd serve --default-wait`.

Embedded mode meets DURABLE, SEQUENCED and QUERYABLE at once: every level returns the ids,
and the entries are listable as soon as the reply arrives. In distributed mode, DURABLE may
answer without ids and only QUERYABLE promises read-your-writes."""
import os
import subprocess
import tempfile

import grpc
import pytest

from conftest import BIN, Client, Server
from helpers import (CMD, DISTRIBUTED, create_log, eventually, expect_invalid, get_log, list_all,
                     pb, raw_unary, texts, write)

W = pb.WriteLogEntriesRequest
LEVELS = [W.WAIT_UNSPECIFIED, W.WAIT_DURABLE, W.WAIT_SEQUENCED, W.WAIT_QUERYABLE]


def test_wait_enum_is_the_contract():
    assert W.Wait.Name(0) == "WAIT_UNSPECIFIED"
    assert W.Wait.Name(1) == "WAIT_DURABLE"
    assert W.Wait.Name(2) == "WAIT_SEQUENCED"
    assert W.Wait.Name(3) == "WAIT_QUERYABLE"
    assert W.DESCRIPTOR.fields_by_name["wait"].number == 3


def check_level(c, level, default=W.WAIT_QUERYABLE):
    """`default` is the server's --default-wait, which UNSPECIFIED stands for."""
    lg = create_log(c)
    batch = texts(3)
    r = write(c, lg, batch) if level == W.WAIT_UNSPECIFIED else c.call(
        c.cmd.WriteLogEntries, W(log_id=lg, entries=batch, wait=level))
    effective = default if level == W.WAIT_UNSPECIFIED else level
    if DISTRIBUTED and effective == W.WAIT_DURABLE and not r.entry_ids:
        eventually(lambda: len(list_all(c, lg)) == 3)
        return
    assert list(r.entry_ids) == ["1", "2", "3"], f"wait={W.Wait.Name(level)}: {r.entry_ids}"
    if DISTRIBUTED and effective in (W.WAIT_DURABLE, W.WAIT_SEQUENCED):
        eventually(lambda: len(list_all(c, lg)) == 3)
        return
    # Read-your-writes: listable as soon as the reply arrived, on the first try.
    got = list_all(c, lg)
    assert [e.entry_id for e in got] == ["1", "2", "3"]
    assert [e.text_payload for e in got] == [e.text_payload for e in batch]
    assert get_log(c, lg).entry_count == 3


@pytest.mark.parametrize("level", LEVELS, ids=lambda v: W.Wait.Name(v))
def test_every_level_returns_ids_and_entries_are_listable(client, level):
    check_level(client, level)


@pytest.mark.parametrize("value", [4, 7, 1000, -1])
def test_unknown_wait_is_invalid_and_stores_nothing(client, value):
    lg = create_log(client)
    # Built by hand: an unknown enum number, exactly as an old or foreign client sends it.
    body = W(log_id=lg, entries=texts(2)).SerializeToString()
    body += b"\x18" + _varint(value)
    expect_invalid(raw_unary, client, CMD + "WriteLogEntries", body, field="wait")
    assert list_all(client, lg) == []
    assert get_log(client, lg).entry_count == 0


def test_wait_checked_before_anything_else_is_stored(client):
    """A valid write after the refused one gets id 1: the refused one took no id."""
    lg = create_log(client)
    body = W(log_id=lg, entries=texts(1)).SerializeToString() + b"\x18\x07"
    expect_invalid(raw_unary, client, CMD + "WriteLogEntries", body, field="wait")
    r = client.call(client.cmd.WriteLogEntries, W(log_id=lg, entries=texts(1),
                                                  wait=W.WAIT_QUERYABLE))
    assert list(r.entry_ids) == ["1"]


def _varint(v):
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# ------------------------------------------------------------- annalsd serve --default-wait

@pytest.fixture(scope="module")
def durable_server():
    with tempfile.TemporaryDirectory(prefix="annals-wait-") as d:
        s = Server(d, extra_args=["--default-wait", "durable"])
        key = s.tenant("wait-tenant")
        s.start()
        c = Client(s, key)
        try:
            yield c
        finally:
            c.close()
            rc = s.stop()
            assert rc == 0, "annalsd did not exit cleanly: " + \
                open(s.log_path, errors="replace").read()[-3000:]


@pytest.mark.parametrize("level", LEVELS, ids=lambda v: W.Wait.Name(v))
def test_default_wait_durable_still_answers_correctly(durable_server, level):
    check_level(durable_server, level, default=W.WAIT_DURABLE)


def test_default_wait_durable_revoke_and_delete(durable_server):
    c = durable_server
    lg = create_log(c)
    r = write(c, lg, texts(2))
    assert list(r.entry_ids) == ["1", "2"] or DISTRIBUTED
    c.call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(log_id=lg, entry_ids=["1"],
                                                               reason="test"))
    c.call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=lg))
    with pytest.raises(grpc.RpcError) as ei:
        get_log(c, lg)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("value", ["fast", "", "QUERYABLE"])
def test_bad_default_wait_is_a_usage_error_naming_the_flag(value):
    with tempfile.TemporaryDirectory(prefix="annals-wait-") as d:
        out = subprocess.run([os.path.join(BIN, "annalsd"), "serve", "--data", d,
                              "--default-wait", value],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--default-wait" in out.stderr


def test_default_wait_needs_a_value():
    with tempfile.TemporaryDirectory(prefix="annals-wait-") as d:
        out = subprocess.run([os.path.join(BIN, "annalsd"), "serve", "--data", d,
                              "--default-wait"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--default-wait" in out.stderr
