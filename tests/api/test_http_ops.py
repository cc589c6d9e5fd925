"""The HTTP port's operator endpoints (annalsd --http, docs/operations.md): /healthz,
/readyz and /metrics, read as an operator's tools read them. Metrics are parsed by the
Prometheus client library's own parser, and must move exactly as the traffic does."""
import http.client
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from annals.v1 import annals_pb2 as pb
from annals.v1 import annals_pb2_grpc as pbg
from conftest import BIN, DISTRIBUTED, SCALED, Client, Server, _keep_log
from helpers import WAIT, TailReader, create_log, entry, expect_code, write_and_wait

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def ops_server():
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = Server(d, http=True).start()
        try:
            yield s
            assert s.proc.poll() is None, "annalsd died during the tests"
            assert s.stop() == 0, "annalsd did not exit cleanly on SIGTERM: " + \
                open(s.log_path, errors="replace").read()[-3000:]
        finally:
            _keep_log(s)


@pytest.fixture(scope="module")
def ops_client(ops_server):
    """A client of the API server whose HTTP port the tests scrape (the scaled topology has
    two API servers, each counting its own calls)."""
    c = Client(ops_server, ops_server.tenant("tenant-ops"))
    c.channel.close()
    c.channel = grpc.insecure_channel(ops_server.addr,
                                      options=[("grpc.use_local_subchannel_pool", 1)])
    c.cmd = pbg.LoggingCommandServiceStub(c.channel)
    c.query = pbg.LoggingQueryServiceStub(c.channel)
    yield c
    c.close()


def get(s, path, method="GET"):
    """(status, headers, body) of one request on the HTTP port."""
    conn = http.client.HTTPConnection(s.http_addr, timeout=WAIT)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def scrape(s):
    """{(sample name, frozenset of labels): value} of one /metrics scrape."""
    status, headers, body = get(s, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for smp in fam.samples:
            out[(smp.name, frozenset(smp.labels.items()))] = smp.value
    return out


def rpc_labels(service, method, kind="unary", **extra):
    d = {"grpc_service": f"annals.v1.{service}", "grpc_method": method, "grpc_type": kind}
    d.update(extra)
    return frozenset(d.items())


def value(m, name, labels=frozenset()):
    return m.get((name, labels), 0.0)


# ---------------------------------------------------------------- health

def test_healthz_says_the_process_is_alive(ops_server):
    status, _, body = get(ops_server, "/healthz")
    assert (status, body) == (200, b"ok\n")


def test_readyz_says_ready(ops_server):
    status, _, body = get(ops_server, "/readyz")
    assert (status, body) == (200, b"ready\n")
    assert value(scrape(ops_server), "annals_ready") == 1


def test_head_answers_without_a_body(ops_server):
    status, _, body = get(ops_server, "/healthz", method="HEAD")
    assert (status, body) == (200, b"")


# ---------------------------------------------------------------- metrics

def test_every_rpc_has_its_series_before_any_call(ops_server):
    m = scrape(ops_server)
    for service, methods in (("LoggingCommandService", ["CreateLog", "DeleteLog",
                                                        "WriteLogEntries", "RevokeLogEntries"]),
                             ("LoggingQueryService", ["ListLogEntries", "GetLog", "ListLogs",
                                                      "ReadLogEntries", "SearchLogEntries"])):
        for method in methods:
            assert ("grpc_server_started_total", rpc_labels(service, method)) in m
            assert ("grpc_server_handled_total",
                    rpc_labels(service, method, grpc_code="OK")) in m
            assert ("grpc_server_handling_seconds_count", rpc_labels(service, method)) in m
            assert ("grpc_server_handling_seconds_bucket",
                    rpc_labels(service, method, le="+Inf")) in m
    assert ("annals_live_tails", frozenset()) in m


def test_writes_move_the_rpc_counters_by_exactly_their_number(ops_server, ops_client):
    log = create_log(ops_client)
    w = rpc_labels("LoggingCommandService", "WriteLogEntries")
    ok = rpc_labels("LoggingCommandService", "WriteLogEntries", grpc_code="OK")
    before = scrape(ops_server)
    write_and_wait(ops_client, log, [entry(f"a{i}") for i in range(3)])
    write_and_wait(ops_client, log, [entry(f"b{i}") for i in range(5)])
    after = scrape(ops_server)
    assert value(after, "grpc_server_started_total", w) - \
        value(before, "grpc_server_started_total", w) == 2
    assert value(after, "grpc_server_handled_total", ok) - \
        value(before, "grpc_server_handled_total", ok) == 2
    assert value(after, "grpc_server_handling_seconds_count", w) - \
        value(before, "grpc_server_handling_seconds_count", w) == 2
    assert value(after, "grpc_server_handling_seconds_sum", w) > \
        value(before, "grpc_server_handling_seconds_sum", w)
    # The buckets are cumulative and end with every call.
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in after.items()
                     if k[0] == "grpc_server_handling_seconds_bucket" and
                     k[1] - {("le", dict(k[1])["le"])} == w)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == value(after, "grpc_server_handling_seconds_count", w)


