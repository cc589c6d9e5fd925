#!/usr/bin/env python3
"""The web viewer's figures (issue 9 §5; docs/viewer.md "Figures"). Figures, never assertions.

Writes ENTRIES entries (default 10,000,000) of ~80 bytes into one log of a fresh embedded
annalsd (--durability fsync) over gRPC, then in headless Chromium (Selenium, Debian's
chromium and chromedriver):

  open   time from navigation to `/logs/<id>#L<ENTRIES/2>` to the highlighted entry's row
         showing its text; RUNS runs, median and max (a fresh page each run)
  scroll scrolling one screen per animation frame for SECONDS: frames per second, entries
         brought into view per second, and the share of frames whose rows were all filled
  list   the JSON API's GET /v1/logs/<id>/entries:read (100 entries) beside gRPC's
         ReadLogEntries, p50/p99 over QUERIES calls each

  .venv/bin/python bench/viewer/run.py            # ENTRIES=1000000 RUNS=3 for a quick pass
"""
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("ANNALS_BIN", os.path.join(ROOT, "build", "bin"))
os.environ.setdefault("ANNALS_PY", os.path.join(ROOT, "build", "py"))
from conftest import Client, Server  # noqa: E402
from annals.v1 import annals_pb2 as pb  # noqa: E402

ENTRIES = int(os.environ.get("ENTRIES", "10000000"))
RUNS = int(os.environ.get("RUNS", "5"))
SECONDS = float(os.environ.get("SECONDS", "10"))
QUERIES = int(os.environ.get("QUERIES", "300"))
THREADS = 4
BATCH = 1000


def fill(c, log_id):
    batches = (ENTRIES + BATCH - 1) // BATCH
    nxt = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                b = nxt[0]
                nxt[0] += 1
            if b >= batches:
                return
            n = min(BATCH, ENTRIES - b * BATCH)
            es = [pb.LogEntry(insert_id=f"{b}-{i}", severity=pb.LogEntry.INFO,
                              text_payload=f"batch {b} line {b * BATCH + i + 1} " + "x" * 50)
                  for i in range(n)]
            c.call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(log_id=log_id, entries=es),
                   timeout=600)

    ts = [threading.Thread(target=worker) for _ in range(THREADS)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.time() - t0


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--window-size=1280,900",
              f"--user-data-dir={tempfile.mkdtemp(prefix='annals-chromium-')}"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    with tempfile.TemporaryDirectory(prefix="annals-viewer-bench-") as d:
        s = Server(d, http=True, extra_args=["--durability", "fsync"]).start()
        try:
            key = s.tenant("bench")
            c = Client(s, key)
            log_id = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
            secs = fill(c, log_id)
            print(f"wrote {ENTRIES} entries in {secs:.1f} s ({ENTRIES / secs:,.0f} entries/s)")
            target = ENTRIES // 2
            drv = browser()
            base = f"http://{s.http_addr}"
            drv.get(base + "/")
            drv.execute_script("sessionStorage.setItem('annals.key', arguments[0]);", key)
            opens = []
            for _ in range(RUNS):
                drv.get("about:blank")
                t0 = time.perf_counter()
                drv.get(f"{base}/logs/{log_id}#L{target}")
                while True:
                    ok = drv.execute_script(
                        "const r = document.getElementById(arguments[0]);"
                        "return !!r && r.classList.contains('hl') && !r.classList.contains('pending');",
                        f"L{target}")
                    if ok:
                        break
                    if time.perf_counter() - t0 > 120:
                        raise SystemExit("the entry never showed")
                opens.append((time.perf_counter() - t0) * 1000)
            print(f"open #L{target} of {ENTRIES}: median {statistics.median(opens):.0f} ms, "
                  f"max {max(opens):.0f} ms over {RUNS} runs")
            drv.set_script_timeout(SECONDS + 30)
            r = drv.execute_async_script("""
                const done = arguments[arguments.length - 1], secs = arguments[0];
                const s = document.getElementById('scroller');
                s.scrollTop = 0;
                let frames = 0, full = 0, first = null, shown = 0, lastTop = null;
                const t0 = performance.now();
                function step() {
                    const rows = document.querySelectorAll('#rows .row');
                    const pending = document.querySelectorAll('#rows .row.pending').length;
                    frames++;
                    if (pending === 0) full++;
                    const top = rows.length ? Number(rows[0].dataset.id) : 0;
                    if (lastTop !== null && top > lastTop) shown += top - lastTop;
                    lastTop = top;
                    if (performance.now() - t0 >= secs * 1000) {
                        done({frames, full, shown, ms: performance.now() - t0});
                        return;
                    }
                    s.scrollTop += s.clientHeight;
                    requestAnimationFrame(step);
                }
                requestAnimationFrame(step);
            """, SECONDS)
            fps = r["frames"] / (r["ms"] / 1000)
            print(f"scroll one screen per frame for {r['ms'] / 1000:.1f} s: {fps:.0f} frames/s, "
                  f"{r['shown'] / (r['ms'] / 1000):,.0f} entries/s into view, "
                  f"{100 * r['full'] / max(1, r['frames']):.0f}% of frames fully filled")
            drv.quit()
            # JSON API beside gRPC, the same read.
            hc = http.client.HTTPConnection(s.http_addr, timeout=60)
            hdr = {"Authorization": f"Bearer {key}"}
            jt, gt = [], []
            for i in range(QUERIES):
                first = 1 + (i * 7919) % (ENTRIES - 100)
                t0 = time.perf_counter()
                hc.request("GET", f"/v1/logs/{log_id}/entries:read?first_entry_id={first}&page_size=100",
                           headers=hdr)
                resp = hc.getresponse()
                resp.read()
                jt.append((time.perf_counter() - t0) * 1000)
                assert resp.status == 200, resp.status
                t0 = time.perf_counter()
                c.call(c.query.ReadLogEntries, pb.ReadLogEntriesRequest(
                    log_id=log_id, first_entry_id=str(first), page_size=100))
                gt.append((time.perf_counter() - t0) * 1000)
            print(f"read 100 entries: JSON p50 {pct(jt, 50):.2f} ms p99 {pct(jt, 99):.2f} ms; "
                  f"gRPC p50 {pct(gt, 50):.2f} ms p99 {pct(gt, 99):.2f} ms; "
                  f"ratio of p50s {pct(jt, 50) / pct(gt, 50):.2f}")
            c.close()
        finally:
            s.stop()


if __name__ == "__main__":
    main()
