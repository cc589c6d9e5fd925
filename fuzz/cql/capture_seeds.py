#!/usr/bin/env python3
"""Captures real CQL v4 response frames from a running Cassandra as fuzz seeds.

    python3 fuzz/cql/capture_seeds.py 127.0.0.1 9042 cassandra cassandra fuzz/cql/corpus

Speaks just enough of the protocol by hand (STARTUP, SASL PLAIN, QUERY,
PREPARE) to make the server answer with many kinds of frames.
"""
import socket
import struct
import sys


def frame(stream, opcode, body):
    return struct.pack(">BBhBi", 4, 0, stream, opcode, len(body)) + body


def lstr(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def sstr(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def recv_frame(sock):
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out
    head = exact(9)
    (length,) = struct.unpack(">i", head[5:9])
    return head + exact(length)


def main():
    host, port, user, pw, outdir = sys.argv[1:6]
    sock = socket.create_connection((host, int(port)))
    saved = 0

    def ask(opcode, body, name):
        nonlocal saved
        sock.sendall(frame(1, opcode, body))
        f = recv_frame(sock)
        with open(f"{outdir}/real_{name}", "wb") as fh:
            fh.write(f)
        saved += 1
        return f

    ask(0x05, b"", "supported")
    ask(0x01, struct.pack(">H", 1) + sstr("CQL_VERSION") + sstr("3.0.0"), "authenticate")
    tok = b"\0" + user.encode() + b"\0" + pw.encode()
    ask(0x0F, struct.pack(">i", len(tok)) + tok, "auth_success")

    def query(q, name, flags=0, extra=b""):
        return ask(0x07, lstr(q) + struct.pack(">HB", 1, flags) + extra, name)

    query("SELECT * FROM system.local", "rows_system_local")
    query("SELECT * FROM system_schema.columns", "rows_paged", 0x04, struct.pack(">i", 5))
    query("SELECT * FROM system_schema.tables", "rows_tables", 0x04, struct.pack(">i", 3))
    query("SELECT * FROM system.peers", "rows_empty")
    query("SELEC nothing", "err_syntax")
    query("SELECT * FROM nosuch.table", "err_invalid")
    query("CREATE KEYSPACE IF NOT EXISTS fuzzseed WITH replication = "
          "{'class': 'SimpleStrategy', 'replication_factor': 1}", "schema_ks")
    query("CREATE KEYSPACE fuzzseed WITH replication = "
          "{'class': 'SimpleStrategy', 'replication_factor': 1}", "err_already_exists")
    query("USE fuzzseed", "set_keyspace")
    query("CREATE TABLE IF NOT EXISTS fuzzseed.t (k text PRIMARY KEY, m map<text,text>, "
          "l list<int>, s set<uuid>, tu frozen<tuple<int,text>>, b blob, d decimal, "
          "i inet, ts timestamp, v varint, x counter)", "schema_table_or_err")
    query("CREATE TABLE IF NOT EXISTS fuzzseed.u (k text PRIMARY KEY, m map<text,text>, "
          "l list<int>, s set<uuid>, tu frozen<tuple<int,text>>, b blob, ts timestamp)",
          "schema_table")
    query("INSERT INTO fuzzseed.u (k, m, l, s, tu, b, ts) VALUES ('a', {'x':'y','z':''}, "
          "[1,2,3], {uuid()}, (1, 'one'), 0xcafe, toTimestamp(now()))", "void")
    query("SELECT * FROM fuzzseed.u", "rows_collections")
    query("INSERT INTO fuzzseed.u (k) VALUES ('a') IF NOT EXISTS", "rows_lwt")
    ask(0x09, lstr("SELECT * FROM fuzzseed.u WHERE k = ?"), "prepared")
    ask(0x0A, struct.pack(">H", 4) + b"nope" + struct.pack(">HB", 1, 0), "err_unprepared")
    ask(0x0D, struct.pack(">BH", 1, 1) + b"\x00" + lstr("INSERT INTO fuzzseed.u (k) VALUES ('b')")
        + struct.pack(">HHB", 0, 1, 0), "batch_void")
    query("SELECT * FROM fuzzseed.u", "rows_after_batch")
    sock.close()
    print(f"saved {saved} frames")


if __name__ == "__main__":
    main()