@pytest.mark.embedded_only("the embedded store's own series")
def test_writes_move_the_store_counters(ops_server, ops_client):
    log = create_log(ops_client)
    before = scrape(ops_server)
    payloads = [f"store line {i}" for i in range(7)]
    write_and_wait(ops_client, log, [entry(p) for p in payloads[:4]])
    write_and_wait(ops_client, log, [entry(p) for p in payloads[4:]])
    after = scrape(ops_server)

    def delta(name):
        return value(after, name) - value(before, name)
    assert delta("annals_store_entries_appended_total") == 7
    assert delta("annals_store_bytes_appended_total") >= sum(len(p) for p in payloads)
    rounds = delta("annals_store_group_commits_total")
    assert 1 <= rounds <= 2  # two requests: one round each, or both in one
    assert delta("annals_store_group_commit_requests_count") == rounds
    assert delta("annals_store_group_commit_entries_sum") == 7
    assert delta("annals_store_fsync_seconds_count") == rounds  # --durability fsync
    assert value(after, "annals_store_open_logs") >= 1
    assert value(after, "annals_store_disk_bytes") > 0


def test_errors_are_counted_by_status_code(ops_server, ops_client):
    bad = rpc_labels("LoggingQueryService", "GetLog", grpc_code="INVALID_ARGUMENT")
    unauth = rpc_labels("LoggingQueryService", "GetLog", grpc_code="UNAUTHENTICATED")
    missing = rpc_labels("LoggingQueryService", "GetLog", grpc_code="NOT_FOUND")
    before = scrape(ops_server)
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, ops_client.call, ops_client.query.GetLog,
                pb.GetLogRequest(log_id="not-a-uuid"))
    expect_code(grpc.StatusCode.NOT_FOUND, ops_client.call, ops_client.query.GetLog,
                pb.GetLogRequest(log_id="6f1a2b3c-0000-4000-8000-000000000000"))
    expect_code(grpc.StatusCode.NOT_FOUND, ops_client.call, ops_client.query.GetLog,
                pb.GetLogRequest(log_id="6f1a2b3c-0000-4000-8000-000000000001"))
    expect_code(grpc.StatusCode.UNAUTHENTICATED, ops_client.call, ops_client.query.GetLog,
                pb.GetLogRequest(log_id="6f1a2b3c-0000-4000-8000-000000000000"), metadata=())
    after = scrape(ops_server)
    assert value(after, "grpc_server_handled_total", bad) - \
        value(before, "grpc_server_handled_total", bad) == 1
    assert value(after, "grpc_server_handled_total", missing) - \
        value(before, "grpc_server_handled_total", missing) == 2
    assert value(after, "grpc_server_handled_total", unauth) - \
        value(before, "grpc_server_handled_total", unauth) == 1


