#!/usr/bin/env python3
"""Health probes that speak each engine's own protocol (standard library only).

  probe.py cql HOST PORT USER PASSWORD   STARTUP + SASL PLAIN login; exit 0 on AUTH_SUCCESS/READY
  probe.py kafka HOST PORT               Metadata v4 request; exit 0 when at least one broker is listed

Exit 1 with a one-line reason on stderr otherwise. Every byte read is bounded and checked.
"""
import socket
import struct
import sys

TIMEOUT = 5.0
MAX_FRAME = 1 << 20


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return buf


def cql_string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def cql_frame(opcode, body, stream=1):
    return struct.pack(">BBhBI", 0x04, 0, stream, opcode, len(body)) + body


def cql_read(sock):
    version, _flags, _stream, opcode, length = struct.unpack(">BBhBI", recv_exact(sock, 9))
    if version != 0x84 or length > MAX_FRAME:
        raise ValueError("unexpected CQL frame header (version 0x%02x, length %d)" % (version, length))
    return opcode, recv_exact(sock, length)


def cql_error(body):
    if len(body) < 6:
        return "malformed ERROR frame"
    code, n = struct.unpack(">IH", body[:6])
    return "server error 0x%04x: %s" % (code, body[6:6 + n].decode(errors="replace"))


def probe_cql(host, port, user, password):
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
        s.sendall(cql_frame(0x01, struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0")))
        op, body = cql_read(s)
        if op == 0x02:  # READY: no authenticator configured
            return
        if op != 0x03:  # AUTHENTICATE
            raise RuntimeError(cql_error(body) if op == 0x00 else "unexpected opcode 0x%02x after STARTUP" % op)
        token = b"\0" + user.encode() + b"\0" + password.encode()
        s.sendall(cql_frame(0x0F, struct.pack(">i", len(token)) + token, stream=2))
        op, body = cql_read(s)
        if op != 0x10:  # AUTH_SUCCESS
            raise RuntimeError(cql_error(body) if op == 0x00 else "unexpected opcode 0x%02x after AUTH_RESPONSE" % op)


def probe_kafka(host, port):
    client = b"annals-probe"
    # Metadata v4 (api key 3; Kafka 4 serves v4 and up): header v1 = api_key, api_version,
    # correlation_id, client_id; body = topics array (-1: all), allow_auto_topic_creation.
    req = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">ib", -1, 0)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        (size,) = struct.unpack(">i", recv_exact(s, 4))
        if size < 12 or size > MAX_FRAME:
            raise ValueError("unexpected Kafka response size %d" % size)
        resp = recv_exact(s, size)
        corr, _throttle, nbrokers = struct.unpack(">iii", resp[:12])
        if corr != 7:
            raise ValueError("correlation id mismatch")
        if nbrokers < 1:
            raise RuntimeError("metadata lists no broker yet")


def main(argv):
    try:
        if len(argv) == 6 and argv[1] == "cql":
            probe_cql(*argv[2:])
        elif len(argv) == 4 and argv[1] == "kafka":
            probe_kafka(*argv[2:])
        else:
            sys.stderr.write(__doc__)
            return 2
    except (OSError, ValueError, RuntimeError, struct.error) as e:
        sys.stderr.write("probe %s %s:%s: %s\n" % (argv[1], argv[2], argv[3], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
