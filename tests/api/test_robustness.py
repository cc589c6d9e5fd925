"""Hostile or clumsy clients: the server stays correct and keeps serving everyone else.

The module's server fixture checks at the end that SIGTERM still exits 0, so a leaked call
or a stuck thread from any of these fails there too.
"""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import grpc
from annals.v1 import annals_pb2_grpc as pbg

from conftest import PY
from helpers import (CMD, PLACEHOLDER, TailReader, assert_dense, create_log, entry,
                     expect_code, get_log, list_all, pb, raw_unary, snapshot, texts, uid, write,
                     write_and_wait)


def test_tcp_garbage_and_stalled_connections_do_not_hurt(server, client, log):
    socks = []
    for junk in (b"\x00" * 64, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096),
                 b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512)):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(junk)
        s.close()
    for _ in range(20):  # connections that say the HTTP/2 preface and then nothing
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        socks.append(s)
    try:
        assert write_and_wait(client, log, texts(3)) == ["1", "2", "3"]
        assert len(list_all(client, log)) == 3
    finally:
        for s in socks:
            s.close()


def test_calls_cut_off_by_their_deadline_are_all_or_nothing(client, log):
    reqs = []
    for i in range(30):
        es = [entry(f"d{i} {k}", insert_id=uid()) for k in range(200)]
        reqs.append(es)
        try:
            write(client, log, es, timeout=0.002 * (i % 5 + 1))
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED,
                                grpc.StatusCode.CANCELLED), e
    # every request's entries are all stored or none; retrying completes them once
    got = {e.insert_id: e for e in list_all(client, log)}
    for es in reqs:
        n = sum(e.insert_id in got for e in es)
        assert n in (0, len(es)), f"a write cut off by its deadline is half stored ({n})"
    for es in reqs:
        write_and_wait(client, log, es)
    got = list_all(client, log)
    assert_dense(got, 30 * 200)
    assert len({e.insert_id for e in got}) == 30 * 200


def test_a_tail_that_never_reads_does_not_block_writers(client, log):
    t = client.query.TailLogEntries(pb.TailLogEntriesRequest(log_id=log, after_entry_id="0"),
                                    metadata=client.md, timeout=600)
    # Nobody reads t: its flow-control window fills up; writers must not wait for it.
    big = [entry(chr(97 + i % 26) * (200 * 1024), insert_id=uid()) for i in range(100)]
    for k in range(0, 100, 20):
        write_and_wait(client, log, big[k:k + 20])
    assert get_log(client, log).entry_count == 100
    # and when it finally reads, it gets everything in order
    n = 0
    for resp in t:
        for e in resp.entries:
            n += 1
            assert e.entry_id == str(n) and e.text_payload == big[n - 1].text_payload
        if n == 100:
            break
    t.cancel()