def test_live_tails_go_up_and_down(ops_server, ops_client):
    log = create_log(ops_client)
    write_and_wait(ops_client, log, [entry("tailed")])
    base = value(scrape(ops_server), "annals_live_tails")
    t = TailReader(ops_client, log, "0")
    t.take(1)  # the tail is open and registered once it delivered
    assert value(scrape(ops_server), "annals_live_tails") == base + 1
    t.cancel()
    deadline = time.time() + WAIT
    while value(scrape(ops_server), "annals_live_tails") != base:
        assert time.time() < deadline, "the cancelled tail is still counted"
        time.sleep(0.05)


def test_scrape_counts_itself(ops_server):
    before = scrape(ops_server)
    after = scrape(ops_server)
    assert value(after, "annals_metrics_scrape_seconds_count") - \
        value(before, "annals_metrics_scrape_seconds_count") == 1
    ok = frozenset({("code", "2xx")})
    assert value(after, "annals_http_requests_total", ok) > \
        value(before, "annals_http_requests_total", ok)


# ---------------------------------------------------------------- what is not there

# (/v1/ is the JSON API: tests/api/test_http_api.py; its unknown paths are 404 too)
@pytest.mark.parametrize("path", ["/logs/", "/logs/x/y", "/assets/nope.js", "/nope", "/metrics/",
                                  "/healthz/x", "/../metrics",
                                  "/METRICS", "/v1/nope", "/v2/logs"])
