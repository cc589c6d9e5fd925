"""Noisy neighbours: one tenant's scanning readers must not starve another tenant.

Tenant A has a log of 200,000 entries and 40 clients listing it with a `text_contains`
that matches nothing (each call walks the whole log). Tenant B writes one entry at a time,
and reads. B's write p99 is measured without the readers, then with them, in the same run;
the ratio is reported. The assertion is a liveness bound (B is served, within a generous
factor), not a timing test: the figure itself is in the note and docs/api.md.

Skipped under the sanitizers: the ratio means nothing there, and the release run covers it.
"""
import statistics
import tempfile
import threading
import time

import pytest

from conftest import SANITIZED, Client, Server, pb

pytestmark = pytest.mark.skipif(SANITIZED, reason="latency ratio: release build only")

READERS = 40
ENTRIES = 200_000
SAMPLES = 150


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def b_latencies(b, log_id, tag):
    lat = []
    for i in range(SAMPLES):
        t0 = time.perf_counter()
        b.call(b.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(
            log_id=log_id, entries=[pb.LogEntry(text_payload=f"b {tag} {i}",
                                                insert_id=f"{tag}-{i}")]))
        lat.append(time.perf_counter() - t0)
    return lat


def b_read_latencies(b, log_id):
    lat = []
    for _ in range(50):
        t0 = time.perf_counter()
        b.call(b.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=log_id, page_size=10))
        lat.append(time.perf_counter() - t0)
    return lat


def test_scanning_readers_of_one_tenant_do_not_starve_another():
    with tempfile.TemporaryDirectory(prefix="annals-fair-") as d:
        s = Server(d)
        ka, kb = s.tenant("noisy"), s.tenant("quiet")
        s.start()
        a, b = Client(s, ka), Client(s, kb)
        try:
            big = a.call(a.cmd.CreateLog, pb.CreateLogRequest()).log.id
            for k in range(ENTRIES // 1000):
                a.call(a.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(log_id=big, entries=[
                    pb.LogEntry(text_payload=f"build step {k}.{i}: compiling module {i % 97}",
                                insert_id=f"a{k}-{i}") for i in range(1000)]))
            blog = b.call(b.cmd.CreateLog, pb.CreateLogRequest()).log.id
            b_latencies(b, blog, "warm")

            quiet_w = b_latencies(b, blog, "quiet")
            quiet_r = b_read_latencies(b, blog)

            stop = threading.Event()
            scans = [0]
            lock = threading.Lock()

            def reader():
                c = Client(s, ka)
                try:
                    while not stop.is_set():
                        c.call(c.query.ListLogEntries, pb.ListLogEntriesRequest(
                            log_id=big, page_size=100, text_contains="no such text anywhere"))
                        with lock:
                            scans[0] += 1
                finally:
                    c.close()

            threads = [threading.Thread(target=reader, daemon=True) for _ in range(READERS)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # the readers are all in
            noisy_w = b_latencies(b, blog, "noisy")
            noisy_r = b_read_latencies(b, blog)
            stop.set()
            for t in threads:
                t.join(timeout=120)
            assert scans[0] > READERS, "the noisy readers barely ran: the test measured nothing"

            qw, nw = p99(quiet_w) * 1e3, p99(noisy_w) * 1e3
            qr, nr = p99(quiet_r) * 1e3, p99(noisy_r) * 1e3
            print(f"\n  tenant B write p99: {qw:.2f} ms alone, {nw:.2f} ms beside {READERS} "
                  f"scanning readers of tenant A (x{nw / qw:.1f}); medians "
                  f"{statistics.median(quiet_w) * 1e3:.2f} / "
                  f"{statistics.median(noisy_w) * 1e3:.2f} ms")
            print(f"  tenant B read p99: {qr:.2f} ms alone, {nr:.2f} ms beside them "
                  f"(x{nr / qr:.1f}); tenant A completed {scans[0]} full scans")
            # Liveness bounds, loose on purpose (shared 2-core machines drift): B is served
            # within a small factor of its quiet latency, or within 100 ms at worst.
            assert nw <= max(20 * qw, 100), f"B's write p99 {nw:.1f} ms vs {qw:.1f} ms alone"
            assert nr <= max(20 * qr, 100), f"B's read p99 {nr:.1f} ms vs {qr:.1f} ms alone"
        finally:
            a.close()
            b.close()
            assert s.stop() == 0
