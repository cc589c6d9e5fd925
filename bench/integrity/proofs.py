"""Inclusion and consistency proofs in a large log (issue 10, section 6): one embedded
annalsd (--durability none: the fill is not what is measured), one log filled with N
entries of 200 bytes by annals-load (one log, 4 threads, batches of 1,000), then, over one
gRPC connection from Python grpcio, 50 warm-up calls and 2,000 timed calls of each:
GetLogCheckpoint, GetInclusionProof of a random entry in the checkpoint's tree, and
GetConsistencyProof from a random size to the checkpoint's; then the same after a restart
(the tree from <log>.mrk, complete blocks' leaves read back from it). Prints p50 / p99 /
max, the server's RSS, and the size of <log>.mrk. A figure to report, never a test.
Run: N=10000000 ANNALS_BIN=$PWD/build/bin ANNALS_PY=$PWD/build/py \
         .venv/bin/python bench/integrity/proofs.py"""
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "api"),
                os.environ["ANNALS_PY"]]
from conftest import BIN, Client, Server  # noqa: E402
from annals.v1 import annals_pb2 as pb  # noqa: E402

N = int(os.environ.get("N", "10000000"))
CALLS = int(os.environ.get("CALLS", "2000"))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                yield line.split()[0][:-1], int(line.split()[1]) // 1024


def timed(name, fn):
    for _ in range(50):
        fn()
    ts = []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    print(f"  {name:12} p50 {ts[len(ts) // 2] * 1e3:.3f} ms  p99 {ts[int(len(ts) * .99)] * 1e3:.3f}"
          f" ms  max {ts[-1] * 1e3:.3f} ms")


def measure(s, c, log, label):
    t0 = time.perf_counter()
    cp = c.call(c.query.GetLogCheckpoint, pb.GetLogCheckpointRequest(log_id=log)).checkpoint
    first = time.perf_counter() - t0
    size = int(cp.decode().split("\n")[1])
    print(f"{label}: tree of {size} entries; first GetLogCheckpoint {first * 1e3:.1f} ms")
    rnd = random.Random(7)
    timed("checkpoint", lambda: c.call(c.query.GetLogCheckpoint,
                                       pb.GetLogCheckpointRequest(log_id=log)))
    timed("inclusion", lambda: c.call(c.query.GetInclusionProof, pb.GetInclusionProofRequest(
        log_id=log, entry_id=str(rnd.randrange(1, size + 1)), tree_size=size)))
    timed("consistency", lambda: c.call(c.query.GetConsistencyProof, pb.GetConsistencyProofRequest(
        log_id=log, first_size=rnd.randrange(1, size + 1), second_size=size)))
    print("  server " + ", ".join(f"{k} {v} MiB" for k, v in rss_mib(s.proc.pid)))
    return size


with tempfile.TemporaryDirectory(prefix="annals-proofs-") as d:
    s = Server(d, extra_args=["--durability", "none"]).start()
    try:
        key = s.tenant("proofs")
        c = Client(s, key)
        t0 = time.time()
        out = subprocess.run([os.path.join(BIN, "annals-load"), "ingest", "--addr", s.addr,
                              "--token", key, "--logs", "1", "--threads", "4", "--batch", "1000",
                              "--entry-size", "200", "--total", str(N)],
                             check=True, capture_output=True, text=True).stdout
        print(f"filled {N} entries in {time.time() - t0:.0f} s")
        log = c.call(c.query.ListLogs, pb.ListLogsRequest()).logs[0].id
        size = measure(s, c, log, "open log")
        c.close()
        assert s.stop() == 0
        mrk = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f.endswith(".mrk")]
        print(f"<log>.mrk: {os.path.getsize(mrk[0]) / size:.1f} bytes per entry")
        s.start()
        c = Client(s, key)
        measure(s, c, log, "after a restart")
        c.close()
    finally:
        s.kill()