def test_unknown_paths_are_404(ops_server, path):
    assert get(ops_server, path)[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_are_405_with_allow(ops_server, method):
    status, headers, _ = get(ops_server, "/metrics", method=method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_a_query_string_is_ignored(ops_server):
    assert get(ops_server, "/healthz?verbose=1")[0] == 200


# ---------------------------------------------------------------- hostile input

def raw(s, data, read=65536):
    """Sends raw bytes; returns the status code of the answer, or None if the server
    closed the connection without one."""
    host, port = s.http_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as c:
        c.settimeout(5)  # a server that keeps a garbage connection open answers nothing
        try:
            c.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-way: look for an answer anyway
        got = b""
        try:
            while b"\r\n" not in got:
                chunk = c.recv(read)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    if not got.startswith(b"HTTP/1."):
        return None
    return int(got.split(b" ", 2)[1])


@pytest.mark.parametrize("name,data", [
    ("huge header", b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 +
     b"\r\n\r\n"),
    ("many headers", b"GET /metrics HTTP/1.1\r\nHost: x\r\n" +
     b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)) + b"\r\n"),
    ("long url", b"GET /" + b"m" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("garbage", b"\x00\x01\x02\xff not http at all\r\n\r\n"),
    ("bad version", b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("no host", b"GET /metrics HTTP/1.1\r\n\r\n"),
    ("bad content length", b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
])
def test_hostile_requests_are_refused_and_the_server_goes_on(ops_server, name, data):
    status = raw(ops_server, data)
    assert status is None or 400 <= status < 600, f"{name}: answered {status}"
    assert status != 200, name
    assert get(ops_server, "/healthz")[0] == 200  # still serving
    assert ops_server.proc.poll() is None


def test_a_small_body_sent_to_a_get_endpoint_is_dropped(ops_server):
    host, port = ops_server.http_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    conn.request("GET", "/healthz", body=b"x" * 10_000)
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"ok\n")
    conn.close()


@pytest.mark.parametrize("headers", [b"Content-Length: 1000000000\r\n",
                                     b"Transfer-Encoding: chunked\r\n"])
def test_a_large_body_is_refused_before_it_is_read(ops_server, headers):
    assert raw(ops_server, b"POST /metrics HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n") == 413


def test_many_connections_at_once(ops_server):
    socks = []
    try:
        host, port = ops_server.http_addr.rsplit(":", 1)
        for _ in range(100):  # idle, half-open requests
            c = socket.create_connection((host, int(port)), timeout=WAIT)
            c.sendall(b"GET /metrics HTTP/1.1\r\n")
            socks.append(c)
        assert get(ops_server, "/healthz")[0] == 200
    finally:
        for c in socks:
            c.close()


# ---------------------------------------------------------------- TLS

def test_tls_with_the_grpc_ports_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = Server(d, http=True, extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
        s.start()
        try:
            ctx = ssl.create_default_context(cafile=str(cert))
            with urllib.request.urlopen(f"https://{s.http_addr}/readyz", context=ctx,
                                        timeout=WAIT) as r:
                assert (r.status, r.read()) == (200, b"ready\n")
            with urllib.request.urlopen(f"https://{s.http_addr}/metrics", context=ctx,
                                        timeout=WAIT) as r:
                assert r.status == 200
            # Plain HTTP on the TLS port gets no answer.
            with pytest.raises((http.client.HTTPException, OSError)):
                get(s, "/healthz")
        finally:
            assert s.stop() == 0
            _keep_log(s)


# ---------------------------------------------------------------- distributed roles

@pytest.mark.skipif(not DISTRIBUTED, reason="the distributed roles only")
def test_a_role_whose_engine_is_unreachable_is_alive_but_not_ready():
    """A projector pointed at a PostgreSQL that is not there: /healthz 200 (the process
    lives and retries), /readyz 503 naming the engine, /metrics served."""
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    http_port = port.getsockname()[1]
    port.close()
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        ns = "t" + os.urandom(5).hex()
        log_path = os.path.join(d, "project.out")
        with open(log_path, "ab") as log:
            p = subprocess.Popen(
                [os.path.join(BIN, "annalsd"), "project", "--namespace", ns,
                 "--postgres", "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=1",
                 "--http", f"127.0.0.1:{http_port}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            s = Server(d)
            s.http_addr = f"127.0.0.1:{http_port}"
            deadline = time.time() + 180
            while True:
                assert p.poll() is None, open(log_path, errors="replace").read()[-2000:]
                try:
                    status, _, body = get(s, "/readyz")
                    break
                except OSError:
                    assert time.time() < deadline, "the role's HTTP port never opened"
                    time.sleep(0.2)
            assert status == 503 and b"postgresql" in body, body
            assert get(s, "/healthz")[0] == 200
            assert value(scrape(s), "annals_ready") == 0
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=90)


class _SplitRoles(Server):
    """An API server (with the HTTP port), a sequencer and a projector, each its own
    process, so that the projector can be frozen alone."""

    def command(self):
        return [os.path.join(BIN, "annalsd"), "serve", "--distributed", "--namespace",
                self.namespace(), "--instance", "api-1", "--listen", self.addr,
                "--http", self.http_addr]

    def role_commands(self):
        a, ns = os.path.join(BIN, "annalsd"), ["--namespace", self.namespace()]
        # (the scaled topology waits for a second API server: it is there, unused)
        api2 = [([a, "serve", "--distributed"] + ns + [
            "--instance", "api-2", "--listen", f"127.0.0.1:{self.port2}"], "api-2")]
        return [([a, "sequence"] + ns + ["--instance", "seq-1"], "seq-1"),
                ([a, "project"] + ns + ["--instance", "proj-1"], "proj-1")] + \
            (api2 if self.port2 else [])


@pytest.mark.skipif(not DISTRIBUTED, reason="the distributed roles only")
def test_read_model_lag_in_entries_and_seconds():
    """annals_readmodel_lag_entries counts, exactly, the entries this API server's writes had
    sequenced that reads do not show yet; _seconds is the oldest one's age. With the
    projector frozen (SIGSTOP) the gauges grow by what was written; thawed, they go to 0."""
    W = pb.WriteLogEntriesRequest
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = _SplitRoles(d, http=True).start()
        try:
            c = Client(s, s.tenant("tenant-lag"))
            c.channel.close()  # this API server only: its gauges count its own writes
            c.channel = grpc.insecure_channel(s.addr)
            c.cmd = pbg.LoggingCommandServiceStub(c.channel)
            c.query = pbg.LoggingQueryServiceStub(c.channel)
            lg = create_log(c)  # answered once the read model shows the log
            write_and_wait(c, lg, [entry("before")])

            def gauges():
                m = scrape(s)
                return (value(m, "annals_readmodel_lag_entries"),
                        value(m, "annals_readmodel_lag_seconds"))

            deadline = time.time() + 60
            while gauges() != (0, 0):
                assert time.time() < deadline, gauges()
                time.sleep(0.2)
            proj = s.others[1]
            proj.send_signal(signal.SIGSTOP)
            try:
                written = 0
                for n in (5, 1, 40):
                    r = c.call(c.cmd.WriteLogEntries, W(
                        log_id=lg, entries=[entry(f"x{i}") for i in range(n)],
                        wait=W.WAIT_SEQUENCED))
                    assert len(r.entry_ids) == n
                    written += n
                    entries, seconds = gauges()
                    assert entries == written
                    assert seconds > 0
                # A retried request (same insert_ids) makes no new entries: no more lag.
                again = [entry("dup", insert_id="lag-dup-1")]
                c.call(c.cmd.WriteLogEntries, W(log_id=lg, entries=again, wait=W.WAIT_SEQUENCED))
                c.call(c.cmd.WriteLogEntries, W(log_id=lg, entries=again, wait=W.WAIT_SEQUENCED))
                assert gauges()[0] == written + 1
                time.sleep(1.1)
                assert gauges()[1] >= 1
            finally:
                proj.send_signal(signal.SIGCONT)
            deadline = time.time() + 120
            while gauges() != (0, 0):
                assert time.time() < deadline, gauges()
                time.sleep(0.2)
            c.close()
            assert s.stop() == 0
        finally:
            if s.proc:
                s.kill()
            _keep_log(s)


@pytest.mark.skipif(not DISTRIBUTED or SCALED,
                    reason="the distributed roles, once (each API server stops alone)")
def test_stop_ends_calls_waiting_on_a_silent_sequencer():
    """SIGTERM of an API server whose calls wait for a sequencer that does not answer (frozen
    by SIGSTOP): past the 30 s grace period the calls end and the process exits, instead of
    waiting for acknowledgements that may never come."""
    W = pb.WriteLogEntriesRequest
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = _SplitRoles(d, http=True).start()
        seq = s.others[0]
        try:
            c = Client(s, s.tenant("tenant-stop"))
            c.channel.close()  # this API server only
            c.channel = grpc.insecure_channel(s.addr)
            c.cmd = pbg.LoggingCommandServiceStub(c.channel)
            c.query = pbg.LoggingQueryServiceStub(c.channel)
            lg = create_log(c)
            seq.send_signal(signal.SIGSTOP)
            req = W(log_id=lg, entries=[entry("waits", insert_id="stop-1")],
                    wait=W.WAIT_SEQUENCED)
            out = {}

            def call():
                try:
                    out["reply"] = c.call(c.cmd.WriteLogEntries, req, timeout=120)
                except grpc.RpcError as e:
                    out["code"] = e.code()

            t = threading.Thread(target=call)
            t.start()
            time.sleep(1.5)
            assert t.is_alive(), out  # waiting for the sequencer
            t0 = time.time()
            s.proc.send_signal(signal.SIGTERM)
            rc = s.proc.wait(timeout=90)
            took = time.time() - t0
            t.join(timeout=30)
            assert rc == 0
            assert 25 < took < 60, took
            assert out.get("code") in (grpc.StatusCode.CANCELLED,
                                       grpc.StatusCode.UNAVAILABLE), out
            c.close()
        finally:
            seq.send_signal(signal.SIGCONT)
            s.kill()
            _keep_log(s)
