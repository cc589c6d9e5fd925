"""The JSON API's list-page latency beside gRPC's (issue 9, section 5): one annalsd with
--http, a log of 10,000 entries of 200 bytes, ListLogEntries pages of 100 by each transport
(Python grpcio and http.client, one connection each, 50 warm-up calls then 500 timed), two
rounds alternated. A figure to report, never a test.
Run: ANNALS_BIN=$PWD/build/bin ANNALS_PY=$PWD/build/py .venv/bin/python bench/http/list_latency.py"""
import http.client
import os
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "api"),
                os.environ["ANNALS_PY"]]
from conftest import Client, Server  # noqa: E402
from annals.v1 import annals_pb2 as pb  # noqa: E402

with tempfile.TemporaryDirectory() as d:
    s = Server(d, http=True).start()
    try:
        k = s.tenant("lat")
        c = Client(s, k)
        log = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
        for b in range(10):
            c.call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(log_id=log, entries=[
                pb.LogEntry(text_payload="x" * 200) for _ in range(1000)]))
        conn = http.client.HTTPConnection(s.http_addr)
        def h():
            conn.request("GET", f"/v1/logs/{log}/entries?pageSize=100", headers={"Authorization": f"Bearer {k}"})
            r = conn.getresponse(); b = r.read(); assert r.status == 200; return b
        def g():
            return c.call(c.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=log, page_size=100))
        for name, fn in (("grpc", g), ("http", h), ("grpc", g), ("http", h)):
            for _ in range(50): fn()
            ts = []
            for _ in range(500):
                t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
            ts.sort()
            print(name, "p50 %.3f ms p99 %.3f ms" % (ts[250] * 1e3, ts[495] * 1e3))
        print("http page bytes", len(h()), "grpc page bytes", g().ByteSize())
        c.close()
    finally:
        s.stop()