def test_clients_that_vanish_mid_tail_leave_no_trace(server, client, log):
    """A process with open tails is killed (no cancel, no goodbye); the server carries on."""
    write_and_wait(client, log, texts(5))
    code = textwrap.dedent(f"""
        import sys, time, grpc
        sys.path.insert(0, {PY!r})
        from annals.v1 import annals_pb2 as pb, annals_pb2_grpc as pbg
        md = (("authorization", "Bearer {client.key}"),)
        chans = [grpc.insecure_channel("{server.addr}") for _ in range(5)]
        calls = []
        for ch in chans:
            q = pbg.LoggingQueryServiceStub(ch)
            for _ in range(4):
                c = q.TailLogEntries(pb.TailLogEntriesRequest(log_id="{log}",
                                                              after_entry_id="0"), metadata=md)
                next(iter(c))
                calls.append(c)
        print("ready", flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert write_and_wait(client, log, texts(2)) == ["6", "7"]
    t = TailReader(client, log, "5")
    try:
        assert [e.entry_id for e in t.take(2)] == ["6", "7"]
    finally:
        t.cancel()


def test_many_connections_at_once(server, client):
    log_id = create_log(client)
    errors = []

    def one(i):
        ch = grpc.insecure_channel(server.addr)
        try:
            cmd = pbg.LoggingCommandServiceStub(ch)
            r = cmd.WriteLogEntries(pb.WriteLogEntriesRequest(
                log_id=log_id, entries=[entry(f"c{i}", insert_id=f"c{i}")]),
                metadata=client.md, timeout=60)
            assert len(r.entry_ids) == 1
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        finally:
            ch.close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    got = list_all(client, log_id)
    assert_dense(got, 100)
    assert sorted(e.insert_id for e in got) == sorted(f"c{i}" for i in range(100))


def test_unknown_method_and_wrong_service(client):
    for path in ("/annals.v1.LoggingCommandService/Nope", "/annals.v1.Nope/CreateLog",
                 "/grpc.health.v1.Health/Nope", "/grpc.health.v2.Health/Check",
                 "/" + PLACEHOLDER):
        m = client.channel.unary_unary(path, request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
        try:
            m(b"", metadata=client.md, timeout=30)
            raise AssertionError(f"{path} answered OK")
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAUTHENTICATED), \
                (path, e.code())
    assert create_log(client)


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(tag, payload):
    return tag + _varint(len(payload)) + payload


def _deep_json_write(log_id, depth):
    """WriteLogEntriesRequest whose one entry's json_payload nests lists `depth` deep,
    made by hand: a client library would refuse to build it."""
    inner = b"\x08\x00"  # Value{null_value: NULL_VALUE}
    prefixes, n = [], len(inner)
    for _ in range(depth):  # Value{list_value: ListValue{values: [v]}}, built outside-in
        lv = b"\x0a" + _varint(n)
        n += len(lv)
        v = b"\x32" + _varint(n)
        n += len(v)
        prefixes.append(v + lv)
    v = b"".join(reversed(prefixes)) + inner
    struct = _ld(b"\x0a", _ld(b"\x0a", b"k") + _ld(b"\x12", v))  # Struct{fields: {"k": v}}
    e = _ld(b"\x12", uid().encode()) + _ld(b"\xfa\x01", struct)  # LogEntry
    return _ld(b"\x0a", log_id.encode()) + _ld(b"\x12", e)


def test_deeply_nested_requests_are_refused_and_the_server_survives(client, log):
    before = snapshot(client, log)
    for depth in (1000, 100_000):
        expect_code(grpc.StatusCode.INVALID_ARGUMENT, raw_unary, client,
                    CMD + "WriteLogEntries", _deep_json_write(log, depth))
    # unknown fields nested as groups, and as length-delimited blobs
    groups = b"\x1b" * 200_000 + b"\x1c" * 200_000  # field 3 start-group ... end-group
    for data in (_ld(b"\x0a", log.encode()) + groups,
                 _ld(b"\x0a", log.encode()) + b"\x1b" * 500_000):
        try:
            raw_unary(client, CMD + "WriteLogEntries", data)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert snapshot(client, log) == before
    # the positive control: the same construction, shallow, is a valid write
    raw_unary(client, CMD + "WriteLogEntries", _deep_json_write(log, 20))
    [e] = list_all(client, log)
    v = e.json_payload["k"]
    for _ in range(20):
        v = v[0]
    assert v is None


def test_tails_cancelled_while_opening_leave_no_trace(server, client, log):
    """Tails cancelled within a few milliseconds of being opened, many times over.

    A cancel that lands while the server is still opening the tail once leaked the call
    and its store watch, and SIGTERM then waited for it forever (found in review): the
    module's server fixture stops the server at the end and requires exit 0.
    """
    import random
    import time
    rnd = random.Random(7)
    for _ in range(400):
        it = client.query.TailLogEntries(pb.TailLogEntriesRequest(log_id=log),
                                         metadata=client.md)
        time.sleep(rnd.random() * 0.003)
        it.cancel()
    # the server still serves, and tails still work
    reader = TailReader(client, log, "0")
    try:
        assert write_and_wait(client, log, texts(2)) == ["1", "2"]
        assert [e.entry_id for e in reader.take(2)] == ["1", "2"]
    finally:
        reader.cancel()
